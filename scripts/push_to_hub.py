#!/usr/bin/env python
"""``sb3-il push``: ``python scripts/push_to_hub.py --run runs/dagger-Ant-v4-s0 --repo-id USER/dagger-Ant-v4``."""

import sys

from sb3_il.cli import command

if __name__ == "__main__":
    sys.exit(command("push")())
