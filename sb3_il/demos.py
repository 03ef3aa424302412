"""Expert demonstrations, collected with ``imitation.data.rollout`` and stored in imitation's format.

Saved demos are imitation's own (a HuggingFace ``datasets`` folder via ``imitation.data.serialize``), so
they load in ``imitation`` too, and ``--demos PATH`` lets a run reuse them instead of re-querying the expert.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
from imitation.data import rollout, serialize
from imitation.data.types import Trajectory
from imitation.data.wrappers import RolloutInfoWrapper
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_il.config import UserError
from sb3_il.envs import make_env
from sb3_il.experts import Expert


def collect_demos(expert: Expert, env_id: str, min_steps: int, seed: int) -> Sequence[Trajectory]:
    """Whole expert episodes until at least ``min_steps`` transitions (imitation's ``make_min_timesteps``)."""
    venv = DummyVecEnv([lambda: RolloutInfoWrapper(make_env(env_id))])
    venv.seed(seed)
    try:
        return rollout.rollout(
            expert.policy_fn,
            venv,
            rollout.make_min_timesteps(min_steps),
            rng=np.random.default_rng(seed),
            unwrap=True,
            verbose=False,
        )
    finally:
        venv.close()


def save_demos(path: Path, trajectories: Sequence[Trajectory]) -> None:
    """Write under a temporary name, then rename: an interrupted save never leaves a loadable half."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    datasets.disable_progress_bars()
    shutil.rmtree(tmp, ignore_errors=True)
    serialize.save(tmp, trajectories)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def load_demos(path: str | Path) -> Sequence[Trajectory]:
    try:
        trajectories = serialize.load(path)
    except Exception as err:  # datasets/pickle raise many types for a missing or corrupt file
        raise UserError(
            f"cannot load demonstrations from {path} ({type(err).__name__}); "
            "pass a folder written by imitation.data.serialize.save (e.g. runs/<run>/demos)"
        ) from None
    if not trajectories:
        raise UserError(f"{path} holds no trajectories; collect demos again without --demos")
    return trajectories


def transitions(trajectories: Sequence[Trajectory]) -> tuple[np.ndarray, np.ndarray]:
    """(observations, actions) of every transition, in order."""
    obs = np.concatenate([traj.obs[:-1] for traj in trajectories])
    acts = np.concatenate([traj.acts for traj in trajectories])
    return obs, acts
