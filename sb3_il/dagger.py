"""BC and DAgger, one loop: BC is DAgger's iteration 0 (fit on expert demonstrations) and nothing more.

    demos -> buffer -> fit -> evaluate                                   (iteration 0 = BC)
    for each DAgger iteration: collect learner states (β-mix with expert) -> [select the least covered]
                               -> relabel with expert -> aggregate into buffer -> fit -> evaluate

Label budget: ``n_demo_steps + n_iters * steps_per_iter`` expert actions (11,000 with the defaults).
Training never reads the env's reward; only evaluation (and the opt-in ``select_by="return"``) does.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import set_random_seed
from tqdm import tqdm

from sb3_il.bc import Adam, fit
from sb3_il.buffer import ReplayBuffer
from sb3_il.config import TrainConfig, package_version, parse_beta_schedule
from sb3_il.demos import (
    Demonstrations,
    LabelLog,
    collect_demos,
    save_demos,
    save_labels,
    with_noise,
    write_provenance,
)
from sb3_il.envs import make_env
from sb3_il.evaluation import EVAL_SEED, Evaluator, completed, evaluate_expert, mean_std, percent_of_expert
from sb3_il.experts import Expert, RecordedExpert, expert_available, load_expert
from sb3_il.policy import ActFn, Learner, ObsNormalizer, actor_parameters, make_learner, pack_ensemble, save_policy
from sb3_il.recipe import adapt
from sb3_il.selection import imitation_loss, select_uncovered, validation_returns

#: The "returns" of an iteration evaluated with 0 episodes: logged as NaN, a gap in the learning curve.
NO_EVAL = np.array([np.nan])


@dataclass
class IterationStats:
    iteration: int
    mean_return: float
    std_return: float
    pct_expert: float
    expert_labels: int
    env_steps: int
    grad_steps: int
    loss: float
    beta: float
    wall_s: float


@dataclass
class RunResult:
    n_demo_episodes: int
    discrete: bool = False
    #: The config as run: ``adapt`` resolved (:mod:`sb3_il.recipe`).
    config: TrainConfig | None = None
    expert_return_mean: float = float("nan")
    expert_return_std: float = float("nan")
    curve: list[IterationStats] = field(default_factory=list)
    #: Wall time of the whole run, setup and evaluation included (``curve[-1].wall_s`` is training alone).
    total_wall_s: float = float("nan")
    #: With ``select_last``: the iteration whose policy was kept, and each candidate's score (its on-policy
    #: imitation loss, lower is better, or its validation return, by ``select_by``).
    selected_iteration: int | None = None
    selection_scores: list[float] = field(default_factory=list)


@dataclass
class Cursor:
    """Where DAgger's collection stands: the observation to act on, its episode (counted over the run) and step."""

    obs: np.ndarray
    episode: int = 0
    step: int = 0


@dataclass
class Visits:
    obs: np.ndarray
    episode: np.ndarray
    step: np.ndarray

    def __getitem__(self, index: np.ndarray) -> Visits:
        return Visits(self.obs[index], self.episode[index], self.step[index])


def collect(
    env: gym.Env,
    cursor: Cursor,
    learner: ActFn,
    expert: ActFn,
    n_steps: int,
    beta: float,
    noise: float,
    rng: np.random.Generator,
) -> Visits:
    """Visit ``n_steps`` states from ``cursor`` (advanced past them), acting with the learner (the expert with
    probability β). The env resets on termination, so the budget is exact. ``noise`` perturbs the executed
    actions (:func:`sb3_il.demos.with_noise`)."""
    visits = Visits(np.empty((n_steps, *env.observation_space.shape), dtype=np.float32),
                    np.empty(n_steps, np.int32), np.empty(n_steps, np.int32))  # fmt: skip
    noisy_learner, noisy_expert = (with_noise(p, noise, env.action_space, rng) for p in (learner, expert))
    for t in range(n_steps):
        visits.obs[t], visits.episode[t], visits.step[t] = cursor.obs, cursor.episode, cursor.step
        policy = noisy_expert if beta > 0 and rng.random() < beta else noisy_learner
        cursor.obs, _, terminated, truncated, _ = env.step(policy(cursor.obs[None])[0])
        cursor.step += 1
        if terminated or truncated:
            cursor.obs, _ = env.reset()
            cursor.episode, cursor.step = cursor.episode + 1, 0
    return visits


