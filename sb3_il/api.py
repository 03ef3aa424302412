"""The Python API: ``BC`` and ``DAgger`` in the SB3 shape (construct, ``learn``, ``save``), ``evaluate`` and
``fine_tune`` (named apart from the ``sb3_il.finetune`` module, which an attribute of that name would shadow).

    from sb3_il import DAgger
    model = DAgger("Hopper-v4", expert="sb3/trpo-Hopper-v3", seed=0).learn()   # a stable_baselines3.PPO

``env`` is an id or a ``gymnasium.Env``; ``expert`` a Hub repo id, a local SB3 zip (``vec_normalize.pkl``
beside it is used) or a callable mapping a batch of observations to actions; the other keyword arguments
are :class:`sb3_il.config.TrainConfig` fields, defaulting as on the CLI.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import shutil
import tempfile
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_il.config import MAX_EVAL_EPISODES, FinetuneConfig, make_config
from sb3_il.envs import make_env
from sb3_il.errors import UserError
from sb3_il.evaluation import EVAL_SEED, EpisodeRunner, check_video_path, percent_of_expert, record_video
from sb3_il.experts import CallableExpert, load_expert
from sb3_il.files import MARKER, staged_dir
from sb3_il.finetune import finetune_run
from sb3_il.policy import ActFn, load_run_model, predict_fn
from sb3_il.runs import read_run, train_run

_registered = itertools.count()


def register_env(env: gym.Env) -> str:
    """An id under which ``gym.make`` builds copies of ``env`` in this process (a user's env instance)."""
    env_id = f"sb3_il/{type(env.unwrapped).__name__}-v{next(_registered)}"
    template = copy.deepcopy(env.unwrapped)
    max_steps = env.spec.max_episode_steps if env.spec is not None else None
    gym.register(env_id, entry_point=lambda **kwargs: _copy(template, **kwargs), max_episode_steps=max_steps)
    return env_id


def _copy(template: gym.Env, render_mode: str | None = None, **_: Any) -> gym.Env:
    env = copy.deepcopy(template)
    env.render_mode = render_mode
    return env


class DAgger:
    """DAgger (BC when ``algo == "bc"``) on ``env`` from ``expert``; ``learn()`` returns the trained PPO model."""

    algo = "dagger"

    def __init__(
        self,
        env: str | gym.Env,
        expert: str | Path | ActFn | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
        **settings: Any,
    ) -> None:
        overrides: dict[str, Any] = settings | {"seed": seed}
        self.trust_remote_code = trust_remote_code
        self._expert = None
        if isinstance(env, gym.Env):  # built by name in worker processes, which cannot see this instance
            env, overrides["background_eval"] = register_env(env), False
        if callable(expert) and not isinstance(expert, str | Path):
            overrides |= {"expert": CallableExpert.name_of(expert), "background_eval": False}
        elif expert is not None:
            overrides["expert"] = str(expert)
        self.config = make_config(self.algo, env, overrides)
        if callable(expert) and not isinstance(expert, str | Path):
            with closing(make_env(self.config.env)) as spaces:
                self._expert = CallableExpert(expert, spaces.action_space, self.config.expert)
        self.results: dict[str, Any] | None = None
        self.model: PPO | None = None
        self.vec_normalize: VecNormalize | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None

    def learn(self, progress: bool = False) -> PPO:
        """Train; the model is also ``self.model`` (with ``self.vec_normalize``), the numbers ``self.results``.

        The run folder lives in a temporary folder that goes with this object (or the process); ``save()``
        keeps a copy.
        """
        scratch = tempfile.TemporaryDirectory(prefix="sb3_il-")
        folder = Path(scratch.name) / "run"
        self.results = train_run(self.config, folder, progress, self.trust_remote_code, self._expert)
        self.model, self.vec_normalize = load_run_model(folder)  # written by this process
        self._scratch = scratch  # the previous learn()'s folder, if any, is removed with its object
        return self.model

    @property
    def policy(self) -> ActorCriticPolicy | None:
        """The trained policy (``self.model.policy``), as SB3 models have one."""
        return self.model.policy if self.model is not None else None

    @property
    def _folder(self) -> Path | None:
        return Path(self._scratch.name) / "run" if self._scratch is not None else None

    def __getattr__(self, name: str) -> Any:
        """The results as attributes: ``pct_expert``, ``mean_return``, ``expert_labels``, ..."""
        results = self.__dict__.get("results")
        if results is not None and name in results:
            return results[name]
        raise AttributeError(name)

    def save(self, path: str | Path) -> Path:
        """Write the run folder (policy.zip, vec_normalize.pkl, config.yml, results.json, ...) to ``path``."""
        if self._folder is None:
            raise UserError("call learn() before save()")
        with staged_dir(Path(path)) as stage:
            for item in self._folder.iterdir():
                if item.name != MARKER:
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, stage / item.name)
        return Path(path)


