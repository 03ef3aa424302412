"""Atomic outputs: a reader (or a crash) never sees a half-written file or a run folder that looks complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and then rename into ``path`` (same directory, so the rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def write_yaml(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(yaml.safe_dump(data, sort_keys=False)))


@contextmanager
def staged_dir(final: Path, discard_on: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Build a folder under a temporary name and swap it into ``final`` only if the block succeeds.

    A failed block leaves ``final`` (an earlier good run, if any) untouched and the partial work in
    ``{final}.incomplete`` for inspection, without a ``results.json`` that would make it look done;
    exceptions in ``discard_on`` (bad input: nothing worth inspecting) remove it instead.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.with_name(final.name + ".incomplete")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except discard_on:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = final.with_name(final.name + ".old")
    if final.exists():
        os.replace(final, old)
    os.replace(stage, final)
    shutil.rmtree(old, ignore_errors=True)