class Actors:
    """The learner, and the actors fitted for it: itself, or an ensemble packed into it after each fit."""

    def __init__(self, env: gym.Env, config: TrainConfig) -> None:
        self.model = make_learner(env, [config.ensemble * width for width in config.net_arch], config.seed)
        self.learner = Learner(self.model.policy)
        self.members = [self.learner]
        if config.ensemble > 1:
            seeds = [config.seed + 7919 * k for k in range(config.ensemble)]  # apart from other runs' seeds
            self.members = [Learner(make_learner(env, config.net_arch, seed).policy) for seed in seeds]
        self.optimizers = [Adam(sum(p.numel() for p in actor_parameters(m.policy)), config.lr) for m in self.members]

    def fit(self, buffer: ReplayBuffer, config: TrainConfig, generator: th.Generator) -> float:
        """Refit every actor on the whole buffer (observation statistics refreshed first); the mean loss."""
        if config.normalize:
            self.learner.normalizer = ObsNormalizer.from_data(buffer.observations())
        losses = []
        for member, optimizer in zip(self.members, self.optimizers, strict=True):
            member.normalizer = self.learner.normalizer
            losses.append(fit(member, optimizer, buffer, config, generator))
        if len(self.members) > 1:
            pack_ensemble(self.learner.policy, [member.policy for member in self.members])
        return float(np.mean(losses))


class Reporter:
    """Logs each iteration once its evaluation is in (evaluations finish in submission order)."""

    def __init__(self, result: RunResult, expert_eval: Future[tuple[float, float]], logger: Logger, bar: tqdm) -> None:
        self.result, self.expert_eval, self.logger, self.bar = result, expert_eval, logger, bar
        self.pending: deque[tuple[dict, Future[np.ndarray]]] = deque()

    def evaluate(self, evaluator: Evaluator, learner: Learner, n_episodes: int, stats: dict, last: bool) -> None:
        """Submit a snapshot of ``learner`` for evaluation; log the iterations whose evaluations are in."""
        returns = evaluator.submit(copy.deepcopy(learner), n_episodes) if n_episodes else completed(NO_EVAL)
        if last:  # training is over: this process joins in the evaluations still queued
            evaluator.help()
        self.add(stats, returns, last)

    def add(self, stats: dict, returns: Future[np.ndarray], last: bool) -> None:
        self.pending.append((stats, returns))
        while self.pending and (self.pending[0][1].done() or last):
            self._report(*self.pending.popleft())

    def _report(self, stats: dict, returns: Future[np.ndarray]) -> None:
        result = self.result
        if not result.curve:
            result.expert_return_mean, result.expert_return_std = self.expert_eval.result()
        mean, std = float(returns.result().mean()), float(returns.result().std())
        pct = percent_of_expert(mean, result.expert_return_mean)
        result.curve.append(IterationStats(mean_return=mean, std_return=std, pct_expert=pct, **stats))
        log_iteration(self.logger, result.curve[-1])
        if not self.bar.disable:
            self.bar.write(
                f"iter {stats['iteration']:2d}: return {mean:8.1f} ± {std:6.1f} ({pct:5.1f}% of expert "
                f"{result.expert_return_mean:.0f}), {stats['expert_labels']} labels, {stats['wall_s']:.1f} s"
            )
        self.bar.update()


def choose_expert(
    config: TrainConfig, env: gym.Env, demos: Demonstrations | None, trust_remote_code: bool
) -> Expert | RecordedExpert:
    """The expert, loaded. BC on given demonstrations needs no expert model (it only scores against it): where
    none can be had here, the data's record of the expert stands in for it."""
    if config.algo == "bc" and demos is not None and not expert_available(config.expert):
        return RecordedExpert(config.expert, demos.provenance)
    return load_expert(config.expert, env, trust_remote_code)


def demonstrations(
    config: TrainConfig, expert: Expert, demos: Demonstrations | None
) -> tuple[Demonstrations, np.ndarray, np.ndarray]:
    """(demonstrations, observations, actions): ``demos`` if given, else collected; exactly ``n_demo_steps``."""
    if demos is None:
        collected = collect_demos(expert, config.env, config.n_demo_steps, config.seed, config.noise)
        demos = Demonstrations(list(collected))
    obs, acts = demos.transitions()
    return demos, obs[: config.n_demo_steps], acts[: config.n_demo_steps]  # whole episodes overshoot


