"""sb3-il: imitation learning (BC, DAgger) for Stable-Baselines3, and PPO fine-tuning of what it learns.

from sb3_il import BC, DAgger, evaluate, fine_tune
"""

from typing import Any

__version__ = "0.2.0"
__all__ = ["BC", "DAgger", "evaluate", "fine_tune", "__version__"]


def __getattr__(name: str) -> Any:
    """The API loads torch and SB3: import it on first use, so the CLI's ``--help`` stays instant."""
    if name in ("BC", "DAgger", "evaluate", "fine_tune"):
        from sb3_il import api

        return getattr(api, name)
    raise AttributeError(f"module 'sb3_il' has no attribute {name!r}")
