"""sb3-il: imitation learning (BC, DAgger) for Stable-Baselines3. ``from sb3_il import BC, DAgger, evaluate``."""

from typing import Any

__version__ = "0.2.0"
__all__ = ["BC", "DAgger", "evaluate", "__version__"]


def __getattr__(name: str) -> Any:
    """The API loads torch and SB3: import it on first use, so the CLI's ``--help`` stays instant."""
    if name in ("BC", "DAgger", "evaluate"):
        from sb3_il import api

        return getattr(api, name)
    raise AttributeError(f"module 'sb3_il' has no attribute {name!r}")
