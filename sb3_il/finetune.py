"""RL fine-tuning of an imitation policy with PPO, prepared so the first updates do not wreck it.

A BC/DAgger policy loaded into PPO has an untrained value head (advantages are noise), and a log-std
(std 1 from SB3's default) far larger than the action noise it was trained for, so naive ``learn`` acts
mostly at random and its first updates push the actor away from what it imitated. The preparation:

1. ``init_log_std``: start with an exploration std the policy tolerates, so PPO's samples stay close to
   the IL actions. By default it is calibrated (:func:`calibrate_log_std`): the largest std whose sampled
   episodes lose at most 10% of the expert's return (of the policy's own when the expert's is unknown).
   Near-expert HalfCheetah DAgger policies flip over under std 0.14 (5851 -> 2041) and calibrate to
   0.05-0.08; such a fragile start explores at 0.05 (:data:`FRAGILE_LOG_STD`). A poor policy has little to
   lose and gets the most the env's entry in ``zoo_configs/ppo.yml`` allows (``max_log_std``): HalfCheetah
   needs SB3's std 1 to improve, Hopper does better at 0.37.
2. ``vf_warmup_rollouts``: before any actor update, fit the critic on rollouts of the IL policy
   (fitted value iteration on PPO's own GAE(λ) returns, ``vf_warmup_epochs`` passes each).
3. Observation statistics stay frozen (they are part of the policy); rewards get their own
   normalization (``normalize_reward``) as the Zoo does for MuJoCo, whose scale is learned during the
   warm-up and then frozen, so the critic's targets do not drift under it.
4. ``anchor_coef``: after each PPO update, pull the actor back toward an anchor policy, which starts as
   the imitation policy and ratchets up to the current one whenever training episodes show it is better
   (:class:`AnchoredPPO`). A fragile start, one that tolerates little exploration noise, is pulled
   harder (:func:`anchor_strength`).
5. ``target_kl``: a fragile start's PPO updates stop early once the policy has moved a little
   (:func:`kl_limit`). Its exploration std is small, so Adam's steps, sized for the Zoo's larger std, move
   it by far more in KL than they would a policy exploring widely.
6. ``final_log_std``: the exploration std may not stay large. A ceiling on it falls linearly to a small
   value over the budget, so what PPO learns to do under its noise is what the deterministic policy does.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback, ConvertCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_il.config import ZOO_CONFIGS, UserError
from sb3_il.envs import make_env
from sb3_il.evaluation import EpisodeRunner
from sb3_il.experts import action_space_mismatch, download_expert, read_vec_normalize, saved_spaces
from sb3_il.files import write_json, write_yaml
from sb3_il.policy import VEC_NORMALIZE_FILE, actor_output, predict_fn
from sb3_il.trainers import EVAL_SEED

#: PPO constructor arguments that may come from zoo_configs/ppo.yml.
PPO_KEYS = (
    "n_steps",
    "batch_size",
    "n_epochs",
    "learning_rate",
    "gamma",
    "gae_lambda",
    "clip_range",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
)


@dataclass
class FinetuneConfig:
    env_id: str
    timesteps: int = 200_000
    seed: int = 0
    #: "prepared" (the preparation above), "naive" (PPO.load + learn) or "scratch" (a fresh PPO, same budget).
    mode: str = "prepared"
    #: Exploration log-std at the start; None: the largest of ``LOG_STD_CANDIDATES`` the policy tolerates, up
    #: to the env's ``max_log_std`` in zoo_configs/ppo.yml.
    init_log_std: float | None = None
    vf_warmup_rollouts: int = 10
    vf_warmup_epochs: int = 10
    #: Pull toward the anchor (the imitation policy, then what the ratchet keeps) after each PPO update,
    #: in PPO epochs (1.0 = as many as PPO's own; None: :func:`anchor_strength` picks it from the start's
    #: exploration std).
    anchor_coef: float | None = None
    #: PPO's ``target_kl``: an update's epochs stop once the mean KL to the rollout's policy passes 1.5x
    #: this (0: no limit; None: :func:`kl_limit` picks it from the start's exploration std).
    target_kl: float | None = None
    #: The span over which the pull decays to 0, as a multiple of the budget (2.0: half of it is left at the
    #: end; with 1.0 a near-expert HalfCheetah policy held until the pull faded, then PPO wore it down).
    anchor_fraction: float = 2.0
    #: Training episodes whose mean return must beat the anchor's for the current policy to replace it
    #: (0: the anchor stays the imitation policy).
    ratchet_episodes: int = 5
    #: The exploration log-std is capped by a ceiling falling linearly from the start's to this by the end
    #: of the budget (None, or at or above the start: PPO alone decides). PPO learns what works under its
    #: sampling noise; a poor Hopper start fine-tuned at std 0.37 (0.32 by the end) hopped with it (2016
    #: over 20 sampled episodes) and stood still without it (1030 deterministic), so the noise has to
    #: shrink toward the policy that is evaluated and deployed.
    final_log_std: float | None = -2.5
    eval_every: int = 10_000
    #: Deterministic episodes per evaluation, on fixed seeds. HalfCheetah policies are bimodal (an episode
    #: runs or flips over), so 10 episodes are too few to see a 10% drop: the poor HalfCheetah start scored
    #: 370 ± 784 on 10 episodes, and an evaluation at 57% of it was 120% over 50. 50 HalfCheetah episodes
    #: every 10k steps cost ~1M cheap env steps, little next to PPO's updates (wall time within run-to-run noise).
    eval_episodes: int = 50
    ppo: dict[str, Any] | None = None


def ppo_hyperparams(env_id: str) -> dict[str, Any]:
    table = yaml.safe_load((ZOO_CONFIGS / "ppo.yml").read_text())
    return dict(table["default"]) | dict(table.get(env_id, {}))


def load_policy_source(source: str) -> tuple[Path, Path | None]:
    """A run folder, or a Hub repo id (``USER/{algo}-{env}`` with a PPO zip): (zip path, vec_normalize path)."""
    folder = Path(source)
    if folder.is_dir():
        if not (folder / "policy.zip").exists():
            raise UserError(f"{folder} has no policy.zip; pass a run folder written by train.py or a Hub repo id")
        vec_normalize = folder / VEC_NORMALIZE_FILE
        return folder / "policy.zip", vec_normalize if vec_normalize.exists() else None
    if source.count("/") != 1 or folder.parent.is_dir():  # runs/typo is a missing folder, not a Hub repo
        raise UserError(f"{source!r} is neither a run folder nor a Hub repo id (USER/NAME)")
    files = download_expert(source)
    if files.algo not in ("ppo", "bc", "dagger"):
        raise UserError(f"{source} holds a {files.algo.upper()} model; fine-tuning continues a PPO policy")
    return files.model_path, files.vec_normalize_path


def check_source_spaces(zip_path: Path, source: str, env_id: str) -> None:
    """A policy for other spaces would fail deep inside VecNormalize or PPO.load; say so in one line."""
    env = make_env(env_id)
    env.close()  # only its spaces are needed
    obs_shape, saved_act = saved_spaces(zip_path)
    acts = action_space_mismatch(saved_act, env.action_space)
    if obs_shape != env.observation_space.shape or acts is not None:
        raise UserError(
            f"{source} is a policy for observations of shape {obs_shape}"
            + (f" and actions in {acts}" if acts else "")
            + f", not {env_id}'s; pass the --env it was trained on"
        )


def read_run_file(source: str, name: str) -> dict[str, Any]:
    """``results.json`` or ``config.yml`` that train.py wrote in a run folder ({}: a Hub repo, or none there)."""
    path = Path(source) / name
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text()) if name.endswith(".json") else dict(yaml.safe_load(path.read_text()))
    except (ValueError, TypeError, yaml.YAMLError) as err:  # JSONDecodeError is a ValueError; TypeError: not a map
        kind = "JSON" if name.endswith(".json") else "YAML"
        problem = f"{path} is not valid {kind} ({err}".splitlines()[0]
        raise UserError(f"{problem}); re-run train.py for {source}") from None


def recorded_expert_return(source: str) -> float | None:
    """The expert's return that train.py recorded in a run folder (None: a Hub repo, or none)."""
    value = read_run_file(source, "results.json").get("expert_return_mean")
    return float(value) if value is not None and math.isfinite(value) else None


