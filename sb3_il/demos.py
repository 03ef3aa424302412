"""Expert demonstrations, collected with ``imitation.data.rollout`` and stored in imitation's format.

Saved demos are imitation's own (a HuggingFace ``datasets`` folder via ``imitation.data.serialize``), so
they load in ``imitation`` too, and ``--demos PATH`` lets a run reuse them instead of re-querying the expert.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import numpy as np
from imitation.data import rollout
from imitation.data.types import Trajectory
from imitation.data.wrappers import RolloutInfoWrapper
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_il.envs import make_env
from sb3_il.errors import UserError
from sb3_il.experts import Expert
from sb3_il.files import staged_dir
from sb3_il.policy import ActFn


def with_noise(act: ActFn, noise: float, space: gym.Space, rng: np.random.Generator) -> ActFn:
    """``act`` with its executed actions perturbed: Gaussian noise of std ``noise`` × half the action range
    (clipped to the bounds) for Box, a uniformly random action with probability ``noise`` for Discrete.

    Perturbing what is executed, while labels stay the expert's clean actions, shows the learner states
    just off the expert's path together with the action that recovers from them (DART-style).
    """
    if noise <= 0:
        return act
    if isinstance(space, gym.spaces.Discrete):

        def noisy(obs: np.ndarray) -> np.ndarray:
            actions = act(obs)
            flip = rng.random(len(actions)) < noise
            return np.where(flip, rng.integers(space.n, size=len(actions)), actions)

        return noisy
    half_range = (space.high - space.low) / 2

    def noisy(obs: np.ndarray) -> np.ndarray:
        actions = act(obs)
        return np.clip(actions + rng.normal(size=actions.shape) * noise * half_range, space.low, space.high)

    return noisy


def collect_demos(expert: Expert, env_id: str, min_steps: int, seed: int, noise: float = 0.0) -> Sequence[Trajectory]:
    """Whole expert episodes until at least ``min_steps`` transitions (imitation's ``make_min_timesteps``).

    With ``noise`` the executed actions are perturbed (:func:`with_noise`) and the stored actions are the
    expert's clean labels for the visited states.
    """
    venv = DummyVecEnv([lambda: RolloutInfoWrapper(make_env(env_id))])
    venv.seed(seed)
    act = with_noise(expert, noise, venv.action_space, np.random.default_rng(seed + 1))
    try:
        trajectories = rollout.rollout(
            lambda obs, states, starts: (act(obs), None),
            venv,
            rollout.make_min_timesteps(min_steps),
            rng=np.random.default_rng(seed),
            unwrap=True,
            verbose=False,
        )
    finally:
        venv.close()
    if noise > 0:
        trajectories = [dataclasses.replace(t, acts=expert(t.obs[:-1])) for t in trajectories]
    return trajectories


def save_demos(path: Path, trajectories: Sequence[Trajectory]) -> None:
    """Write a new folder (:func:`sb3_il.files.staged_dir`): an interrupted save never leaves a loadable half.

    ``datasets`` (which ``imitation.data.serialize`` uses) is imported here rather than with the module:
    with aiohttp and pandas it takes 0.5-1 s, which a run saves by calling this in its evaluation worker.
    """
    import datasets
    from imitation.data import serialize

    datasets.disable_progress_bars()
    with staged_dir(path) as stage:
        serialize.save(stage, trajectories)


def load_demos(path: str | Path, env: gym.Env | None = None, trust_remote_code: bool = False) -> Sequence[Trajectory]:
    """imitation-format demonstrations; with ``env``, a one-line error unless they fit its spaces.

    A folder (HF datasets arrow files) holds data only. imitation's older single-file formats are pickles,
    which could run code: they load only with ``trust_remote_code``.
    """
    from imitation.data import serialize

    path = Path(path)
    if path.is_file() and not trust_remote_code:
        raise UserError(
            f"{path} is a pickled file, which could run code when loaded; pass a demos folder (HF datasets, e.g. "
            "runs/<run>/demos), or --trust-remote-code only if you trust its source"
        )
    try:
        trajectories = serialize.load(path)
    except Exception as err:  # datasets/pickle raise many types for a missing or corrupt file
        raise UserError(
            f"cannot load demonstrations from {path} ({type(err).__name__}); "
            "pass a folder written by imitation.data.serialize.save (e.g. runs/<run>/demos)"
        ) from None
    if not trajectories:
        raise UserError(f"{path} holds no trajectories; collect demos again without --demos")
    if env is not None:
        obs_shape, act_shape = trajectories[0].obs.shape[1:], trajectories[0].acts.shape[1:]
        if (obs_shape, act_shape) != (env.observation_space.shape, env.action_space.shape):
            raise UserError(
                f"{path} holds demonstrations with observations {obs_shape} and actions {act_shape}, but "
                f"{env.spec.id if env.spec else 'the env'} has {env.observation_space.shape} and "
                f"{env.action_space.shape}; pass demos collected on this env, or drop --demos"
            )
    return list(trajectories)  # plain Trajectory objects, which pickle (imitation's lazy sequence does not)


def transitions(trajectories: Sequence[Trajectory]) -> tuple[np.ndarray, np.ndarray]:
    """(observations, actions) of every transition, in order."""
    obs = np.concatenate([traj.obs[:-1] for traj in trajectories])
    acts = np.concatenate([traj.acts for traj in trajectories])
    return obs, acts
