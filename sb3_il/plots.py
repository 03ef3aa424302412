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
    labels: list[int], returns: list[float], stds: list[float], expert: float, title: str, path: Path
) -> None:
    """Return (± std over evaluation episodes) against expert labels used, with the expert's level as a line.

    A BC run has one point, so it is drawn as two labelled bars, the policy and the expert, instead.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if len(returns) == 1:
        bars = ax.bar(["BC policy", "expert"], [returns[0], expert], yerr=[stds[0], 0], capsize=4,
                      color=["tab:blue", "0.4"])  # fmt: skip
        ax.bar_label(bars, fmt="%.0f", label_type="center", color="white")
        ax.set(ylabel="episode return", title=f"{title}\n{labels[0]} expert labels")
    else:
        ax.errorbar(labels, returns, yerr=stds, marker="o", capsize=3, label="learner (± std over episodes)")
        ax.axhline(expert, color="k", linestyle="--", label="expert")
        ax.set(xlabel="expert labels (first point: BC on the demonstrations)", ylabel="episode return", title=title)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def finetune_curves(
    curves: dict[str, list[dict[str, float]]], start: float | None, expert: float | None, title: str, path: Path
) -> None:
    """Return vs PPO timesteps for each fine-tuning mode, with the IL start and the expert as lines."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, curve in curves.items():
        steps = [p["timesteps"] for p in curve]
        means = [p["mean_return"] for p in curve]
        stds = [p["std_return"] for p in curve]
        ax.plot(steps, means, marker="o", markersize=3, label=mode)
        ax.fill_between(
            steps,
            [m - s for m, s in zip(means, stds, strict=True)],
            [m + s for m, s in zip(means, stds, strict=True)],
            alpha=0.15,
        )
    if start is not None:
        ax.axhline(start, color="tab:gray", linestyle=":", label="imitation policy (start)")
        ax.axhline(0.9 * start, color="tab:gray", linestyle=":", linewidth=0.7, label="90% of start")
    if expert is not None:
        ax.axhline(expert, color="k", linestyle="--", label="expert")
    ax.set(xlabel="PPO timesteps", ylabel="episode return (deterministic)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    save_figure(fig, path)
