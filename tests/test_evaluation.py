"""Background evaluation: the same returns as in place wherever chunks run, and no worker outlives its trainer."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sb3_il.envs import make_env
from sb3_il.evaluation import Evaluator
from sb3_il.experts import load_expert


def test_background_chunks_and_help_match_in_place(hub_cache):
    expert = load_expert("sb3/sac-Pendulum-v1", make_env("Pendulum-v1"))
    in_place = Evaluator("Pendulum-v1", 7, seed=5, chunk=3).submit(expert, 7).result()
    assert len(set(in_place.round(3))) > 1  # distinct starts, so a shuffled order would show

    evaluator = Evaluator("Pendulum-v1", 7, seed=5, background=True, chunk=3)
    try:
        futures = [evaluator.submit(expert, 7) for _ in range(3)]
        evaluator.help()  # steals the chunks the worker has not started: episode seeds must not change
        for future in futures:
            np.testing.assert_array_equal(future.result(timeout=120), in_place)
    finally:
        evaluator.close()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait a while to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_worker_ends_when_its_trainer_is_killed():
    trainer = (
        "import os, time; from sb3_il.evaluation import Evaluator;"
        "e = Evaluator('CartPole-v1', 1, 0, background=True);"
        "print(e._pool.submit(os.getpid).result(), flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", trainer], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    assert _running(worker)
    proc.kill()  # SIGKILL: no shutdown, no atexit
    proc.wait()
    deadline = time.monotonic() + 15
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(worker), "the evaluation worker outlived its trainer"
