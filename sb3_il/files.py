"""Outputs: atomic files, and output folders that are staged, locked and only ever replace sb3-il's own.

Every command that writes a folder goes through :func:`staged_dir` (a folder published whole) or
:func:`claimed_dir` (a folder filled over time, such as a resumable benchmark), so the guards hold by
construction rather than command by command:

- a reader (or a crash, or Ctrl-C) never sees a half-written file or a folder that looks complete;
- a command never replaces or writes into a folder it did not write (recognised by :data:`MARKER`), nor the
  working folder, nor any of the folders it reads (``reads``), nor anything inside them;
- no symbolic link is followed: not the output, not its staging or lock files;
- two commands writing the same folder at once cannot mix their files: the second one refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from sb3_il.errors import UserError, first_line

#: The file in every folder sb3-il writes: only such a folder may be replaced by a later command.
MARKER = ".sb3-il"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and then rename into ``path`` (same directory, so the rename is atomic).

    The file gets the mode a plain ``open`` would (0644 under the usual umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


def write_yaml(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(yaml.safe_dump(data, sort_keys=False)))


def is_own(folder: Path) -> bool:
    """A real folder (no symlink) that an sb3-il command wrote."""
    return folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()


def check_replaceable(final: Path, reads: Sequence[Path] = ()) -> None:
    """A one-line error unless ``final`` is new, an empty folder, or sb3-il's own earlier output, and holds
    none of ``reads`` nor lies inside one. Its staging and backup names must be free or sb3-il's too: checked
    here, before any work, rather than when the work is done."""
    final = Path(final)
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise UserError(f"{final} exists and is not a folder; choose another output")
    here = Path.cwd().resolve()
    if final.resolve() in (here, *here.parents):
        raise UserError(f"{final} is the working folder or holds it; choose a new folder for the output")
    for source in reads:
        if overlap(Path(source), final):
            raise UserError(f"{final} would overwrite {source}, which this command reads; choose another output")
    for sibling in (final.with_name(final.name + ext) for ext in (".incomplete", ".old")):
        if (sibling.is_symlink() or sibling.exists()) and not is_own(sibling):
            raise UserError(f"{sibling} is in the way and was not written by sb3-il; move it away")
    if not final.exists() or is_own(final):
        return
    if any(final.iterdir()):
        raise UserError(
            f"{final} exists and was not written by sb3-il; choose a new folder (nothing in it was touched)"
        )


def overlap(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are the same folder, or one holds the other (links resolved)."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


@contextmanager
def _lock(final: Path) -> Iterator[None]:
    """Hold ``{final}.lock`` while writing ``final``: a second writer refuses instead of clobbering."""
    path = final.with_name(final.name + ".lock")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write {final}: {first_line(err)}; choose a writable folder") from None
    try:  # O_NOFOLLOW: a lock planted as a symbolic link must not create or truncate a file elsewhere
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666 & ~_umask())
    except OSError as err:
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link; remove it (sb3-il's lock files are plain files)") from None
        raise UserError(f"cannot write {final}: {first_line(err)}; choose a writable folder") from None
    handle = os.fdopen(fd, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"another sb3-il command is writing {final}; wait for it or choose another name") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


@contextmanager
def staged_dir(
    final: Path, discard_on: tuple[type[BaseException], ...] = (), reads: Sequence[Path] = ()
) -> Iterator[Path]:
    """Build a folder under ``{final}.incomplete`` and swap it into ``final`` only if the block succeeds.

    ``final`` must be new, empty, or sb3-il's own earlier output (which it then replaces), and must not
    overlap ``reads``, the folders the command reads. A failed block leaves ``final`` untouched and the
    partial work in ``{final}.incomplete`` for inspection; exceptions in ``discard_on`` (bad input: nothing
    worth inspecting) and an interrupt (Ctrl-C: the user asked for nothing) remove it.
    """
    final = Path(final)
    check_replaceable(final, reads)
    with _lock(final):
        check_replaceable(final, reads)  # again, now that no other sb3-il writer can change it
        stage = final.with_name(final.name + ".incomplete")
        _clear(stage)
        stage.mkdir()
        (stage / MARKER).write_text("written by sb3-il\n")
        try:
            yield stage
        except (*discard_on, KeyboardInterrupt):
            shutil.rmtree(stage, ignore_errors=True)
            raise
        old = final.with_name(final.name + ".old")
        _clear(old)
        if final.exists() and not any(final.iterdir()):
            final.rmdir()  # an empty folder the user made for the output
        elif final.exists():
            os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def claimed_dir(folder: Path) -> Iterator[Path]:
    """Hold ``folder`` (new, empty, or sb3-il's own) for a command that fills it over time and reuses what an
    earlier run left there (a benchmark's cells): marked as sb3-il's, locked, never the working folder."""
    folder = Path(folder)
    check_replaceable(folder)
    with _lock(folder):
        check_replaceable(folder)
        created = not folder.exists()
        folder.mkdir(exist_ok=True)
        (folder / MARKER).write_text("written by sb3-il\n")
        try:
            yield folder
        except (UserError, KeyboardInterrupt):
            if created and set(os.listdir(folder)) == {MARKER}:
                shutil.rmtree(folder)  # nothing done: leave nothing behind
            raise


def _clear(path: Path) -> None:
    """Make way for ``path``: a leftover of sb3-il's own is removed, anything else refused."""
    if path.is_symlink() or path.exists():
        if not is_own(path):
            raise UserError(f"{path} is in the way and was not written by sb3-il; move it away")
        shutil.rmtree(path)
