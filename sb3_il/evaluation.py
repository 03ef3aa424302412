"""Evaluation of any ``obs batch -> actions`` callable, on fixed seeds so expert and learner are comparable.

Unlike SB3's ``evaluate_policy`` (which spreads episodes over a VecEnv's envs in order), every episode
here runs in its own env seeded ``seed + i``: the expert and each learner see exactly the same starts,
and the n episodes are stepped together so the policy is queried on batches.

Evaluating every iteration costs more env steps than training itself (5 episodes = 5000 steps against
1000 collected), so :class:`Evaluator` can run in a background process: the trainer submits a snapshot
of the policy and goes on collecting and fitting on the other core. Results are identical either way.
"""

from __future__ import annotations

import atexit
import functools
import gc
import json
import multiprocessing
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import mujoco
import numpy as np

from sb3_il.config import EnvSpec
from sb3_il.envs import make_env
from sb3_il.errors import UserError, first_line
from sb3_il.experts import Expert
from sb3_il.files import atomic_write, write_json
from sb3_il.policy import ActFn, use_one_thread

T = TypeVar("T")

#: Evaluation episodes use seeds EVAL_SEED, EVAL_SEED+1, ... for every run: never the training envs' seeds,
#: and the same starts for the expert and for learners of every seed.
EVAL_SEED = 1_000_000
#: First seed of the episodes that choose among iterates (``select_last``): apart from the evaluation's,
#: so the reported return is not the one the choice was made on.
VALIDATION_SEED = 2_000_000


class EpisodeRunner:
    """Holds the eval envs so repeated evaluations (every iteration) do not rebuild MuJoCo models."""

    def __init__(self, env_id: EnvSpec | str, max_episodes: int, seed: int) -> None:
        self.envs = [make_env(env_id) for _ in range(max_episodes)]
        self.seed = seed
        self.steps = 0  # env steps taken so far, for budgets that count them
        self.terminated = np.zeros(0, dtype=bool)  # the last call's episodes that ended by termination

    def __call__(self, act: ActFn, n_episodes: int, first: int = 0) -> np.ndarray:
        """Undiscounted returns of ``n_episodes`` deterministic episodes (seeds ``seed+first ..``)."""
        envs = self.envs[:n_episodes]
        obs = np.stack([env.reset(seed=self.seed + first + i)[0] for i, env in enumerate(envs)])
        returns = np.zeros(len(envs))
        active = np.ones(len(envs), dtype=bool)
        self.terminated = np.zeros(len(envs), dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            actions = act(obs[idx])
            self.steps += len(idx)
            for j, i in enumerate(idx):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[j])
                returns[i] += reward
                active[i] = not (terminated or truncated)
                self.terminated[i] = terminated
        return returns

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def __enter__(self) -> EpisodeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_worker_runner: EpisodeRunner | None = None


def _init_worker(env_id: EnvSpec | str, max_episodes: int, seed: int) -> None:
    use_one_thread()
    atexit.register(gc.freeze)  # no final cyclic GC on exit (~0.7 s): the trainer waits for it in close()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    global _worker_runner
    _worker_runner = EpisodeRunner(env_id, max_episodes, seed)


