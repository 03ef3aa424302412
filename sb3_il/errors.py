"""Bad input is a :class:`UserError`: every command prints its one-line message and exits with code 2."""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Callable, Sequence


class UserError(Exception):
    """Bad input: the CLI prints the one-line message (which says how to fix it) and exits with code 2."""


def first_line(text: object) -> str:
    """The first line of ``text``: library errors often carry a traceback-like tail a user cannot act on."""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def guarded(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Turn a :class:`UserError` into its one-line message on stderr and exit code 2."""

    def wrapper(argv: Sequence[str] | None = None) -> int:
        # Skip the interpreter's last cyclic garbage collection: with torch, SB3 and imitation loaded it
        # walks millions of objects (~1 s) just before the process ends. Outputs are closed by then.
        atexit.register(gc.freeze)
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {first_line(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # outputs are staged: an interrupted command published nothing
            print("interrupted; nothing was written", file=sys.stderr)
            return 130

    return wrapper