@dataclass
class Collection:
    """DAgger's side of the env: where collection stands, the labels and env steps so far, and every label
    asked for (saved as the run's ``labels/``)."""

    config: TrainConfig
    env: gym.Env
    rng: np.random.Generator
    labels: int
    env_steps: int = 0
    cursor: Cursor | None = None
    log: LabelLog = field(default_factory=LabelLog)

    def collect_and_label(
        self, it: int, actors: Actors, expert: Expert, buffer: ReplayBuffer | None, beta: float
    ) -> float:
        """Iteration ``it``'s collection: visit states with the learner (β-mixed with the expert), pick the
        ones to label, label them, add them to ``buffer`` (None: only score). Returns the imitation loss on
        them of the learner that visited them, the iterate fitted at ``it - 1``."""
        config = self.config
        if self.cursor is None or config.reset_each_iter:
            episode = 0 if self.cursor is None else self.cursor.episode + (self.cursor.step > 0)
            self.cursor = Cursor(self.env.reset(seed=config.seed * 1000 + it)[0], episode)
        n_visit = config.steps_per_iter * config.candidates_per_label
        visited = collect(self.env, self.cursor, actors.learner, expert, n_visit, beta, config.noise, self.rng)
        chosen = visited
        if config.candidates_per_label > 1 and buffer is not None:
            chosen = visited[select_uncovered(visited.obs, buffer.observations(), config.steps_per_iter,
                                              actors.learner.normalizer)]  # fmt: skip
        actions = expert(chosen.obs)
        loss = imitation_loss(actors.learner, chosen.obs, actions)
        if buffer is not None:
            buffer.add(chosen.obs, actions, expert.jacobian(chosen.obs) if config.jacobian_weight > 0 else None)
        self.log.add(chosen.obs, actions, it, beta, chosen.episode, chosen.step)
        self.env_steps, self.labels = self.env_steps + len(visited.obs), self.labels + config.steps_per_iter
        return loss


def make_buffer(config: TrainConfig, env: gym.Env) -> ReplayBuffer:
    """Room for every label the run can make (at most ``buffer_size``, the FIFO cap)."""
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    capacity = min(config.buffer_size, config.label_budget)
    dtype = th.long if discrete else th.float32
    shapes = (env.observation_space.shape, env.action_space.shape)
    return ReplayBuffer(capacity, *shapes, dtype, with_jacobians=config.jacobian_weight > 0)


def train(
    config: TrainConfig,
    run_dir: Path,
    logger: Logger,
    demos: Demonstrations | None = None,
    progress: bool = True,
    trust_remote_code: bool = False,
    expert: ActFn | None = None,
) -> RunResult:
    """Run BC or DAgger as configured; writes demos, labels and the policy into ``run_dir`` and logs each iteration.

    Set-up, then the loop, top to bottom in one function on purpose: collect, label, aggregate, fit,
    evaluate; then, in one step after it, the choice of the iterate to keep and the final evaluation.
    ``demos``: demonstrations to fit first instead of collecting them (their first ``n_demo_steps``).
    ``expert``: an expert object (:class:`sb3_il.experts.CallableExpert`) instead of loading ``config.expert``.
    """
    start = time.perf_counter()
    set_random_seed(config.seed)
    generator, rng = th.Generator().manual_seed(config.seed), np.random.default_rng(config.seed)
    env = make_env(config.env)
    expert = expert if expert is not None else choose_expert(config, env, demos, trust_remote_code)
    n_final = max(config.eval_episodes, config.final_eval_episodes)
    evaluator = Evaluator(config.env, n_final, EVAL_SEED, background=config.background_eval)
    try:
        expert_eval = expert_return(expert, evaluator, config)
        demos, demo_obs, demo_acts = demonstrations(config, expert, demos)
        config = result_config = adapt(config, expert, demo_acts, env.action_space)
        demos_saved = evaluator.offload(save_demos, run_dir / "demos", demos.trajectories)
        buffer = make_buffer(config, env)
        buffer.add(demo_obs, demo_acts, expert.jacobian(demo_obs) if config.jacobian_weight > 0 else None)
        actors = Actors(env, config)
        result = RunResult(len(demos.trajectories), isinstance(env.action_space, gym.spaces.Discrete), result_config)
        bar = tqdm(total=config.n_iters + 1, desc=config.run_name, disable=not progress, unit="iter")
        reporter = Reporter(result, expert_eval, logger, bar)
        beta_at = parse_beta_schedule(config.beta_schedule)
        collection = Collection(config, env, rng, labels=len(demo_obs))
        candidates: dict[int, Learner] = {}  # the last select_last iterates
        on_policy: dict[int, float] = {}  # each iterate's imitation loss on the states it visited
        loop_start = time.perf_counter()  # training time excludes setup (expert, demos) and evaluation

        def stats(it: int, loss: float, beta: float) -> dict[str, Any]:
            done = dict(iteration=it, expert_labels=collection.labels, env_steps=collection.env_steps, loss=loss)
            wall_s = time.perf_counter() - loop_start
            return done | dict(grad_steps=config.grad_steps * (it + 1), beta=beta, wall_s=wall_s)

        for it in range(config.n_iters + 1):
            beta = beta_at(it) if it > 0 else 1.0
            if it > 0:  # collect with iterate it - 1, label, aggregate
                on_policy[it - 1] = collection.collect_and_label(it, actors, expert, buffer, beta)
            loss = actors.fit(buffer, config, generator)
            if it > config.n_iters - config.select_last:
                candidates[it] = copy.deepcopy(actors.learner)
            if it < config.n_iters:
                reporter.evaluate(evaluator, actors.learner, config.eval_episodes, stats(it, loss, beta), last=False)

        # The iterate to keep: the last, or with select_last the best of the last few.
        if config.selects_by_loss:  # the last iterate's own collection, labelled only to score it
            on_policy[config.n_iters] = collection.collect_and_label(config.n_iters + 1, actors, expert, None, 0.0)
        if len(candidates) > 1:
            best, result.selection_scores, steps = choose_iterate(candidates, on_policy, config)
            actors.learner.policy.load_state_dict(candidates[best].policy.state_dict())
            actors.learner.normalizer = candidates[best].normalizer
            result.selected_iteration, collection.env_steps = best, collection.env_steps + steps
        reporter.evaluate(evaluator, actors.learner, n_final, stats(config.n_iters, loss, beta), last=True)
        bar.close()
        save_policy(actors.model, actors.learner.normalizer, run_dir)
        save_labels(run_dir / "labels", collection.log)
        demos_saved.result()
        write_provenance(
            [run_dir / "demos", run_dir / "labels"], provenance(config, expert, demos, result, collection.log)
        )
        result.total_wall_s = time.perf_counter() - start
        return result
    finally:
        evaluator.close()
        env.close()


