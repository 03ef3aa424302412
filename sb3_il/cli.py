"""``sb3-il-train`` / ``scripts/train.py``: train BC or DAgger from a Hub expert into ``runs/{algo}-{env}-s{seed}/``.

Run folder contents: ``policy.zip`` (+ ``vec_normalize.pkl``) for ``PPO.load``, ``config.yml`` (the
resolved config; ``--config-file`` replays it), ``progress.csv`` and TensorBoard events per iteration,
``learning_curve.png``, ``demos/`` (imitation format) and ``results.json``, written last: a folder
without it is not a finished run.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3.common.logger import configure

from sb3_il.config import ALGOS, TrainConfig, UserError, make_config
from sb3_il.files import staged_dir, write_json, write_yaml
from sb3_il.plots import learning_curve
from sb3_il.trainers import RunResult, train

#: CLI flags that override TrainConfig fields (None = keep the zoo config / default).
_OVERRIDES: dict[str, type] = {
    "expert": str,
    "seed": int,
    "n_demo_steps": int,
    "n_iters": int,
    "steps_per_iter": int,
    "candidates_per_label": int,
    "ensemble": int,
    "grad_steps": int,
    "batch_size": int,
    "lr": float,
    "lr_schedule": str,
    "buffer_size": int,
    "beta_schedule": str,
    "noise": float,
    "jacobian_weight": float,
    "select_last": int,
    "select_episodes": int,
    "eval_episodes": int,
    "final_eval_episodes": int,
    "demos": str,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Imitation learning (BC / DAgger) from a Hugging Face Hub expert.")
    parser.add_argument("--algo", choices=ALGOS, default="dagger")
    parser.add_argument(
        "--env", dest="env_id", default=None, help="gymnasium env id, e.g. Ant-v4 (required unless --config-file)"
    )
    parser.add_argument(
        "--config",
        dest="config_name",
        default=None,
        help="named config: zoo_configs/{algo}-{NAME}.yml (default: the article's settings)",
    )
    parser.add_argument("--config-file", default=None, help="replay a run's config.yml")
    for name, kind in _OVERRIDES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=_field_doc(name))
    parser.add_argument("--net-arch", type=int, nargs="+", default=None, help="hidden layer sizes (default 64 64)")
    parser.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        default=None,
        help="feed raw observations to the policy (no vec_normalize.pkl)",
    )
    parser.add_argument(
        "--continue-episodes",
        dest="reset_each_iter",
        action="store_false",
        default=None,
        help="DAgger collection goes on with the episode the previous iteration cut off (default: reset)",
    )
    parser.add_argument(
        "--bounded-loss",
        action="store_true",
        default=None,
        help="no loss for outputs beyond an action bound whose label is on it (the env clips both)",
    )
    parser.add_argument(
        "--no-background-eval",
        dest="background_eval",
        action="store_false",
        default=None,
        help="evaluate in the training process (slower wall time, same numbers)",
    )
    parser.add_argument("--runs-dir", default="runs", help="parent folder of run folders")
    parser.add_argument("--name", default=None, help="run folder name (default {algo}-{env}-s{seed})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _field_doc(name: str) -> str:
    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}.get(name)
    return f"default: zoo config, else {default}"


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.env_id is None and args.config_file is None:
        raise UserError("pass --env ENV_ID (e.g. --env Hopper-v4) or --config-file runs/<run>/config.yml")
    overrides: dict[str, Any] = {name: getattr(args, name) for name in _OVERRIDES}
    overrides.update(
        net_arch=args.net_arch,
        normalize=args.normalize,
        background_eval=args.background_eval,
        reset_each_iter=args.reset_each_iter,
        bounded_loss=args.bounded_loss,
    )
    return make_config(args.algo, args.env_id, overrides, args.config_name, args.config_file)


def run(config: TrainConfig, run_dir: Path, progress: bool = True) -> dict[str, Any]:
    """Train into a staged folder and publish it as ``run_dir`` only once ``results.json`` is written."""
    with staged_dir(run_dir, discard_on=(UserError,)) as stage:
        write_yaml(stage / "config.yml", config.to_dict())
        logger = configure(str(stage), ["csv", "tensorboard"])
        try:
            result = train(config, stage, logger, progress=progress)
        finally:
            logger.close()
        curve = result.curve
        learning_curve(
            [s.iteration for s in curve],
            [s.mean_return for s in curve],
            [s.std_return for s in curve],
            result.expert_return_mean,
            f"{config.algo} on {config.env_id} ({config.expert})",
            stage / "learning_curve.png",
        )
        results = summarize(config, result)
        write_json(stage / "results.json", results)
    return results


def summarize(config: TrainConfig, result: RunResult) -> dict[str, Any]:
    final = result.curve[-1]
    return {
        "algo": config.algo,
        "env_id": config.env_id,
        "expert": config.expert,
        "seed": config.seed,
        "mean_return": final.mean_return,
        "std_return": final.std_return,
        "eval_episodes": config.final_eval_episodes,
        "expert_return_mean": result.expert_return_mean,
        "expert_return_std": result.expert_return_std,
        "pct_expert": final.pct_expert,
        "expert_labels": final.expert_labels,
        "n_demo_episodes": result.n_demo_episodes,
        "env_steps": final.env_steps,
        "selected_iteration": result.selected_iteration,
        "validation_returns": result.validation_returns,
        "grad_steps": final.grad_steps,
        "wall_s": result.total_wall_s,
        "train_wall_s": final.wall_s,
        "curve": [dataclasses.asdict(s) for s in result.curve],
    }


def guarded(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Turn a :class:`UserError` into its one-line message on stderr and exit code 2."""

    def wrapper(argv: Sequence[str] | None = None) -> int:
        # Skip the interpreter's last cyclic garbage collection: with torch, SB3 and imitation loaded it
        # walks millions of objects (~1 s) just before the process ends. Outputs are closed by then.
        atexit.register(gc.freeze)
        try:
            return main(argv)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return wrapper


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    th.set_num_threads(1)  # a 2x64 MLP is latency-bound: extra threads only add sync overhead
    run_dir = Path(args.runs_dir) / (args.name or config.run_name)
    results = run(config, run_dir, progress=not args.quiet)
    print(json.dumps({k: v for k, v in results.items() if k != "curve"}, indent=2))
    print(f"policy: {run_dir / 'policy.zip'}")
    return 0