class AnchoredPPO(PPO):
    """PPO that, after every update, pulls the actor back toward an anchor policy on the rollout's states.

    The pull regresses the action means (logits for discrete actions) onto the frozen anchor's for
    ``anchor_coef × n_epochs`` epochs, the coefficient decaying linearly to 0 at ``anchor_until`` timesteps:
    early updates, driven by a critic that is still poor, cannot walk the policy away from what it
    imitated, and RL takes over gradually.

    The anchor starts as the imitation policy and ratchets: whenever the mean return of the last
    ``ratchet_episodes`` training episodes beats the anchor's, the current policy becomes the anchor.
    A near-expert start is then held where it is, while a poor start is not pulled back to its poor
    actions once RL has found better ones. Saves as a plain PPO zip (the anchor is not saved).
    """

    anchor: ActorCriticPolicy | None = None
    anchor_return: float = -math.inf
    anchor_coef: float = 0.0
    anchor_until: int = 1
    ratchet_episodes: int = 0
    #: (start, end, timesteps): the log-std ceiling's linear path; None: no ceiling.
    log_std_ceiling: tuple[float, float, int] | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "anchor"]

    def recent_return(self) -> float | None:
        """Mean raw return of the last ``ratchet_episodes`` finished training episodes (None: too few)."""
        if self.ratchet_episodes <= 0 or len(self.ep_info_buffer) < self.ratchet_episodes:
            return None
        return float(np.mean([info["r"] for info in list(self.ep_info_buffer)[-self.ratchet_episodes :]]))

    def train(self) -> None:
        recent = self.recent_return()
        if self.anchor is not None and recent is not None and recent > self.anchor_return:
            self.anchor = copy.deepcopy(self.policy)  # the policy that collected the episodes just scored
            self.anchor_return = recent
            self.ep_info_buffer.clear()  # the next comparison scores only the new anchor's successors
        super().train()
        self.logger.record("train/anchor_return", self.anchor_return)
        if self.log_std_ceiling is not None:
            begin, end, until = self.log_std_ceiling
            with th.no_grad():
                self.policy.log_std.clamp_(max=begin + (end - begin) * min(1.0, self.num_timesteps / until))
        weight = self.anchor_coef * max(0.0, 1.0 - self.num_timesteps / self.anchor_until)
        epochs = math.ceil(weight * self.n_epochs)  # Adam steps have ~lr size whatever the loss scale:
        if self.anchor is None or epochs == 0:  # the pull is measured in epochs, like PPO's own update
            return
        obs = th.as_tensor(self.rollout_buffer.observations, dtype=th.float32).reshape(
            -1, *self.observation_space.shape
        )
        with th.no_grad():
            target = actor_output(self.anchor, obs)
        for _ in range(epochs):
            for idx in th.randperm(len(obs)).split(self.batch_size):
                loss = th.nn.functional.mse_loss(actor_output(self.policy, obs[idx]), target[idx])
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
        self.logger.record("train/anchor_epochs", epochs)
        self.logger.record("train/anchor_loss", loss.item())


