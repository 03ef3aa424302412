"""BC and DAgger, one loop: BC is DAgger's iteration 0 (fit on expert demonstrations) and nothing more.

    demos -> buffer -> fit -> evaluate                                   (iteration 0 = BC)
    for each DAgger iteration: roll out learner (β-mix with expert) -> [select the least covered states]
                               -> relabel with expert -> aggregate into buffer -> fit -> evaluate

Label budget: ``n_demo_steps + n_iters * steps_per_iter`` expert actions (11,000 with the defaults).
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import set_random_seed
from torch.nn import functional as F
from tqdm import tqdm

from sb3_il.buffer import ReplayBuffer
from sb3_il.config import TrainConfig, UserError
from sb3_il.demos import collect_demos, load_demos, save_demos, transitions, with_noise
from sb3_il.envs import make_env
from sb3_il.evaluation import EpisodeRunner, Evaluator, completed, evaluate_expert, percent_of_expert
from sb3_il.experts import Expert, load_expert
from sb3_il.policy import (
    Learner,
    ObsNormalizer,
    activate,
    activation_backward,
    actor_layers,
    actor_parameters,
    make_learner,
    pack_ensemble,
    save_policy,
)

#: Evaluation episodes use seeds EVAL_SEED, EVAL_SEED+1, ... for every run: never the training envs' seeds,
#: and the same starts for the expert and for learners of every seed.
EVAL_SEED = 1_000_000
#: First seed of the episodes that choose among iterates (``select_last``): apart from the evaluation's,
#: so the reported return is not the one the choice was made on.
VALIDATION_SEED = 2_000_000
#: The "returns" of an iteration evaluated with 0 episodes: logged as NaN, a gap in the learning curve.
NO_EVAL = np.array([np.nan])


def parse_beta_schedule(spec: str) -> Callable[[int], float]:
    """β(iteration) = probability of executing the expert's action while DAgger collects (iteration ≥ 1)."""
    kind, _, arg = str(spec).partition(":")
    try:
        if kind == "0" and not arg:
            return lambda it: 0.0
        if kind == "linear" and int(arg) > 0:
            return lambda it: max(0.0, 1.0 - it / int(arg))
        if kind == "exp" and 0 <= float(arg) <= 1:
            return lambda it: float(arg) ** it
    except ValueError:
        pass
    raise UserError(f"bad --beta-schedule {spec!r}; use 0, linear:N (N > 0) or exp:P (0 <= P <= 1)")


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
    expert_return_mean: float = float("nan")
    expert_return_std: float = float("nan")
    curve: list[IterationStats] = field(default_factory=list)
    #: Wall time of the whole run, setup and evaluation included (``curve[-1].wall_s`` is training alone).
    total_wall_s: float = float("nan")
    #: With ``select_last``: the iteration whose policy was kept, and each candidate's validation return.
    selected_iteration: int | None = None
    validation_returns: list[float] = field(default_factory=list)


