"""RL fine-tuning of an imitation policy with PPO: orchestration of the pieces in ``sb3_il.anchored_ppo``.

``prepared`` mode: calibrate the exploration std, warm up the critic, then PPO with an anchor that holds the
imitation policy; observation statistics stay frozen (they are part of the policy) and rewards get their
own normalization, learned during the warm-up and then frozen. ``naive`` (PPO.load + learn) and ``scratch``
(a fresh PPO) are references on the same budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from sb3_il.anchored_ppo import (
    LOG_STD_CANDIDATES,
    AnchoredPPO,
    anchor_strength,
    calibrate_log_std,
    exploration_log_std,
    kl_limit,
    use_fused_adam,
    warm_up_value_function,
)
from sb3_il.config import EnvSpec, FinetuneConfig, ppo_hyperparams
from sb3_il.envs import make_env, wrapper_names
from sb3_il.errors import UserError
from sb3_il.evaluation import EVAL_SEED, EpisodeRunner, percent_of_expert
from sb3_il.experts import action_space_mismatch, download_expert, saved_spaces
from sb3_il.files import staged_dir
from sb3_il.plots import finetune_curves
from sb3_il.policy import POLICY_FILE, VEC_NORMALIZE_FILE, predict_fn
from sb3_il.runs import make_logger, read_run, run_file, write_run_files
from sb3_il.trust import constant, load_model, read_vec_normalize

#: PPO constructor arguments that may come from zoo_configs/ppo.yml.
PPO_KEYS = ("n_steps", "batch_size", "n_epochs", "learning_rate", "gamma", "gae_lambda", "clip_range", "ent_coef",
            "vf_coef", "max_grad_norm")  # fmt: skip


@dataclass
class Source:
    """The policy to fine-tune: its files, the env its run recorded (None for a Hub repo), the wrappers it acts
    under, and the returns its run recorded (None if unknown)."""

    name: str
    zip_path: Path
    vec_normalize: Path | None
    env: EnvSpec | None = None
    imitation_return: float | None = None
    expert_return: float | None = None
    wrappers: tuple[str, ...] = ()


def load_source(source: str) -> Source:
    """A finished run folder, or a Hub repo id (``USER/{algo}-{env}`` holding a PPO zip)."""
    folder = Path(source)
    if folder.is_dir():
        run = read_run(folder)
        vec_normalize = folder / VEC_NORMALIZE_FILE
        stats = run_file(folder, VEC_NORMALIZE_FILE) if vec_normalize.exists() or vec_normalize.is_symlink() else None
        return Source(source, run_file(folder, POLICY_FILE), stats, run.env, run.final_return, run.expert_return,
                      run.env.wrappers)  # fmt: skip
    if source.count("/") != 1 or folder.parent.is_dir():  # runs/typo is a missing folder, not a Hub repo
        raise UserError(f"{source!r} is neither a run folder nor a Hub repo id (USER/NAME)")
    files = download_expert(source)
    if files.algo not in ("ppo", "bc", "dagger"):
        raise UserError(f"{source} holds a {files.algo.upper()} model; fine-tuning continues a PPO policy")
    wrappers = wrapper_names(files.env_wrapper, f"the expert's ({source}) env_wrapper")
    return Source(source, files.model_path, files.vec_normalize_path, wrappers=tuple(wrappers))


def check_source_spaces(source: Source, spec: EnvSpec) -> None:
    """A policy for other spaces would fail deep inside VecNormalize or PPO.load; say so in one line."""
    with closing(make_env(spec)) as env:  # only its spaces are needed
        pass
    obs_shape, saved_act = saved_spaces(source.zip_path)
    acts = action_space_mismatch(saved_act, env.action_space)
    if obs_shape != env.observation_space.shape or acts is not None:
        raise UserError(
            f"{source.name} is a policy for observations of shape {obs_shape}"
            + (f" and actions in {acts}" if acts else "")
            + f", not {spec}'s; pass the --env it was trained on"
        )


class EvaluateEvery(BaseCallback):
    """Deterministic evaluation on the fixed eval seeds every ``every`` steps (and before the first update),
    with a progress bar (steps, steps/s, time left) and one line per evaluation unless ``quiet``."""

    def __init__(self, runner: EpisodeRunner, n_episodes: int, every: int, obs_norm: VecNormalize | None,
                 total: int, label: str, expert_return: float | None, quiet: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.runner, self.n_episodes, self.every, self.obs_norm = runner, n_episodes, every, obs_norm
        self.expert_return = expert_return
        self.curve: list[dict[str, float]] = []
        self._next = 0
        self.quiet = quiet
        self.bar = tqdm(total=total, desc=label, unit="step", disable=quiet, dynamic_ncols=True)

    def evaluate(self) -> None:
        returns = self.runner(predict_fn(self.model, self.obs_norm), self.n_episodes)
        mean, std = float(returns.mean()), float(returns.std())
        self.curve.append({"timesteps": self.num_timesteps, "mean_return": mean, "std_return": std})
        self.logger.record("eval/mean_return", mean)
        self.logger.record("eval/std_return", std)
        self._next = self.num_timesteps + self.every
        start = self.curve[0]["mean_return"]
        pcts = [f"{percent_of_expert(mean, start):.1f}% of start"] if start else []
        if self.expert_return:
            pcts.append(f"{percent_of_expert(mean, self.expert_return):.1f}% of expert")
        if not self.quiet:
            self.bar.write(f"step {self.num_timesteps:>8d}: return {mean:8.1f} ± {std:6.1f} ({', '.join(pcts)})")

    def _on_training_start(self) -> None:
        if not self.curve:
            self.evaluate()

    def _on_step(self) -> bool:
        self.bar.update(self.model.n_envs)
        if self.num_timesteps >= self._next:
            self.evaluate()
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def make_finetune_env(
    spec: EnvSpec,
    settings: PPOSettings,
    seed: int,
    obs_stats: Path | None,
    scratch: bool,
    trust_remote_code: bool = False,
) -> tuple[VecEnv, VecNormalize | None]:
    """(training env, the VecNormalize holding the policy's observation statistics).

    From scratch, observation statistics are learned as usual. A loaded policy keeps its own frozen
    (they define its inputs); rewards get a separate running normalizer in both cases.
    """
    gamma = settings.kwargs["gamma"]
    venv: VecEnv = make_vec_env(lambda: make_env(spec), n_envs=settings.n_envs, seed=seed)
    if scratch:
        env = VecNormalize(venv, norm_obs=True, norm_reward=settings.normalize_reward, gamma=gamma)
        return env, env
    obs_norm = None
    if obs_stats is not None:  # a Hub repo's may be pickled under old gym, which VecNormalize.load cannot read
        obs_norm = read_vec_normalize(obs_stats, trust_remote_code)
        obs_norm.set_venv(venv)
        venv = obs_norm
        obs_norm.training, obs_norm.norm_reward = False, False
    if settings.normalize_reward:
        venv = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=gamma)
    return venv, obs_norm


def load_ppo(
    source: Source, env: VecEnv, seed: int, ppo_kwargs: dict[str, Any], trust_remote_code: bool = False
) -> AnchoredPPO:
    """The source's PPO zip with our settings. Schedules pickled in the zip are replaced, the spaces are the
    env's (checked against the zip's; a Hub zip pickled them under old gym), the rest are load kwargs."""
    schedules = {
        "learning_rate": ppo_kwargs["learning_rate"],
        "clip_range": constant(ppo_kwargs["clip_range"]),
        "lr_schedule": constant(ppo_kwargs["learning_rate"]),
    }
    spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
    return load_model(
        AnchoredPPO,
        source.zip_path,
        schedules | spaces,
        trust_remote_code,
        env=env,
        seed=seed,
        verbose=0,  # Hub zips saved verbose=1: SB3 would print every KL early stop
        **{k: v for k, v in ppo_kwargs.items() if k not in schedules},
    )


@dataclass
class PPOSettings:
    """PPO's settings for a fine-tuning run: ``zoo_configs/ppo.yml``'s for the env, under the run's overrides."""

    kwargs: dict[str, Any]  # PPO constructor arguments (PPO_KEYS)
    n_envs: int
    normalize_reward: bool
    max_log_std: float

    @classmethod
    def resolve(cls, config: FinetuneConfig) -> PPOSettings:
        hyper = ppo_hyperparams(config.env_id) | (config.ppo or {})
        settings = cls({k: hyper[k] for k in PPO_KEYS}, int(hyper["n_envs"]), bool(hyper["normalize_reward"]),
                       float(hyper["max_log_std"]))  # fmt: skip
        if settings.max_log_std < LOG_STD_CANDIDATES[-1]:
            raise UserError(
                f"max_log_std for {config.env_id} in zoo_configs/ppo.yml must be >= {LOG_STD_CANDIDATES[-1]}"
            )
        return settings

    def to_dict(self) -> dict[str, Any]:
        return self.kwargs | {"n_envs": self.n_envs, "normalize_reward": self.normalize_reward,
                              "max_log_std": self.max_log_std}  # fmt: skip