class _Evaluate(BaseCallback):
    """Deterministic evaluation on the fixed eval seeds every ``every`` steps (and before the first update)."""

    def __init__(
        self,
        runner: EpisodeRunner,
        n_episodes: int,
        every: int,
        obs_norm: VecNormalize | None,
        curve: list[dict[str, float]],
    ) -> None:
        super().__init__()
        self.runner, self.n_episodes, self.every, self.obs_norm, self.curve = runner, n_episodes, every, obs_norm, curve
        self._next = 0

    def evaluate(self) -> None:
        returns = self.runner(predict_fn(self.model, self.obs_norm), self.n_episodes)
        self.curve.append(
            {"timesteps": self.num_timesteps, "mean_return": float(returns.mean()), "std_return": float(returns.std())}
        )
        self.logger.record("eval/mean_return", float(returns.mean()))
        self.logger.record("eval/std_return", float(returns.std()))
        self._next = self.num_timesteps + self.every

    def _on_training_start(self) -> None:
        if not self.curve:
            self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.evaluate()
        return True


def make_finetune_env(
    env_id: str, n_envs: int, seed: int, obs_stats: Path | None, scratch: bool, normalize_reward: bool, gamma: float
) -> tuple[VecEnv, VecNormalize | None]:
    """(training env, the VecNormalize holding the policy's observation statistics).

    From scratch, observation statistics are learned as usual. A loaded policy keeps its own frozen
    (they define its inputs); rewards get a separate running normalizer in both cases.
    """
    venv: VecEnv = make_vec_env(lambda: make_env(env_id), n_envs=n_envs, seed=seed)
    if scratch:
        env = VecNormalize(venv, norm_obs=True, norm_reward=normalize_reward, gamma=gamma)
        return env, env
    obs_norm = None
    if obs_stats is not None:  # a Hub repo's may be pickled under old gym, which VecNormalize.load cannot read
        obs_norm = read_vec_normalize(obs_stats)
        obs_norm.set_venv(venv)
        venv = obs_norm
        obs_norm.training, obs_norm.norm_reward = False, False
    if normalize_reward:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=gamma)
    return venv, obs_norm


