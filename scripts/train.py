#!/usr/bin/env python
"""``sb3-il train``: ``python scripts/train.py --algo dagger --env Ant-v4``."""

import sys

from sb3_il.cli import command

if __name__ == "__main__":
    sys.exit(command("train")())
