"""Tests run against the real Hub client reading the shared offline cache (never mocks).

If the cache is missing the expert tests must fail, not skip: CI then reports the missing experts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch as th

HUB_CACHE = Path(__file__).resolve().parents[1].parent / "shared" / "hub-cache"
os.environ.setdefault("HF_HUB_CACHE", str(HUB_CACHE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
th.set_num_threads(1)


@pytest.fixture(autouse=True)
def sb3_logdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SB3 models learning without a logger make one in a fresh /tmp/SB3-* folder; keep it in the test's."""
    monkeypatch.setenv("SB3_LOGDIR", str(tmp_path / "sb3-log"))


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    cache = Path(os.environ["HF_HUB_CACHE"])
    if not (cache / "models--sb3--ppo-CartPole-v1").is_dir():
        pytest.fail(f"Hub cache with the sb3 experts not found at {cache}; set HF_HUB_CACHE (see README)")
    return cache


@pytest.fixture
def runs_dir(tmp_path: Path, hub_cache: Path) -> Path:
    return tmp_path / "runs"


def sb3_il(*args: str) -> int:
    """The ``sb3-il`` command's main, in this process (its exit code)."""
    from sb3_il.cli import main

    return main([str(arg) for arg in args])


FAST_EVAL = ["--eval-episodes", "2", "--final-eval-episodes", "5", "--quiet"]


def train_run(runs_dir: Path, *args: str) -> dict:
    """Run ``train.py``'s main with a short evaluation; its results.json plus ``dir``, the run folder."""
    assert sb3_il("train", *args, "--runs-dir", runs_dir, *FAST_EVAL) == 0
    run = next(p for p in sorted(runs_dir.iterdir()) if (p / "results.json").exists())
    return json.loads((run / "results.json").read_text()) | {"dir": run}
