"""PNG figures: a run's learning curve, and the benchmark's curves and bars (matplotlib, no display)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

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
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    save_figure(fig, path)


def panel_grid(n: int, max_columns: int) -> tuple[plt.Figure, np.ndarray]:
    """A figure with room for ``n`` panels, at most ``max_columns`` a row; the unused axes are hidden."""
    columns = min(n, max_columns)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns + 2, 4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes


@dataclass
class CurvePanel:
    """One (env, expert) panel of the benchmark's curves: DAgger's curves (expert labels, return) per seed,
    the expert's return, BC's final return per implementation, and imitation's DAgger (labels, final return)."""

    title: str
    curves: list[list[tuple[int, float]]]
    expert: float | None
    bc: dict[str, float]
    peer: list[tuple[int, float]]


def benchmark_curves(panels: list[CurvePanel], path: Path) -> None:
    """DAgger's return against expert labels (band: std over seeds), BC and the expert as lines."""
    fig, axes = panel_grid(len(panels), 4)
    for ax, panel in zip(axes.flat, panels, strict=False):
        if panel.curves:
            length = min(map(len, panel.curves))
            data = np.array([[r for _, r in c[:length]] for c in panel.curves])
            x = [labels for labels, _ in panel.curves[0][:length]]
            ax.plot(x, data.mean(0), marker="o", label=f"DAgger (sb3-il, {len(panel.curves)} seeds)")
            ax.fill_between(x, data.mean(0) - data.std(0), data.mean(0) + data.std(0), alpha=0.25)
        if panel.expert is not None:
            ax.axhline(panel.expert, color="k", linestyle="--", label="expert")
        for impl, value in panel.bc.items():
            ax.axhline(value, color="tab:red" if impl == "sb3_il" else "tab:gray",
                       linestyle="-." if impl == "sb3_il" else ":", label=f"BC ({impl}, final)")  # fmt: skip
        if panel.peer:  # imitation records no curve: its final return, at the labels it used
            ax.plot(*zip(*panel.peer, strict=True), "s", color="tab:gray", label="DAgger (imitation, final per seed)")
        ax.set(title=panel.title.replace(" (", "\n("), xlabel="expert labels",
               ylabel="episode return (mean over seeds)")  # fmt: skip
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    save_figure(fig, path)


def benchmark_bars(tasks: list[str], groups: dict[str, list[list[float]]], path: Path) -> None:
    """% of expert per task for each group (e.g. "dagger (sb3_il)"): bars are the mean over seeds, error bars
    the std over seeds, dots the seeds themselves; the expert is the line at 100."""
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(3.5 + 2.2 * len(tasks), 4.5))
    x = np.arange(len(tasks))
    for i, (label, per_task) in enumerate(groups.items()):
        means = [float(np.mean(v)) if v else float("nan") for v in per_task]
        stds = [float(np.std(v)) if v else 0.0 for v in per_task]
        ax.bar(x + i * width, means, width, yerr=stds, capsize=3, label=label, alpha=0.8)
        for j, values in enumerate(per_task):
            ax.plot([x[j] + i * width] * len(values), values, "k.", markersize=4)
    ax.set_xticks(x + width * (len(groups) - 1) / 2, [t.replace(" (", "\n(") for t in tasks], fontsize=7)
    ax.set(ylabel="% of expert return", title="Final return: mean ± std over seeds (dots: seeds)")
    ax.axhline(100, color="k", linewidth=1, linestyle="--", label="expert")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


@dataclass
class BandPanel:
    """One panel of a figure of curves over seeds: per series, its x values and one row of y values per seed;
    ``lines`` are labelled horizontal references (the expert's level, a target)."""

    title: str
    series: dict[str, tuple[list[float], list[list[float]]]]
    lines: dict[str, float]


def band_figure(panels: list[BandPanel], xlabel: str, ylabel: str, title: str, path: Path, log_x: bool = False) -> None:
    """Each series' mean over seeds as a line, its std over seeds as a band and the seeds as dots."""
    fig, axes = panel_grid(len(panels), 3)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for name, (x, seeds) in panel.series.items():
            data = np.array(seeds, dtype=float)
            (line,) = ax.plot(x, data.mean(0), marker="o", label=f"{name} ({len(seeds)} seeds)")
            ax.fill_between(x, data.mean(0) - data.std(0), data.mean(0) + data.std(0), alpha=0.2,
                            color=line.get_color())  # fmt: skip
            for row in data:
                ax.plot(x, row, ".", color=line.get_color(), markersize=3)
        for (name, value), style in zip(panel.lines.items(), ("--", ":", "-."), strict=False):
            ax.axhline(value, color="k", linestyle=style, linewidth=0.8, label=name)
        ax.set(title=panel.title.replace(" (", "\n("), xlabel=xlabel, ylabel=ylabel)
        if log_x:
            ax.set_xscale("log")
        else:  # 200k, 1M: six-digit step counts overlap, and "1e6" sits apart from its ticks
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title} (line: mean over seeds, band: ± std, dots: seeds)")
    save_figure(fig, path)
