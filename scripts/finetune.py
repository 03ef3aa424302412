#!/usr/bin/env python
"""``sb3-il finetune``: ``python scripts/finetune.py --run runs/dagger-Hopper-v4-s0``."""

import sys

from sb3_il.cli import command

if __name__ == "__main__":
    sys.exit(command("finetune")())