def fit(
    learner: Learner,
    optimizer: th.optim.Optimizer,
    buffer: ReplayBuffer,
    grad_steps: int,
    batch_size: int,
    generator: th.Generator,
    lr_schedule: str = "constant",
    bounded: bool = False,
    jacobian_weight: float = 0.0,
) -> float:
    """Supervised regression (Box: MSE on the action mean) or classification (Discrete: cross-entropy).

    ``bounded`` drops the error of an output past an action bound when the label is on that bound: the env
    clips both to the same action, and an expert that saturates (a third of trpo Hopper's action entries
    are ±1) would otherwise cost the small net capacity spent on outputting exactly the bound.

    With ``jacobian_weight`` the labels also carry the expert's d action / d obs (:func:`with_jacobians`)
    and the actor's own is fitted to it as well (:func:`sobolev_backprop`).

    At this network size the loop is bound by per-op overhead, not arithmetic: all minibatch indices are
    drawn up front and gradients come from :func:`backprop`. ``lr_schedule="cosine"`` anneals the
    learning rate to 0 over each fit (restarting every iteration), so each iteration ends on settled
    weights instead of wherever the last noisy high-lr step left them.
    """
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    layers = actor_layers(learner.policy)
    all_obs, all_acts = buffer.sample(grad_steps * batch_size, generator)
    if learner.normalizer is not None:
        all_obs = learner.normalizer.torch(all_obs)
    jacobians: Any = None
    if jacobian_weight > 0:  # labels are rows of [action, d action / d raw obs] (see with_jacobians)
        n_act = all_acts.shape[1] // (1 + all_obs.shape[1])
        jacobian = all_acts[:, n_act:].reshape(len(all_acts), n_act, all_obs.shape[1])
        if learner.normalizer is not None:  # the actor sees normalized obs: d/d normalized = d/d raw / scale
            jacobian = jacobian / learner.normalizer.scale
        all_acts, jacobians = all_acts[:, :n_act], jacobian.split(batch_size)
    targets: Any = all_acts.split(batch_size)
    if bounded and learner.action_bounds is not None:  # once per fit: the ranges depend on the labels alone
        lower, upper = label_ranges(all_acts, *learner.action_bounds)
        targets = zip(lower.split(batch_size), upper.split(batch_size), strict=True)
    total = th.zeros(())
    for step, (obs, target) in enumerate(zip(all_obs.split(batch_size), targets, strict=True)):
        if lr_schedule == "cosine":
            for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
                group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * step / grad_steps))
        if jacobians is None:
            total += backprop(layers, obs, target, learner.discrete)
        else:
            total += sobolev_backprop(layers, obs, target, jacobians[step], jacobian_weight)
        optimizer.step()
    for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
        group["lr"] = peak
    return float(total) / grad_steps