def prepare(model: AnchoredPPO, config: FinetuneConfig, obs_norm: VecNormalize | None, source: Source,
            settings: PPOSettings, env: VecEnv) -> tuple[float | None, int]:  # fmt: skip
    """Exploration std, anchor and KL limit, and critic warm-up of ``prepared`` mode; (log-std, env steps used)."""
    log_std, steps, ceiling = None, 0, None
    if hasattr(model.policy, "log_std"):  # Gaussian policies only; a categorical one has none
        log_std = config.init_log_std
        if log_std is None:
            candidates = [c for c in LOG_STD_CANDIDATES if c <= settings.max_log_std]
            calibrated, steps = calibrate_log_std(
                model, obs_norm, config.env, config.seed, scale=source.expert_return, candidates=candidates
            )
            log_std = exploration_log_std(calibrated)
        with th.no_grad():
            model.policy.log_std.fill_(log_std)
        if config.final_log_std is not None and config.final_log_std < log_std:
            ceiling = (log_std, config.final_log_std, config.timesteps)
    until = int(config.anchor_fraction * config.timesteps)
    coef, target_kl = anchor_strength(config.anchor_coef, log_std), kl_limit(config.target_kl, log_std)
    model.hold(coef, until, target_kl, config.ratchet_episodes, ceiling)
    if config.vf_warmup_rollouts > 0:
        warm_up_value_function(model, config.vf_warmup_rollouts, config.vf_warmup_epochs)
        steps += config.vf_warmup_rollouts * model.n_steps * model.n_envs
        if settings.normalize_reward:  # keep the return scale the critic was fitted to
            env.training = False
        if model.ep_info_buffer:  # the imitation policy's own score, from the warm-up's episodes
            model.anchor_return = float(np.mean([info["r"] for info in model.ep_info_buffer]))
            model.ep_info_buffer.clear()
    return log_std, steps


