"""``python -m sb3_il``: the ``sb3-il`` command."""

import sys

from sb3_il.cli import main

sys.exit(main())
