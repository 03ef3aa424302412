#!/usr/bin/env python
"""``sb3-il benchmark``: ``python scripts/benchmark.py --track article --seeds 0 1 2 3 4 --peer``."""

import sys

from sb3_il.cli import command

if __name__ == "__main__":
    sys.exit(command("benchmark")())