def make_model(source: Source, env: VecEnv, config: FinetuneConfig, settings: PPOSettings,
               trust_remote_code: bool) -> PPO:  # fmt: skip
    """A fresh PPO (``scratch``) or the source's policy loaded for PPO, on the fused Adam kernel."""
    if config.mode == "scratch":
        model = PPO("MlpPolicy", env, seed=config.seed, device="cpu", **settings.kwargs)
    else:
        model = load_ppo(source, env, config.seed, settings.kwargs, trust_remote_code)
    use_fused_adam(model)
    return model


def finetune(
    source: Source, config: FinetuneConfig, out: Path, trust_remote_code: bool = False, quiet: bool = False
) -> dict[str, Any]:
    """Fine-tune ``source`` (loaded once by :func:`finetune_run`; unused by ``scratch``) into ``out``.

    Top to bottom: PPO's settings, the envs, the model, ``prepared`` mode's preparation, learning with an
    evaluation every ``eval_every`` steps, then the policy and the results written.
    """
    config.validate()
    settings = PPOSettings.resolve(config)
    scratch = config.mode == "scratch"
    obs_stats = None if scratch else source.vec_normalize
    env, obs_norm = make_finetune_env(config.env, settings, config.seed, obs_stats, scratch, trust_remote_code)
    logger = make_logger(out)
    start = time.perf_counter()
    model = make_model(source, env, config, settings, trust_remote_code)
    model.set_logger(logger)  # before the warm-up sets up learning: SB3 would make a logger in /tmp otherwise
    log_std, warmup_steps = None, 0
    if config.mode == "prepared":
        log_std, warmup_steps = prepare(model, config, obs_norm, source, settings, env)
    checkpoints = CheckpointCallback(max(config.timesteps // 5, 1), str(out / "checkpoints"), name_prefix="policy")
    with EpisodeRunner(config.env, config.eval_episodes, EVAL_SEED) as runner, closing(env):
        evaluate = EvaluateEvery(runner, config.eval_episodes, config.eval_every, obs_norm, config.timesteps,
                                 config.mode, source.expert_return, quiet)  # fmt: skip
        model.learn(config.timesteps, callback=CallbackList([evaluate, checkpoints]), reset_num_timesteps=False)
        evaluate.evaluate()
    model.save(out / POLICY_FILE)
    if obs_norm is not None:
        obs_norm.save(str(out / VEC_NORMALIZE_FILE))
    logger.close()
    curve = evaluate.curve
    results = {
        "kind": "finetune", "mode": config.mode, "source": None if scratch else source.name, "env_id": config.env_id,
        "env_wrapper": config.env_wrapper, "curve": curve, "start_return": curve[0]["mean_return"],
        "final_return": curve[-1]["mean_return"], "min_return": min(p["mean_return"] for p in curve),
        "warmup_env_steps": warmup_steps, "init_log_std": log_std, "expert_return": source.expert_return,
        "anchor_coef": model.anchor_coef if config.mode == "prepared" else None, "target_kl": model.target_kl,
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip
    write_run_files(out, asdict(config) | {"ppo": settings.to_dict()}, results)
    return results


def finetune_run(
    source: str,
    config: FinetuneConfig,
    compare: Sequence[str] = (),
    out: Path | None = None,
    trust_remote_code: bool = False,
    quiet: bool = False,
) -> Path:
    """Fine-tune ``source`` (``config.mode``) into ``out``; each mode of ``compare`` (references on the same
    budget) goes to ``out/reference-MODE``, and a ``finetune_curve.png`` shows them all."""
    modes = [config.mode, *(mode for mode in compare if mode != config.mode)]
    src = load_source(source)
    if config.env_id is None and src.env is None:
        raise UserError(f"{source} is a Hub repo; pass --env ENV_ID")
    if config.env_id is None:
        config = dataclasses.replace(config, env_id=src.env.id)
    if not config.env_wrapper:  # the wrappers the policy acts under, as its run or repo records them
        config = dataclasses.replace(config, env_wrapper=list(src.wrappers))
    env_id = config.env_id
    config.validate()  # every mode's settings, before anything is written
    check_source_spaces(src, config.env)
    name = Path(source).name if Path(source).is_dir() else source.replace("/", "-")
    out = Path(out) if out is not None else Path("runs") / f"finetune-{name}"
    curves = {}
    reads = [Path(source)] if Path(source).is_dir() else []
    with staged_dir(out, discard_on=(UserError,), reads=reads) as stage:
        for i, mode in enumerate(modes):
            folder = stage if i == 0 else stage / f"reference-{mode}"
            results = finetune(src, dataclasses.replace(config, mode=mode), folder, trust_remote_code, quiet)
            curves[mode] = results["curve"]
            if not quiet:
                print(summary_line(mode, results), flush=True)
        title = f"PPO fine-tuning on {env_id} from {name}"
        finetune_curves(curves, src.imitation_return, src.expert_return, title, stage / "finetune_curve.png")
    return out


def summary_line(mode: str, results: dict[str, Any]) -> str:
    extras = [(k, results[k]) for k in ("init_log_std", "anchor_coef", "target_kl") if results[k] is not None]
    return (
        f"{mode:9s}: start {results['start_return']:.0f}, min {results['min_return']:.0f}, "
        f"final {results['final_return']:.0f} ({results['wall_s']:.0f} s"
        + "".join(f", {k.replace('_coef', '').replace('_', ' ')} {v}" for k, v in extras)
        + ")"
    )