def label_ranges(
    acts: th.Tensor, low: np.ndarray | th.Tensor, high: np.ndarray | th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """(lower, upper): per action entry, the outputs the env turns into the labelled action. That is the
    label alone, or everything past the bound when the label sits on it (the env clips)."""
    low_t, high_t = (th.as_tensor(bound, dtype=acts.dtype) for bound in (low, high))
    return th.where(acts <= low_t, -math.inf, acts), th.where(acts >= high_t, math.inf, acts)


def residual(out: th.Tensor, target: th.Tensor | tuple[th.Tensor, th.Tensor]) -> th.Tensor:
    """Box outputs minus their labels; for a (lower, upper) pair from :func:`label_ranges`, the distance to the
    range (0 inside it)."""
    return out - (out.clamp(*target) if isinstance(target, tuple) else target)


@th.no_grad()
def backprop(
    layers: list[tuple[th.nn.Parameter, th.nn.Parameter, str | None]],
    obs: th.Tensor,
    target: th.Tensor | tuple[th.Tensor, th.Tensor],
    discrete: bool,
) -> th.Tensor:
    """The actor's loss on a batch, with its gradients written to each layer's ``.grad``.

    A Box ``target`` may be a (lower, upper) pair from :func:`label_ranges`: an output inside its range
    costs nothing, one outside it the squared distance to the label.

    A hand-written backward pass for the MLP of :func:`sb3_il.policy.actor_layers`: about 40% less time
    per step than autograd's bookkeeping at 2×64, the difference between 4× and 5× imitation's speed on
    Ant. Checked against autograd in tests/test_train.py.
    """
    inputs, x = [], obs
    for weight, bias, activation in layers:
        inputs.append(x)
        x = activate(F.linear(x, weight, bias), activation)
    if discrete:
        log_probs = F.log_softmax(x, dim=1)
        loss = F.nll_loss(log_probs, target)
        grad = (log_probs.exp() - F.one_hot(target, x.shape[1])) / len(x)
    else:
        diff = residual(x, target)
        loss = diff.square().mean()
        grad = diff * (2.0 / diff.numel())
    for i in range(len(layers) - 1, -1, -1):
        weight, bias, _ = layers[i]
        weight.grad, bias.grad = grad.t() @ inputs[i], grad.sum(0)
        if i > 0:  # layer i's input is layer i-1's activation output
            grad = activation_backward(grad @ weight, inputs[i], layers[i - 1][2])
    return loss


def sobolev_backprop(
    layers: list[tuple[th.nn.Parameter, th.nn.Parameter, str | None]],
    obs: th.Tensor,
    target: th.Tensor | tuple[th.Tensor, th.Tensor],
    jacobian: th.Tensor,
    weight: float,
) -> th.Tensor:
    """:func:`backprop`'s Box loss plus ``weight`` × the MSE between the actor's d action / d obs and the
    expert's ``jacobian`` (Sobolev training), with gradients written to each layer's ``.grad``.

    The actor's Jacobian W_L · diag(activation'_{L-1}) · W_{L-1} ... W_1 is multiplied from the output
    side, where it has as many rows as actions (6 rather than 64 for HalfCheetah): 1.3 ms per step against
    3.9 ms carrying it forward. The loss differentiates through it, so this one uses autograd.
    """
    x, outputs = obs, []
    for weight_, bias, activation in layers:
        weight_.grad = bias.grad = None
        x = activate(F.linear(x, weight_, bias), activation)
        outputs.append(x)
    jac = None
    for (weight_, _, activation), out in zip(reversed(layers), reversed(outputs), strict=True):
        slope = activation_backward(th.ones_like(out), out, activation).unsqueeze(1)  # (batch, 1, width)
        jac = slope.transpose(1, 2) * weight_ if jac is None else (jac * slope) @ weight_
    loss = residual(x, target).square().mean() + weight * (jac - jacobian).square().mean()
    loss.backward()
    return loss.detach()


def select_uncovered(
    candidates: np.ndarray, labelled: th.Tensor, k: int, normalizer: ObsNormalizer | None
) -> np.ndarray:
    """Indices (in visit order) of the ``k`` candidate states farthest from the labelled states and from
    each other: greedy k-center, each pick the candidate farthest from everything labelled or picked.

    Distances are taken where the learner sees the states (normalized), so every coordinate counts on
    its own scale. On TQC HalfCheetah, labelling the 250 of 1000 learner states chosen so took DAgger from
    86% to 96% of expert (seeds 0-4, README); 250 drawn at random from the same 1000 did little (seeds
    0-3: 87.8% against 95.8%). It is not a free win: on TQC Hopper it did worse (74% against 81%).
    """
    cands = th.as_tensor(candidates, dtype=th.float32)
    if normalizer is not None:
        cands = normalizer.torch(cands)
    dist = th.full((len(cands),), math.inf)
    for chunk in labelled.split(65_536):  # a full 1M buffer at once would be a 1000 x 1M matrix
        chunk = normalizer.torch(chunk) if normalizer is not None else chunk
        dist = th.minimum(dist, th.cdist(cands, chunk).min(1).values)
    picked = []
    for _ in range(k):
        i = int(dist.argmax())
        picked.append(i)
        dist = th.minimum(dist, (cands - cands[i]).norm(dim=1))
        dist[i] = -math.inf  # never twice, even among duplicate states
    return np.sort(picked)


def with_jacobians(expert: Expert, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Each action label followed by the expert's flattened d action / d obs at its state.

    One query of a white-box expert answers both, so the label budget (states labelled) is unchanged.
    """
    return np.concatenate([actions, expert.jacobian(obs).reshape(len(obs), -1)], axis=1)


def collect(
    env: gym.Env,
    obs: np.ndarray,
    learner: Learner,
    expert: Expert,
    n_steps: int,
    beta: float,
    noise: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Visit ``n_steps`` states from ``obs``, acting with the learner (the expert with probability β).

    Returns the visited states and the observation to continue from; the env resets on termination,
    so the budget is exact. ``noise`` perturbs the executed actions (see
    :func:`sb3_il.demos.with_noise`); labels stay clean.
    """
    observations = np.empty((n_steps, *env.observation_space.shape), dtype=np.float32)
    noisy_learner, noisy_expert = (with_noise(p, noise, env.action_space, rng) for p in (learner, expert))
    for t in range(n_steps):
        observations[t] = obs
        policy = noisy_expert if beta > 0 and rng.random() < beta else noisy_learner
        obs, _, terminated, truncated, _ = env.step(policy(obs[None])[0])
        if terminated or truncated:
            obs, _ = env.reset()
    return observations, obs


def train(config: TrainConfig, run_dir: Path, logger: Logger, progress: bool = True) -> RunResult:
    """Run BC or DAgger as configured; writes demos and the policy into ``run_dir`` and logs each iteration."""
    start = time.perf_counter()
    set_random_seed(config.seed)
    generator = th.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    env = make_env(config.env_id)
    expert = load_expert(config.expert, env)
    n_final = max(config.eval_episodes, config.final_eval_episodes)
    evaluator = Evaluator(config.env_id, n_final, EVAL_SEED, background=config.background_eval)
    try:
        expert_eval = evaluate_expert(evaluator, expert, config.env_id, EVAL_SEED, config.final_eval_episodes)
        if config.demos:
            demos = load_demos(config.demos, env)
        else:
            demos = collect_demos(expert, config.env_id, config.n_demo_steps, config.seed, config.noise)
        demos_saved = evaluator.run(save_demos, run_dir / "demos", demos)
        demo_obs, demo_acts = transitions(demos)
        if not config.demos:  # whole episodes overshoot when one ends early: keep the label budget exact
            demo_obs, demo_acts = demo_obs[: config.n_demo_steps], demo_acts[: config.n_demo_steps]
        result = RunResult(n_demo_episodes=len(demos))

        space = env.action_space
        discrete = isinstance(space, gym.spaces.Discrete)
        sobolev = config.jacobian_weight > 0
        if sobolev:
            demo_acts = with_jacobians(expert, demo_obs, demo_acts)
        buffer = ReplayBuffer(
            config.buffer_size,
            env.observation_space.shape,
            demo_acts.shape[1:],
            th.long if discrete else th.float32,
        )
        buffer.add(demo_obs, demo_acts)
        model = make_learner(env, [config.ensemble * width for width in config.net_arch], config.seed)
        learner = Learner(model.policy)
        members = [learner]  # the actors fitted: the learner itself, or an ensemble packed into it after each fit
        if config.ensemble > 1:
            seeds = [config.seed + 7919 * k for k in range(config.ensemble)]  # apart from other runs' seeds
            members = [Learner(make_learner(env, config.net_arch, seed).policy) for seed in seeds]
        optimizers = [th.optim.Adam(actor_parameters(m.policy), lr=config.lr, fused=True) for m in members]
        beta_at = parse_beta_schedule(config.beta_schedule)
        labels, env_steps = len(demo_obs), 0
        obs: np.ndarray | None = None  # where DAgger's collection continues from
        loop_start = time.perf_counter()  # training time excludes setup (expert, demos) and background eval

        def report(stats: dict[str, Any], returns: Future[np.ndarray]) -> None:
            """Log an iteration once its evaluation is in (evaluations finish in submission order)."""
            if not result.curve:
                expert_returns = expert_eval.result()
                result.expert_return_mean, result.expert_return_std = expert_returns.mean(), expert_returns.std()
            mean, std = float(returns.result().mean()), float(returns.result().std())
            pct = percent_of_expert(mean, result.expert_return_mean)
            result.curve.append(IterationStats(mean_return=mean, std_return=std, pct_expert=pct, **stats))
            _log(logger, result.curve[-1])
            if progress:
                bar.write(
                    f"iter {stats['iteration']:2d}: return {mean:8.1f} ± {std:6.1f} ({pct:5.1f}% of expert "
                    f"{result.expert_return_mean:.0f}), {stats['expert_labels']} labels, {stats['wall_s']:.1f} s"
                )
            bar.update()

        candidates: list[Learner] = []  # the last select_last iterates
        pending: deque[tuple[dict[str, Any], Future[np.ndarray]]] = deque()
        bar = tqdm(total=config.n_iters + 1, desc=config.run_name, disable=not progress, unit="iter")
        for it in range(config.n_iters + 1):
            beta = beta_at(it) if it > 0 else 1.0
            if it > 0:
                if obs is None or config.reset_each_iter:
                    obs, _ = env.reset(seed=config.seed * 1000 + it)
                n_visit = config.steps_per_iter * config.candidates_per_label
                visited, obs = collect(env, obs, learner, expert, n_visit, beta, config.noise, rng)
                env_steps += len(visited)
                if config.candidates_per_label > 1:
                    picked = select_uncovered(visited, buffer.observations(), config.steps_per_iter, learner.normalizer)
                    visited = visited[picked]
                actions = expert(visited)
                buffer.add(visited, with_jacobians(expert, visited, actions) if sobolev else actions)
                labels += len(visited)
            if config.normalize:
                learner.normalizer = ObsNormalizer.from_data(buffer.observations())
            losses = []
            for member, optimizer in zip(members, optimizers, strict=True):
                member.normalizer = learner.normalizer
                losses.append(
                    fit(
                        member,
                        optimizer,
                        buffer,
                        config.grad_steps,
                        config.batch_size,
                        generator,
                        config.lr_schedule,
                        config.bounded_loss,
                        config.jacobian_weight,
                    )
                )
            if config.ensemble > 1:
                pack_ensemble(learner.policy, [member.policy for member in members])
            loss = float(np.mean(losses))
            if it > config.n_iters - config.select_last:
                candidates.append(copy.deepcopy(learner))
            if it == config.n_iters and len(candidates) > 1:
                best, result.validation_returns, steps = select_best(
                    learner, candidates, config.env_id, config.select_episodes
                )
                result.selected_iteration, env_steps = it + 1 - len(candidates) + best, env_steps + steps
            stats = dict(
                iteration=it,
                expert_labels=labels,
                env_steps=env_steps,
                grad_steps=config.grad_steps * (it + 1),
                loss=loss,
                beta=beta,
                wall_s=time.perf_counter() - loop_start,
            )
            n_episodes = n_final if it == config.n_iters else config.eval_episodes
            returns = evaluator.submit(copy.deepcopy(learner), n_episodes) if n_episodes else completed(NO_EVAL)
            pending.append((stats, returns))
            if it == config.n_iters:  # training is over: this process joins in the evaluations still queued
                evaluator.help()
            while pending and (pending[0][1].done() or it == config.n_iters):
                report(*pending.popleft())
        bar.close()
        save_policy(model, learner.normalizer, run_dir)
        demos_saved.result()
        result.total_wall_s = time.perf_counter() - start
        return result
    finally:
        evaluator.close()
        env.close()


def select_best(
    learner: Learner, candidates: list[Learner], env_id: str, n_episodes: int
) -> tuple[int, list[float], int]:
    """Make ``learner`` the candidate with the best mean return over validation episodes.

    DAgger's guarantee (Ross et al., 2011) is for the best policy of the sequence, not the last, and on a
    hard expert consecutive iterates differ by tens of points (TQC Hopper). The episodes are deterministic,
    on seeds of their own (:data:`VALIDATION_SEED`); they cost env steps, not expert labels.
    Returns (index of the chosen candidate, each candidate's validation return, env steps taken).
    """
    runner = EpisodeRunner(env_id, n_episodes, VALIDATION_SEED)
    try:
        scores = [float(runner(candidate, n_episodes).mean()) for candidate in candidates]
    finally:
        runner.close()
    best = int(np.argmax(scores))
    learner.policy.load_state_dict(candidates[best].policy.state_dict())
    learner.normalizer = candidates[best].normalizer
    return best, scores, runner.steps


def _log(logger: Logger, stats: IterationStats) -> None:
    values: dict[str, Any] = {
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
