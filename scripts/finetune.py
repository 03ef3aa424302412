#!/usr/bin/env python
"""RL fine-tuning of a BC/DAgger policy with PPO, prepared so it does not collapse.

    python scripts/finetune.py --run runs/dagger-Hopper-v4-s0 --timesteps 200000
    python scripts/finetune.py --run runs/bc-Hopper-v4-s0 --modes prepared naive scratch   # compare all three

--run takes a run folder written by train.py or a Hub repo id (USER/{algo}-{env}, a PPO zip). The first mode
is written to --out (default runs/finetune-NAME/); the others, references on the same budget, to
--out/reference-MODE/. finetune_curve.png shows all of them with the start and expert returns.
"""

import argparse
import sys
from pathlib import Path

import torch as th

from sb3_il.cli import guarded
from sb3_il.config import UserError
from sb3_il.files import staged_dir
from sb3_il.finetune import FRAGILE_LOG_STD, FRAGILE_TARGET_KL, FinetuneConfig, finetune, read_run_file
from sb3_il.plots import finetune_curves


@guarded
def main(argv=None) -> int:  # noqa: ANN001
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder or Hub repo id")
    parser.add_argument("--env", dest="env_id", default=None, help="env id (default: from the run's config.yml)")
    parser.add_argument("--timesteps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", choices=["prepared", "naive", "scratch"], default=["prepared", "scratch"])
    parser.add_argument(
        "--init-log-std",
        type=float,
        default=None,
        help="exploration log-std at the start (default: calibrated, the largest whose sampled episodes lose at "
        "most 10%% of the expert's return, or of the policy's own when the run folder does not record it)",
    )
    parser.add_argument("--vf-warmup-rollouts", type=int, default=10, help="critic-only rollouts before PPO (0: off)")
    parser.add_argument("--vf-warmup-epochs", type=int, default=10)
    parser.add_argument(
        "--anchor-coef",
        type=float,
        default=None,
        help="pull toward the anchor, in PPO epochs per update (0: off; default: 3 if the start's exploration "
        f"log-std is {FRAGILE_LOG_STD} or less, a fragile near-expert policy, else 1)",
    )
    parser.add_argument(
        "--target-kl",
        type=float,
        default=None,
        help="stop an update's PPO epochs once the mean KL passes 1.5x this (0: no limit; default: "
        f"{FRAGILE_TARGET_KL} for a fragile start, as for --anchor-coef, else no limit)",
    )
    parser.add_argument(
        "--anchor-fraction",
        type=float,
        default=2.0,
        help="decay span of the pull, as a multiple of --timesteps (2.0: half left at the end)",
    )
    parser.add_argument(
        "--ratchet-episodes",
        type=int,
        default=5,
        help="the current policy becomes the anchor when its last N training episodes beat it (0: fixed anchor)",
    )
    parser.add_argument(
        "--final-log-std",
        type=float,
        default=FinetuneConfig.final_log_std,
        help="the exploration log-std's ceiling falls linearly to this by the end (at or above the start: off)",
    )
    parser.add_argument("--eval-every", type=int, default=FinetuneConfig.eval_every)
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=FinetuneConfig.eval_episodes,
        help="deterministic episodes per evaluation (fewer cannot tell a 10%% drop on bimodal HalfCheetah)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    run = Path(args.run)
    run_config, run_results = read_run_file(args.run, "config.yml"), read_run_file(args.run, "results.json")
    env_id = args.env_id or run_config.get("env_id")
    if env_id is None:
        if not run.is_dir():
            raise UserError(f"{args.run} is not a run folder; pass one written by train.py, or a Hub repo id and --env")
        raise UserError(f"{run} has no config.yml to read the env from; pass --env ENV_ID")
    if args.timesteps <= 0 or args.eval_every <= 0 or args.eval_episodes <= 0:
        raise UserError("--timesteps, --eval-every and --eval-episodes must be positive")
    out = args.out or Path("runs") / f"finetune-{run.name if run.is_dir() else args.run.replace('/', '-')}"
    curves = {}
    with staged_dir(out, discard_on=(UserError,)) as stage:
        for i, mode in enumerate(args.modes):
            config = FinetuneConfig(
                env_id=env_id,
                timesteps=args.timesteps,
                seed=args.seed,
                mode=mode,
                init_log_std=args.init_log_std,
                vf_warmup_rollouts=args.vf_warmup_rollouts,
                vf_warmup_epochs=args.vf_warmup_epochs,
                anchor_coef=args.anchor_coef,
                target_kl=args.target_kl,
                anchor_fraction=args.anchor_fraction,
                ratchet_episodes=args.ratchet_episodes,
                final_log_std=args.final_log_std,
                eval_every=args.eval_every,
                eval_episodes=args.eval_episodes,
            )
            folder = stage if i == 0 else stage / f"reference-{mode}"
            results = finetune(args.run, config, folder)
            curves[mode] = results["curve"]
            print(
                f"{mode:9s}: start {results['start_return']:.0f}, min {results['min_return']:.0f}, "
                f"final {results['final_return']:.0f} ({results['wall_s']:.0f} s"
                + (f", init log-std {results['init_log_std']}" if results["init_log_std"] is not None else "")
                + (f", anchor {results['anchor_coef']}" if results["anchor_coef"] is not None else "")
                + (f", target_kl {results['target_kl']}" if results["target_kl"] is not None else "")
                + ")",
                flush=True,
            )
        finetune_curves(
            curves,
            run_results.get("mean_return"),
            run_results.get("expert_return_mean"),
            f"PPO fine-tuning on {env_id} from {run.name if run.is_dir() else args.run}",
            stage / "finetune_curve.png",
        )
    print(f"fine-tuned policy: {out / 'policy.zip'}; curve: {out / 'finetune_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