def _exit_with_parent(parent: int) -> None:
    """End the worker once its trainer is gone. A trainer that is killed (not interrupted) cannot shut its
    pool down, and the worker would otherwise wait for work forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _run_in_worker(act: ActFn, n_episodes: int, first: int) -> np.ndarray:
    assert _worker_runner is not None
    return _worker_runner(act, n_episodes, first)


class Evaluator:
    """``submit(policy, n)`` returns a future of ``n`` episode returns.

    With ``background=True`` episodes run in one worker process, in chunks of ``chunk`` episodes, and
    the policy must pickle (pass a snapshot: it is pickled when the worker picks it up, not at
    ``submit``). Once the caller has nothing else to do, :meth:`help` runs the chunks the worker has not
    started in this process too, so a backlog of evaluations drains on both cores. Without
    ``background``, the same chunks run at once. Each episode has its own seed and each chunk is one
    batch for the policy, so the returns are bit-identical wherever a chunk runs.
    """

    def __init__(
        self, env_id: EnvSpec | str, max_episodes: int, seed: int, background: bool = False, chunk: int = 5
    ) -> None:
        self._args = (env_id, min(chunk, max_episodes), seed)  # a chunk is the most run at once
        self._chunk = chunk
        self._pool: ProcessPoolExecutor | None = None
        self._runner: EpisodeRunner | None = None
        self._queued: list[tuple[Future[np.ndarray], Future[np.ndarray], ActFn, int, int]] = []
        if background:
            self._pool = ProcessPoolExecutor(1, multiprocessing.get_context("spawn"), _init_worker, self._args)
            # The pool starts its worker at the first submit. Start it now, so that its start-up (imports,
            # MuJoCo models: seconds) overlaps the trainer's set-up instead of delaying the first evaluation,
            # which with --eval-episodes 0 is the final one.
            with _bare_main():
                self._pool.submit(int)

    def submit(self, act: ActFn, n_episodes: int) -> Future[np.ndarray]:
        parts = []
        for first in range(0, n_episodes, self._chunk):
            n = min(self._chunk, n_episodes - first)
            if self._pool is None:
                parts.append(completed(self._local()(act, n, first)))
                continue
            task, part = self._pool.submit(_run_in_worker, act, n, first), Future()
            task.add_done_callback(functools.partial(_forward, part=part))
            self._queued.append((task, part, act, n, first))
            parts.append(part)
        return _concatenate(parts)

    def offload(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """``fn(*args)`` in the worker (at once here without one): the worker idles until an evaluation
        arrives, so side work such as saving the demonstrations costs the trainer no time there."""
        return self._pool.submit(fn, *args) if self._pool is not None else completed(fn(*args))

    def help(self) -> None:
        """Run queued chunks the worker has not started here, latest first, until none is left."""
        while self._queued:
            task, part, act, n, first = self._queued.pop()
            if task.cancel():
                part.set_result(self._local()(act, n, first))
            elif not task.done():  # the worker has it, and every chunk before it
                break

    def _local(self) -> EpisodeRunner:
        if self._runner is None:
            self._runner = EpisodeRunner(*self._args)
        return self._runner

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._runner is not None:
            self._runner.close()


@contextmanager
def _bare_main() -> Iterator[None]:
    """Start a worker with a bare ``__main__``. A spawned process re-runs the parent's ``__main__`` to find
    functions defined there: a user's script without a main guard would train again in the worker (and break
    the pool), a stdin script cannot be re-run at all. The worker runs sb3_il's code only, so it needs none
    of it; hiding it makes a plain script, ``python -``, a notebook and a guarded script work alike."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def completed(value: T) -> Future[T]:
    """A future that already holds ``value``."""
    future: Future[T] = Future()
    future.set_result(value)
    return future


def mean_std(returns: Future[np.ndarray]) -> Future[tuple[float, float]]:
    """A future of the mean and std of a future's returns."""
    summary: Future[tuple[float, float]] = Future()

    def done(future: Future[np.ndarray]) -> None:
        if future.exception() is not None:
            summary.set_exception(future.exception())
        else:
            summary.set_result((float(future.result().mean()), float(future.result().std())))

    returns.add_done_callback(done)
    return summary


def _forward(task: Future[np.ndarray], part: Future[np.ndarray]) -> None:
    """Pass a worker task's outcome on to the chunk's future (a cancelled task's chunk runs elsewhere)."""
    if task.cancelled():
        return
    if task.exception() is not None:
        part.set_exception(task.exception())
    else:
        part.set_result(task.result())


def _concatenate(parts: list[Future[np.ndarray]]) -> Future[np.ndarray]:
    """One future for the chunks' returns in episode order, done when the last chunk is."""
    whole: Future[np.ndarray] = Future()
    lock = threading.Lock()  # chunks finish on the executor's thread and on the caller's

    def check(_: Future[np.ndarray]) -> None:
        with lock:
            if whole.done() or not all(part.done() for part in parts):
                return
            errors = [part.exception() for part in parts if part.exception() is not None]
            if errors:
                whole.set_exception(errors[0])
            else:
                whole.set_result(np.concatenate([part.result() for part in parts]))

    for part in parts:
        part.add_done_callback(check)
    return whole