def expert_return(
    expert: Expert | RecordedExpert, evaluator: Evaluator, config: TrainConfig
) -> Future[tuple[float, float]]:
    """The expert's (mean, std) return on the evaluation seeds; as its data recorded it where only its data is here."""
    if isinstance(expert, RecordedExpert):
        return completed(expert.recorded_return)
    return mean_std(evaluate_expert(evaluator, expert, config.env, EVAL_SEED, config.final_eval_episodes))


def provenance(
    config: TrainConfig, expert: Expert, demos: Demonstrations, result: RunResult, log: LabelLog
) -> dict[str, Any]:
    """Who labelled a run's data, on what, with what: written beside ``demos/`` and ``labels/``."""
    return {
        "expert": config.expert,
        "expert_revision": expert.revision,
        "expert_return": result.expert_return_mean,
        "expert_return_std": result.expert_return_std,
        "expert_eval_episodes": config.final_eval_episodes,
        "env_id": config.env_id,
        "gymnasium_version": gym.__version__,
        "seed": config.seed,
        "sb3_il_version": package_version(),
        "demos_source": demos.source or "collected by this run",
        "n_episodes": len(demos.trajectories),
        "n_transitions": int(sum(len(t) for t in demos.trajectories)),
        "n_labels": int(sum(len(row["obs"]) for row in log.rows)),
    }


def choose_iterate(
    candidates: dict[int, Learner], on_policy: dict[int, float], config: TrainConfig
) -> tuple[int, list[float], int]:
    """``select_last``: the best candidate iterate by its on-policy loss or its validation return
    (``select_by``), every candidate's score, and the env steps the choice took."""
    if config.select_by == "return":
        scores, steps = validation_returns(list(candidates.values()), config.env, config.select_episodes)
        return list(candidates)[int(np.argmax(scores))], scores, steps
    return min(candidates, key=on_policy.__getitem__), [on_policy[it] for it in candidates], 0


def log_iteration(logger: Logger, stats: IterationStats) -> None:
    """One row of progress.csv / TensorBoard, its columns always in this order."""
    values = {
        "iteration": stats.iteration,
        "eval/mean_return": stats.mean_return,
        "eval/std_return": stats.std_return,
        "eval/pct_expert": stats.pct_expert,
        "data/expert_labels": stats.expert_labels,
        "data/env_steps": stats.env_steps,
        "data/beta": stats.beta,
        "train/loss": stats.loss,
        "train/grad_steps": stats.grad_steps,
        "time/wall_s": stats.wall_s,
    }
    for key, value in values.items():
        logger.record(key, value)
    logger.dump(step=stats.iteration)
