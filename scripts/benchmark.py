#!/usr/bin/env python
"""Reproduce the article's table (and go past it), optionally side by side with ``imitation``.

    python scripts/benchmark.py --track article --seeds 0 1 2 3 4 --peer
    python scripts/benchmark.py --track strong --config strong --seeds 0 1 2 3 4

Writes results.csv, summary.md, learning_curves.png and final_bars.png into --out (default reports/TRACK).
"""

import argparse
import sys
from pathlib import Path

import torch as th

from sb3_il.benchmark import TRACKS, run_benchmark
from sb3_il.cli import guarded


@guarded
def main(argv=None) -> int:  # noqa: ANN001
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--track", choices=sorted(TRACKS), default="article")
    parser.add_argument("--envs", nargs="+", default=None, help="default: every env of the track")
    parser.add_argument("--algos", nargs="+", choices=["bc", "dagger"], default=["bc", "dagger"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--config", dest="config_name", default=None, help="named config, e.g. strong")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/TRACK[-CONFIG])")
    parser.add_argument("--peer", action="store_true", help="also run imitation's BC / SimpleDAggerTrainer")
    parser.add_argument("--force", action="store_true", help="redo runs whose results.json exists")
    parser.add_argument("--expert", default=None, help="one expert for every env (e.g. for the smoke test)")
    for flag in ("n-iters", "grad-steps", "steps-per-iter", "n-demo-steps", "eval-episodes", "final-eval-episodes"):
        parser.add_argument(f"--{flag}", type=int, default=None, help="override for every run")
    args = parser.parse_args(argv)
    th.set_num_threads(1)  # tiny MLPs: extra threads only add overhead (and fight the eval worker for cores)
    envs = args.envs or list(TRACKS[args.track])
    keys = ("expert", "n_iters", "grad_steps", "steps_per_iter", "n_demo_steps", "eval_episodes", "final_eval_episodes")
    overrides = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    out = args.out or Path("reports") / (args.track + (f"-{args.config_name}" if args.config_name else ""))
    rows = run_benchmark(
        out, args.track, envs, args.algos, args.seeds, args.config_name, args.peer, args.force, overrides
    )
    print((out / "summary.md").read_text())
    print(f"report: {out}/ (results.csv, summary.md, learning_curves.png, final_bars.png)")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
