"""Evaluation of any ``obs batch -> actions`` callable, on fixed seeds so expert and learner are comparable.

Unlike SB3's ``evaluate_policy`` (which spreads episodes over a VecEnv's envs in order), every episode
here runs in its own env seeded ``seed + i``: the expert and each learner see exactly the same starts,
and the n episodes are stepped together so the policy is queried on batches.

Evaluating every iteration costs more env steps than training itself (5 episodes = 5000 steps against
1000 collected), so :class:`Evaluator` can run in a background process: the trainer submits a snapshot
of the policy and goes on collecting and fitting on the other core. Results are identical either way.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

from sb3_il.envs import make_env
from sb3_il.experts import Expert
from sb3_il.files import write_json

ActFn = Callable[[np.ndarray], np.ndarray]


class EpisodeRunner:
    """Holds the eval envs so repeated evaluations (every iteration) do not rebuild MuJoCo models."""

    def __init__(self, env_id: str, max_episodes: int, seed: int) -> None:
        self.envs = [make_env(env_id) for _ in range(max_episodes)]
        self.seed = seed

    def __call__(self, act: ActFn, n_episodes: int) -> np.ndarray:
        """Undiscounted returns of ``n_episodes`` deterministic episodes (seeds ``seed .. seed+n-1``)."""
        envs = self.envs[:n_episodes]
        obs = np.stack([env.reset(seed=self.seed + i)[0] for i, env in enumerate(envs)])
        returns = np.zeros(len(envs))
        active = np.ones(len(envs), dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            actions = act(obs[idx])
            for j, i in enumerate(idx):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[j])
                returns[i] += reward
                active[i] = not (terminated or truncated)
        return returns

    def close(self) -> None:
        for env in self.envs:
            env.close()


_worker_runner: EpisodeRunner | None = None


def _init_worker(env_id: str, max_episodes: int, seed: int) -> None:
    import torch as th

    th.set_num_threads(1)
    global _worker_runner
    _worker_runner = EpisodeRunner(env_id, max_episodes, seed)


def _run_in_worker(act: ActFn, n_episodes: int) -> np.ndarray:
    assert _worker_runner is not None
    return _worker_runner(act, n_episodes)


class Evaluator:
    """``submit(policy, n)`` returns a future of ``n`` episode returns, in submission order.

    With ``background=True`` episodes run in one worker process (the policy must pickle: pass a
    snapshot, since it is pickled when the worker picks it up, not at ``submit``); otherwise at once.
    """

    def __init__(self, env_id: str, max_episodes: int, seed: int, background: bool = False) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._runner: EpisodeRunner | None = None
        if background:
            self._pool = ProcessPoolExecutor(
                1, multiprocessing.get_context("spawn"), _init_worker, (env_id, max_episodes, seed)
            )
        else:
            self._runner = EpisodeRunner(env_id, max_episodes, seed)

    def submit(self, act: ActFn, n_episodes: int) -> Future[np.ndarray]:
        if self._pool is not None:
            return self._pool.submit(_run_in_worker, act, n_episodes)
        future: Future[np.ndarray] = Future()
        future.set_result(self._runner(act, n_episodes))
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._runner is not None:
            self._runner.close()


def expert_returns_cache() -> Path:
    return Path(os.environ.get("SB3_IL_CACHE", Path.home() / ".cache" / "sb3_il")) / "expert_returns.json"


def evaluate_expert(
    evaluator: Evaluator, expert: Expert, env_id: str, seed: int, n_episodes: int
) -> Future[np.ndarray]:
    """The expert's returns on the evaluation seeds, computed once per exact expert and env and cached.

    An expert is deterministic and frozen, so its returns on fixed seeds depend only on its Hub revision,
    the env, the seeds and the simulator's version. Every run of a benchmark then compares against the
    same expert numbers without re-simulating them.
    """
    key = (
        f"{expert.repo_id}@{expert.revision}|{env_id}|seed={seed}|n={n_episodes}"
        f"|mujoco={mujoco.__version__}|gymnasium={gym.__version__}"
    )
    path = expert_returns_cache()
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key in cache:
        future: Future[np.ndarray] = Future()
        future.set_result(np.asarray(cache[key]))
        return future

    def store(done: Future[np.ndarray]) -> None:
        if done.exception() is None:
            latest = json.loads(path.read_text()) if path.exists() else {}
            write_json(path, latest | {key: done.result().tolist()})

    future = evaluator.submit(expert, n_episodes)
    future.add_done_callback(store)
    return future


def percent_of_expert(learner_return: float, expert_return: float) -> float:
    """``100 * learner / expert``, generalised so that worse is always below 100 when the expert's
    return is negative (Pendulum): ``100 * (1 + (learner - expert) / |expert|)``."""
    return 100.0 * (1.0 + (learner_return - expert_return) / abs(expert_return))
