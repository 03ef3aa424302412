"""PNG figures: a run's learning curve, and the benchmark's curves and bars (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sb3_il.files import atomic_write  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    atomic_write(Path(path), lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", format="png"))
    plt.close(fig)


def learning_curve(
    iterations: list[int], returns: list[float], stds: list[float], expert: float, title: str, path: Path
) -> None:
    """Return per iteration (iteration 0 = BC on the demos) with the expert's level as a line."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(iterations, returns, yerr=stds, marker="o", capsize=3, label="learner")
    ax.axhline(expert, color="k", linestyle="--", label="expert")
    ax.set(xlabel="DAgger iteration (0 = BC on demonstrations)", ylabel="episode return", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)
