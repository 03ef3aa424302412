#!/usr/bin/env python
"""Two benchmark reports of the same grid, side by side per (env, expert): % of expert (mean ± std and the lowest
seed), labels, training wall time and its ratio, fall rates. Markdown on stdout.

    python scripts/compare_configs.py reports/zoo/article reports/zoo/strong
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def cells(report: Path) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in csv.DictReader((report / "results.csv").open()):
        if row["impl"] == "sb3_il":
            grouped[row["task"]].append(row)
    return grouped


def stat(rows: list[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r[key]) for r in rows if r["status"] == "ok" and r.get(key) not in (None, "")])


def describe(rows: list[dict[str, str]]) -> str:
    pct = stat(rows, "pct_expert")
    failed = sum(r["status"] != "ok" for r in rows)
    return f"{pct.mean():.1f} ± {pct.std():.1f} (min {pct.min():.1f})" + (f", {failed} failed" if failed else "")


if __name__ == "__main__":
    base, other = Path(sys.argv[1]), Path(sys.argv[2])
    a, b = cells(base), cells(other)
    print(
        f"| expert (env) | expert return | falls: expert | {base.name} % | {other.name} % | {other.name} falls "
        f"| labels | train s {base.name} / {other.name} | ratio |"
    )
    print("|" + "---|" * 9)
    for task in b:
        wall_a, wall_b = stat(a.get(task, []), "train_wall_s"), stat(b[task], "train_wall_s")
        falls, expert_falls = stat(b[task], "fall_rate"), stat(b[task], "expert_fall_rate")
        fell = f"{falls.mean():.0%}" if len(falls) else "-"
        expert_fell = f"{expert_falls.mean():.0%}" if len(expert_falls) else "-"
        ratio = wall_b.mean() / wall_a.mean() if len(wall_a) else float("nan")
        expert_return = stat(b[task], "expert_return_mean")
        scores = f"{describe(a.get(task, []))} | {describe(b[task])}"
        labels = stat(b[task], "expert_labels").mean()
        print(f"| {task} | {expert_return.mean():.0f} | {expert_fell} | {scores} | {fell} | {labels:.0f} "
              f"| {wall_a.mean():.1f} / {wall_b.mean():.1f} | {ratio:.1f}x |")  # fmt: skip