def warm_up_value_function(model: PPO, rollouts: int, epochs: int) -> None:
    """Fit the critic to the IL policy's returns with PPO's own rollout buffer, actor untouched.

    Each round collects ``n_steps`` with the current policy, computes GAE(λ) returns with the current
    critic (fitted value iteration: the bootstrap improves round by round) and regresses the critic on them.
    """
    model._setup_learn(total_timesteps=rollouts * model.n_steps, callback=None, reset_num_timesteps=True)
    critic = [*model.policy.mlp_extractor.value_net.parameters(), *model.policy.value_net.parameters()]
    optimizer = th.optim.Adam(critic, lr=1e-3)
    callback = ConvertCallback(None)
    callback.init_callback(model)
    for _ in range(rollouts):
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
        for _ in range(epochs):
            for batch in model.rollout_buffer.get(model.batch_size):
                values = model.policy.predict_values(batch.observations).flatten()
                loss = th.nn.functional.mse_loss(values, batch.returns)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    model.num_timesteps = 0  # the warm-up's env steps are reported separately, not counted as RL budget


#: A start calibrated to at most this log-std (std 0.08) is fragile: std 0.14 already cost it more than 10%
#: of its return. Near-expert HalfCheetah and Hopper DAgger policies calibrate to -2.5/-3.0, poor BC ones to their cap.
#: Which of -2.5 and -3.0 a fragile start gets depends on the 5 calibration episodes drawn for the PPO seed, and
#: at std 0.08 the `--config strong` HalfCheetah start slid to 82.8-86.9% of its return (seeds 3-4; PPO improves
#: the sampled returns, not the deterministic ones), so a fragile start explores at the smallest std, 0.05.
FRAGILE_LOG_STD = -2.5


def is_fragile(log_std: float | None) -> bool:
    return log_std is not None and log_std <= FRAGILE_LOG_STD


def anchor_strength(coef: float | None, log_std: float | None) -> float:
    """The anchor's pull in PPO epochs: ``coef`` if given, else 3 for a fragile start and 1 otherwise.

    A fragile near-expert policy loses return to changes PPO's noisy early gradients make: with a pull of
    1 the `--config strong` HalfCheetah start dipped to 85% of its return (50-episode evaluations), with 3
    to 90.4% (87.6% on another PPO seed). A poor start needs room: from a BC policy at 370 on
    HalfCheetah, a pull of 3 ended at 307 against 581 (both exploring at std 0.14).
    """
    if coef is not None:
        return coef
    return 3.0 if is_fragile(log_std) else 1.0


#: PPO's target_kl for a fragile start. The Zoo tuned its settings for policies starting at std 0.14
#: (log_std_init -2); they moved a Hopper start at std 0.05 by a mean KL of 0.07-0.08 per update (a poor start
#: at std 0.37: 0.02-0.04), and it dipped to 74.8% and 82.6% of its return on two PPO seeds; with this limit
#: its lowest evaluations were 97.3% and 91.8% (README).
FRAGILE_TARGET_KL = 0.003