def expert_returns_cache() -> Path:
    return Path(os.environ.get("SB3_IL_CACHE", Path.home() / ".cache" / "sb3_il")) / "expert_returns.json"


def evaluate_expert(
    evaluator: Evaluator, expert: Expert, env_id: EnvSpec | str, seed: int, n_episodes: int
) -> Future[np.ndarray]:
    """The expert's returns on the evaluation seeds, computed once per exact expert and env and cached.

    An expert is deterministic and frozen, so its returns on fixed seeds depend only on its Hub revision,
    the env, the seeds and the simulator's version. Every run of a benchmark then compares against the
    same expert numbers without re-simulating them.
    """
    if not expert.revision:  # nothing names this exact expert (a callable): no cache
        return evaluator.submit(expert, n_episodes)
    key = (
        f"{expert.repo_id}@{expert.revision}|{env_id}|seed={seed}|n={n_episodes}"
        f"|mujoco={mujoco.__version__}|gymnasium={gym.__version__}"
    )
    path = expert_returns_cache()
    cached = read_cache(path).get(key)
    if isinstance(cached, list) and len(cached) == n_episodes:
        return completed(np.asarray(cached, dtype=float))

    def store(done: Future[np.ndarray]) -> None:
        if done.exception() is None:
            write_json(path, read_cache(path) | {key: done.result().tolist()})

    future = evaluator.submit(expert, n_episodes)
    future.add_done_callback(store)
    return future


def read_cache(path: Path) -> dict:
    """The expert-returns cache; a missing, corrupt or foreign file counts as empty (it is rebuilt)."""
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def percent_of_expert(learner_return: float, expert_return: float) -> float:
    """``100 * learner / expert``, generalised so that worse is always below 100 when the expert's
    return is negative (Pendulum): ``100 * (1 + (learner - expert) / |expert|)``."""
    return 100.0 * (1.0 + (learner_return - expert_return) / abs(expert_return))


def fall_rate(act: ActFn, env_id: EnvSpec | str, n_episodes: int, seed: int = EVAL_SEED) -> float:
    """Share of ``n_episodes`` deterministic episodes (the evaluation's seeds) that the env terminated before its
    time limit: in Hopper, Walker2d and Ant, the body fell."""
    with EpisodeRunner(env_id, n_episodes, seed) as runner:
        runner(act, n_episodes)
    return float(runner.terminated.mean())


def check_video_path(path: Path) -> None:
    """A one-line error, before any episode runs, unless an mp4 can be written at ``path``."""
    path = Path(path)
    if path.suffix != ".mp4":
        raise UserError(f"--video {path} must name an .mp4 file")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(f"--video {path} exists and is not a regular file; choose another name")
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"--video {path}: {path.parent} is not a folder; choose another name")


def record_video(
    act: ActFn, env_id: EnvSpec | str, path: Path, seed: int = EVAL_SEED, max_steps: int = 1000
) -> str | None:
    """Render one deterministic episode of ``act`` to an mp4 at ``path``; returns why not if rendering is
    unavailable here (MuJoCo needs ``MUJOCO_GL=egl`` and its system library on a machine without a screen)."""
    import imageio.v2 as imageio

    try:
        env = make_env(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
        for _ in range(max_steps):
            obs, _, terminated, truncated, _ = env.step(act(obs[None])[0])
            frames.append(env.render())
            if terminated or truncated:
                break
        fps = env.metadata.get("render_fps", 30)
        env.close()
    except Exception as err:  # GL/EGL/pygame failures come in many types; the message says which
        return f"{type(err).__name__}: {first_line(err)}"
    atomic_write(
        path,
        lambda p: imageio.mimsave(p, [np.asarray(f) for f in frames], format="FFMPEG", fps=fps, macro_block_size=1),
    )
    return None