class BC(DAgger):
    """Behavior cloning: one fit on the expert's demonstrations (DAgger's iteration 0)."""

    algo = "bc"


def evaluate(
    target: str,
    env_id: str | None = None,
    episodes: int = 20,
    seed: int = EVAL_SEED,
    video: Path | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Score ``target`` (a run folder, a Hub repo id or a local SB3 zip) on the evaluation seeds training uses.

    Returns mean and std return, and % of the expert where the run folder recorded the expert's return.
    """
    if not 0 < episodes <= MAX_EVAL_EPISODES:
        raise UserError(f"--episodes must be 1 to {MAX_EVAL_EPISODES}, got {episodes}")
    if video is not None:
        check_video_path(Path(video))
    expert_return = None
    if Path(target).is_dir():
        run = read_run(Path(target))
        env = env_id or run.env
        act: Callable = predict_fn(*load_run_model(Path(target), trust_remote_code))
        expert_return = run.expert_return
    elif env_id is None:
        raise UserError(f"{target} does not name its env; pass --env ENV_ID")
    else:
        env = env_id
        with closing(make_env(env)) as spaces:
            act = load_expert(target, spaces, trust_remote_code)
    chunk = min(episodes, 100)  # episodes step together, a chunk at a time: one env each in memory
    with EpisodeRunner(env, chunk, seed) as runner:
        parts = [runner(act, min(chunk, episodes - first), first) for first in range(0, episodes, chunk)]
    returns = np.concatenate(parts)
    results = {"target": str(target), "env_id": str(env), "episodes": episodes, "seed": seed,
               "mean_return": float(returns.mean()), "std_return": float(returns.std())}  # fmt: skip
    if expert_return is not None:
        results["pct_expert"] = percent_of_expert(results["mean_return"], expert_return)
    if video is not None:
        why_not = record_video(act, env, Path(video), seed)
        results["video"] = str(video) if why_not is None else f"not written: {why_not}"
    return results


def fine_tune(
    run: str | Path,
    out: str | Path | None = None,
    compare: tuple[str, ...] = (),
    quiet: bool = False,
    trust_remote_code: bool = False,
    **settings: Any,
) -> Path:
    """PPO fine-tuning of ``run`` (a run folder, or a Hub repo holding a PPO zip), as ``sb3-il finetune`` does:
    a progress bar and a line per evaluation unless ``quiet``; returns the output folder, whose
    ``policy.zip`` (+ ``vec_normalize.pkl``) ``PPO.load`` opens. ``settings``: :class:`FinetuneConfig` fields
    (``timesteps``, ``seed``, ...); ``compare``: references (``naive``, ``scratch``) on the same budget."""
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"unknown fine-tuning settings {unknown}; valid: {', '.join(sorted(known))}")
    out = Path(out) if out is not None else None
    return finetune_run(str(run), FinetuneConfig(**settings), compare, out, trust_remote_code, quiet)