def kl_limit(target_kl: float | None, log_std: float | None) -> float | None:
    """PPO's ``target_kl``: ``target_kl`` if given (0: none), else :data:`FRAGILE_TARGET_KL` for a fragile start.

    A poor start needs PPO's full updates to improve; on a near-expert one they are mostly the noise of
    advantage estimates, a random walk away from what it imitated, which the limit keeps short.
    """
    if target_kl is not None:
        return target_kl or None
    return FRAGILE_TARGET_KL if is_fragile(log_std) else None


#: Exploration log-stds tried by :func:`calibrate_log_std`, largest first (std 1, SB3's default, down to 0.05).
LOG_STD_CANDIDATES = (0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0)


def exploration_log_std(calibrated: float) -> float:
    """The log-std a start explores at, from its calibrated one: the smallest candidate for a fragile start,
    whose calibration can land on either of the two smallest (see :data:`FRAGILE_LOG_STD`)."""
    return LOG_STD_CANDIDATES[-1] if is_fragile(calibrated) else calibrated


def calibrate_log_std(
    model: PPO,
    obs_norm: VecNormalize | None,
    env_id: str,
    seed: int,
    episodes: int = 5,
    keep: float = 0.9,
    scale: float | None = None,
    candidates: Sequence[float] = LOG_STD_CANDIDATES,
) -> tuple[float, int]:
    """The largest of ``candidates`` (largest first) whose sampled episodes lose at most ``1 - keep`` of
    ``scale`` (the expert's return; None: the deterministic return itself) against the deterministic ones.

    How much exploration noise a policy tolerates varies by orders of magnitude: a poor start has little
    to lose and needs the noise to improve, a near-expert one can lose half its return to a little. The
    loss is measured against what the task pays, not against the start's own return: noise costs a
    HalfCheetah policy some control penalty whatever it does, and a poor BC policy at 370 lost more than 10%
    of that even at std 0.22; it calibrated to 0.14, where PPO oscillated between 130 and 1250 for 200k
    steps; at std 1 it climbed to 3046 (50-episode evaluations). Episodes use seeds of their own (not the
    evaluation seeds), and their action samples a random stream of their own: fine-tuning draws the same
    numbers whatever the calibration tried. Returns (log-std, env steps used).
    """
    runner = EpisodeRunner(env_id, episodes, seed=10_000 * (seed + 1))

    def score(deterministic: bool) -> float:
        return float(runner(predict_fn(model, obs_norm, deterministic), episodes).mean())

    with th.random.fork_rng():
        th.manual_seed(seed)
        target = score(deterministic=True)
        target -= (1 - keep) * abs(target if scale is None else scale)
        for log_std in candidates:
            with th.no_grad():
                model.policy.log_std.fill_(log_std)
            if score(deterministic=False) >= target:
                break
    runner.close()
    return log_std, runner.steps


