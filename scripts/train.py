#!/usr/bin/env python
"""Train BC or DAgger from a Hugging Face Hub expert: ``python scripts/train.py --algo dagger --env Ant-v4``."""

import sys

from sb3_il.cli import main

if __name__ == "__main__":
    sys.exit(main())
