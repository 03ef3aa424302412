"""Tests run against the real Hub client reading the shared offline cache (never mocks).

If the cache is missing the expert tests must fail, not skip: CI then reports the missing experts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch as th

HUB_CACHE = Path(__file__).resolve().parents[1].parent / "shared" / "hub-cache"
os.environ.setdefault("HF_HUB_CACHE", str(HUB_CACHE))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
th.set_num_threads(1)


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    cache = Path(os.environ["HF_HUB_CACHE"])
    if not (cache / "models--sb3--ppo-CartPole-v1").is_dir():
        pytest.fail(f"Hub cache with the sb3 experts not found at {cache}; set HF_HUB_CACHE (see README)")
    return cache


@pytest.fixture
def runs_dir(tmp_path: Path, hub_cache: Path) -> Path:
    return tmp_path / "runs"
