#!/usr/bin/env python
"""The same benchmark grid with --workers 1 (each cell evaluating in a background process, or in one process) and
with --workers N, in one run: wall times, their ratios, and whether every result number agrees.

    python scripts/bench_scale.py --envs Hopper-v4 --algos dagger --seeds 0 1 2 3 --workers 2 --out /tmp/scale
"""

import argparse
import csv
import time
from pathlib import Path

from sb3_il.cli import main

NUMBERS = ("env", "algo", "seed", "status", "final_return_mean", "pct_expert", "expert_labels", "env_steps")


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    assert main(["benchmark", *args]) == 0
    return time.perf_counter() - start


def numbers(path: Path) -> list[list[str]]:
    return [[row[k] for k in NUMBERS] for row in csv.DictReader(path.open())]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["Hopper-v4"])
    parser.add_argument("--algos", nargs="+", default=["dagger"])
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2", "3"])
    parser.add_argument("--workers", default="2")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    grid = ["--envs", *args.envs, "--algos", *args.algos, "--seeds", *args.seeds]
    runs = {
        "workers 1": ["--workers", "1"],
        "workers 1, one process per cell": ["--workers", "1", "--no-background-eval"],
        f"workers {args.workers}": ["--workers", args.workers],
    }
    seconds = {
        name: timed([*grid, "--out", str(args.out / str(i)), *flags]) for i, (name, flags) in enumerate(runs.items())
    }
    tables = [numbers(args.out / str(i) / "results.csv") for i in range(len(runs))]
    parallel = seconds[f"workers {args.workers}"]
    for name, wall in seconds.items():
        print(f"{name}: {wall:.1f} s; workers {args.workers} is {wall / parallel:.2f}x as fast")
    print(f"identical results.csv numbers: {all(table == tables[0] for table in tables)}")