def finetune(source: str | None, config: FinetuneConfig, out: Path) -> dict[str, Any]:
    """Fine-tune ``source`` (run folder / Hub repo; None for ``scratch``) into ``out``; returns the results."""
    hyper = ppo_hyperparams(config.env_id) | (config.ppo or {})
    n_envs, normalize_reward = int(hyper.pop("n_envs")), bool(hyper.pop("normalize_reward"))
    max_log_std = float(hyper.pop("max_log_std"))
    if max_log_std < LOG_STD_CANDIDATES[-1]:
        raise UserError(f"max_log_std for {config.env_id} in zoo_configs/ppo.yml must be >= {LOG_STD_CANDIDATES[-1]}")
    ppo_kwargs = {k: hyper[k] for k in PPO_KEYS}
    scratch = config.mode == "scratch"
    if not scratch and source is None:
        raise UserError("pass --run (a run folder or a Hub repo id) to fine-tune")
    zip_path, obs_stats = load_policy_source(source) if not scratch else (None, None)
    if zip_path is not None:
        check_source_spaces(zip_path, source, config.env_id)
    expert_return = recorded_expert_return(source) if not scratch else None
    env, obs_norm = make_finetune_env(
        config.env_id, n_envs, config.seed, obs_stats, scratch, normalize_reward, ppo_kwargs["gamma"]
    )
    logger = configure(str(out), ["csv", "tensorboard"])
    start = time.perf_counter()
    warmup_steps, log_std = 0, None
    if scratch:
        model = PPO("MlpPolicy", env, seed=config.seed, device="cpu", **ppo_kwargs)
    else:
        # Schedules pickled in the zip are replaced; the rest of PPO's settings come in as load kwargs,
        # which PPO.load applies before rebuilding the rollout buffer and loading the weights. The spaces
        # (checked against the env above) are the env's: a Hub zip pickled them under old gym.
        schedules = {
            "learning_rate": ppo_kwargs["learning_rate"],
            "clip_range": _constant(ppo_kwargs["clip_range"]),
            "lr_schedule": _constant(ppo_kwargs["learning_rate"]),
        }
        spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
        model = AnchoredPPO.load(
            zip_path,
            env=env,
            device="cpu",
            custom_objects=schedules | spaces,
            seed=config.seed,
            verbose=0,  # Hub zips saved verbose=1: SB3 would print every KL early stop
            **{k: v for k, v in ppo_kwargs.items() if k not in schedules},
        )
    model.set_logger(logger)  # before the warm-up sets up learning: SB3 would make a logger in /tmp otherwise
    if config.mode == "prepared":
        model.anchor = copy.deepcopy(model.policy)
        model.anchor_until = int(config.anchor_fraction * config.timesteps)
        if hasattr(model.policy, "log_std"):  # Gaussian policies only; a categorical one has none
            log_std = config.init_log_std
            if log_std is None:
                candidates = [c for c in LOG_STD_CANDIDATES if c <= max_log_std]
                log_std, calibration_steps = calibrate_log_std(
                    model, obs_norm, config.env_id, config.seed, scale=expert_return, candidates=candidates
                )
                warmup_steps += calibration_steps
                log_std = exploration_log_std(log_std)
            with th.no_grad():
                model.policy.log_std.fill_(log_std)
            if config.final_log_std is not None and config.final_log_std < log_std:
                model.log_std_ceiling = (log_std, config.final_log_std, config.timesteps)
        model.anchor_coef = anchor_strength(config.anchor_coef, log_std)
        model.target_kl = kl_limit(config.target_kl, log_std)
        model.ratchet_episodes = config.ratchet_episodes
        if config.vf_warmup_rollouts > 0:
            warm_up_value_function(model, config.vf_warmup_rollouts, config.vf_warmup_epochs)
            warmup_steps += config.vf_warmup_rollouts * model.n_steps * n_envs
            if normalize_reward:  # keep the return scale the critic was fitted to
                env.training = False
            if model.ep_info_buffer:  # the imitation policy's own score, from the warm-up's episodes
                model.anchor_return = float(np.mean([info["r"] for info in model.ep_info_buffer]))
                model.ep_info_buffer.clear()
    curve: list[dict[str, float]] = []
    runner = EpisodeRunner(config.env_id, config.eval_episodes, EVAL_SEED)
    evaluate = _Evaluate(runner, config.eval_episodes, config.eval_every, obs_norm, curve)
    checkpoints = CheckpointCallback(max(config.timesteps // 5, 1), str(out / "checkpoints"), name_prefix="policy")
    model.learn(config.timesteps, callback=CallbackList([evaluate, checkpoints]), reset_num_timesteps=False)
    evaluate.evaluate()
    model.save(out / "policy.zip")
    if obs_norm is not None:
        obs_norm.save(str(out / VEC_NORMALIZE_FILE))
    logger.close()
    results = {
        "mode": config.mode,
        "source": source,
        "env_id": config.env_id,
        "curve": curve,
        "start_return": curve[0]["mean_return"],
        "final_return": curve[-1]["mean_return"],
        "min_return": min(p["mean_return"] for p in curve),
        "warmup_env_steps": warmup_steps,
        "init_log_std": log_std,
        "expert_return": expert_return,
        "anchor_coef": model.anchor_coef if config.mode == "prepared" else None,
        "target_kl": model.target_kl,
        "wall_s": time.perf_counter() - start,
    }
    write_yaml(
        out / "config.yml",
        asdict(config)
        | {"ppo": ppo_kwargs | {"n_envs": n_envs, "normalize_reward": normalize_reward, "max_log_std": max_log_std}},
    )
    write_json(out / "results.json", results)
    return results


def _constant(value: float) -> Callable[[float], float]:
    return lambda _: value
