"""The ``sb3-il`` command (also ``python -m sb3_il``): train, evaluate, finetune, push, push-demos, export-minari,
benchmark, tune.

Each command's flags are generated from its config dataclass (:mod:`sb3_il.config`), with the fields' help
and defaults, so a setting is described once. Heavy libraries (torch, SB3, MuJoCo) are imported only once a
command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from sb3_il.config import (
    ALGOS,
    FINETUNE_MODES,
    MAX_EVAL_EPISODES,
    FinetuneConfig,
    TrainConfig,
    make_config,
    with_label_budget,
)
from sb3_il.errors import UserError, guarded

#: A run or output name: one path component, no hidden or relative names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")
TRUST_HELP = "load files whose formats can run code (pickles); only for sources you trust"


class Parser(argparse.ArgumentParser):
    """argparse with bad flags reported the sb3-il way: one line naming the fix, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def add_fields(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = (), note: str = "",
               only: Sequence[str] | None = None) -> list[str]:  # fmt: skip
    """A flag per field of ``cls`` (all but ``skip``, or ``only`` these; default None: not given); returns the
    field names added."""
    names = []
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        kind, flag = str(f.type).split(" |")[0], f"--{f.name.replace('_', '-')}"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        help_text = f"{f.metadata.get('help', '')} (default: {default}{note})".replace("%", "%%")
        if kind == "bool":  # the flag that flips the default, and its opposite (a replayed config may flip it)
            flag = f.metadata.get("flag") or (f"--no-{f.name.replace('_', '-')}" if default else flag)
            opposite = flag.replace("--no-", "--", 1) if flag.startswith("--no-") else "--no-" + flag[2:]
            parser.add_argument(flag, dest=f.name, action="store_const", const=not default, help=help_text)
            parser.add_argument(opposite, dest=f.name, action="store_const", const=default, help=f"undo {flag}")
        elif kind in ("list[int]", "list[str]"):
            item = int if kind == "list[int]" else str
            parser.add_argument(flag, dest=f.name, type=item, nargs="+", default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type={"int": int, "float": float}.get(kind, str), help=help_text)
        names.append(f.name)
    return names


def plain_name(value: str) -> str:
    if not _NAME.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} must be a plain folder name (letters, digits, . _ + -)")
    return value


def train_parser(sub: Any) -> None:
    parser = sub.add_parser("train", help="train BC or DAgger from an expert", description="Train BC or DAgger.")
    parser.add_argument("--algo", choices=ALGOS, default=None, help="bc or dagger (default: dagger)")
    parser.add_argument("--env", dest="env_id", default=None, help="gymnasium env id, e.g. Ant-v4")
    parser.add_argument("--config", dest="config_name", default=None, help="named config: zoo_configs/ALGO-NAME.yml")
    parser.add_argument("--config-file", default=None, help="replay a run's config.yml")
    parser.set_defaults(fields=add_fields(parser, TrainConfig, ("algo", "env_id"), "; a --config may set it"))
    budget_help = "expert labels to ask for: as many of the recipe's iterations as fit (bc: demonstrations)"
    parser.add_argument("--label-budget", type=int, default=None, metavar="N", help=budget_help)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="parent folder of run folders")
    parser.add_argument("--name", type=plain_name, default=None, help="run folder name (default ALGO-ENV-sSEED)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    parser.set_defaults(handler=train_command)


def train_command(args: argparse.Namespace) -> int:

    from sb3_il.runs import train_run

    overrides = {name: getattr(args, name) for name in args.fields}
    config = make_config(args.algo or (None if args.config_file else "dagger"), args.env_id, overrides,
                         args.config_name, args.config_file)  # fmt: skip
    if args.label_budget is not None:
        config = with_label_budget(config, args.label_budget)
    run_dir = args.runs_dir / (args.name or config.run_name)
    reads = [Path(args.config_file)] if args.config_file else []
    results = train_run(config, run_dir, not args.quiet, args.trust_remote_code, reads=reads)
    print(json.dumps({k: v for k, v in results.items() if k != "curve"}, indent=2))
    print(f"policy: {run_dir / 'policy.zip'}")
    return 0


def evaluate_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score (and film) a run folder, Hub repo or model zip",
        description="Score a policy on the evaluation seeds training uses; mp4 on request.",
    )
    parser.add_argument("target", help="a run folder, a Hub repo id (ORG/ALGO-ENV) or a local SB3 zip")
    parser.add_argument("--env", dest="env_id", default=None, help="env id (default: the run's)")
    parser.add_argument("--episodes", type=int, default=20, help=f"deterministic episodes (default: 20, at most "
                        f"{MAX_EVAL_EPISODES})")  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=None, help="first episode seed (default: training's evaluation seed)"
    )
    parser.add_argument("--video", type=Path, default=None, help="also render one episode to this mp4")
    parser.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    parser.set_defaults(handler=evaluate_command)  # fmt: skip


def evaluate_command(args: argparse.Namespace) -> int:
    from sb3_il.api import evaluate
    from sb3_il.evaluation import EVAL_SEED

    seed = EVAL_SEED if args.seed is None else args.seed
    results = evaluate(args.target, args.env_id, args.episodes, seed, args.video, args.trust_remote_code)
    pct = f" ({results['pct_expert']:.1f}% of expert)" if "pct_expert" in results else ""
    print(f"{args.target} on {results['env_id']}: {results['mean_return']:.1f} ± {results['std_return']:.1f} over "
          f"{args.episodes} episodes{pct}")  # fmt: skip
    if "video" in results:
        print(f"video: {results['video']}")
    return 0


def finetune_parser(sub: Any) -> None:
    parser = sub.add_parser("finetune", help="fine-tune an imitation policy with PPO", description=FINETUNE_DOC,
                            formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--run", required=True, help="a finished run folder, or a Hub repo id holding a PPO zip")
    parser.add_argument("--env", dest="env_id", default=None, help="env id (default: the run's)")
    parser.add_argument("--compare", nargs="+", choices=[m for m in FINETUNE_MODES if m != "prepared"], default=[],
                        help="also train these references on the same budget, into --out/reference-MODE")  # fmt: skip
    parser.set_defaults(fields=add_fields(parser, FinetuneConfig, ("env_id", "ppo")))
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/finetune-NAME)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no line per evaluation")
    parser.add_argument("--trust-remote-code", action="store_true", help=TRUST_HELP)
    parser.set_defaults(handler=finetune_command)


FINETUNE_DOC = """RL fine-tuning of a BC/DAgger policy with PPO, prepared so it does not collapse.

    sb3-il finetune --run runs/dagger-Hopper-v4-s0 --timesteps 200000
    sb3-il finetune --run runs/bc-Hopper-v4-s0 --compare naive scratch   # also PPO.load + learn, and from scratch
    sb3-il finetune --run sb3/ppo-HalfCheetah-v3 --env HalfCheetah-v4 --mode naive   # continue a Hub PPO as is"""


def finetune_command(args: argparse.Namespace) -> int:

    from sb3_il.finetune import finetune_run

    values = {name: getattr(args, name) for name in args.fields if getattr(args, name) is not None}
    config = FinetuneConfig(env_id=args.env_id, **values)
    out = finetune_run(args.run, config, args.compare, args.out, args.trust_remote_code, args.quiet)
    print(f"fine-tuned policy: {out / 'policy.zip'}; curve: {out / 'finetune_curve.png'}")
    return 0


def push_parser(sub: Any) -> None:
    parser = sub.add_parser("push", help="package a run as a Hub model repo and upload it",
                            description="Package a run as a Hub model repo (the token comes from HF_TOKEN or "
                            "`huggingface-cli login`, never from a flag).")  # fmt: skip
    add_package_flags(parser, "USER/ALGO-ENV, e.g. me/dagger-Ant-v4 (me/ppo-... fine-tuned)")
    parser.add_argument("--video-steps", type=int, default=1000, help="length of replay.mp4 in env steps (0: none)")
    parser.add_argument("--dataset", default=None, help="the Hub dataset of its data (push-demos), named in the card")
    parser.set_defaults(handler=push_command)


def add_package_flags(parser: argparse.ArgumentParser, repo_help: str) -> None:
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder")
    parser.add_argument("--repo-id", required=True, help=repo_help)
    parser.add_argument("--dry-run", type=Path, default=None, metavar="DIR", help="write the package here; no upload")
    parser.add_argument("--private", action="store_true")


def push_command(args: argparse.Namespace) -> int:
    from sb3_il.hub import package_run, push

    return package_and_push(
        args,
        lambda out: package_run(args.run, args.repo_id, out, args.video_steps, args.dataset),
        lambda folder: push(folder, args.repo_id, args.private),
        args.repo_id,
    )


def package_and_push(args: argparse.Namespace, package: Callable[[Path], Path], upload: Callable[[Path], str],
                     destination: str) -> int:  # fmt: skip
    """``--dry-run DIR``: write the package there and list it; else package into a temporary folder and upload."""
    import tempfile

    if args.dry_run is not None:
        folder = package(args.dry_run)
        print(f"dry run: {folder} holds what would be uploaded to {destination}:")
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".sb3-il"):
            print(f"  {path.relative_to(folder)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        print(f"uploaded: {upload(package(Path(tmp) / 'package'))}")
    return 0


def push_demos_parser(sub: Any) -> None:
    parser = sub.add_parser("push-demos", help="share a run's demonstrations and labels as a Hub dataset",
                            description="Package a run's demos/ and labels/ as a Hub dataset repo (parquet, a "
                            "dataset card, provenance.json) and upload it.")  # fmt: skip
    add_package_flags(parser, "USER/NAME of the dataset repo")
    parser.set_defaults(handler=push_demos_command)


def push_demos_command(args: argparse.Namespace) -> int:
    from sb3_il.data_hub import package_demos
    from sb3_il.hub import push

    return package_and_push(
        args,
        lambda out: package_demos(args.run, args.repo_id, out),
        lambda folder: push(folder, args.repo_id, args.private, repo_type="dataset"),
        f"datasets/{args.repo_id}",
    )


def export_minari_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "export-minari",
        help="write a run's expert episodes as a Minari dataset",
        description="Write a run's expert episodes as a Minari dataset (MINARI_DATASETS_PATH).",
    )
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder")
    parser.add_argument("--dataset-id", required=True, help="NAMESPACE/NAME-vN, e.g. sb3-il/hopper-expert-v0")
    parser.set_defaults(handler=export_minari_command)  # fmt: skip


def export_minari_command(args: argparse.Namespace) -> int:
    from sb3_il.data_hub import export_minari

    print(f"minari dataset {args.dataset_id}: {export_minari(args.run, args.dataset_id)}")
    return 0


BENCHMARK_OVERRIDES = ("expert", "n_iters", "grad_steps", "steps_per_iter", "n_demo_steps", "eval_episodes",
                       "final_eval_episodes")  # fmt: skip


def benchmark_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "benchmark",
        help="the article's table over envs, algos and seeds",
        description="Writes results.csv, summary.md, learning_curves.png and final_bars.png.",
    )
    parser.add_argument(
        "--track",
        choices=("article", "strong", "zoo", "labels", "finetune"),
        default="article",
        help="article: the article's envs and experts; strong: the TQC experts; zoo: every MuJoCo "
        "expert of the zoo; labels: the zoo's experts at each --label-budgets; finetune: PPO fine-tuning of "
        "--starts in --modes (default: article)",
    )
    parser.add_argument("--starts", nargs="+", default=[], help="finetune track: starts (default: all)")
    parser.add_argument("--modes", nargs="+", default=None, choices=FINETUNE_MODES,
                        help="finetune track: fine-tuning modes (default: each start's own)")  # fmt: skip
    parser.add_argument("--timesteps", type=int, default=None, help="finetune track: PPO steps (default: per start)")
    parser.add_argument("--report-only", action="store_true",
                        help="finetune track: run nothing, report the cells already finished")  # fmt: skip
    parser.add_argument(
        "--label-budgets",
        nargs="+",
        type=int,
        default=None,
        metavar="N",
        help="expert labels per cell in the labels track (default: 1000 3000 11000 30000 100000)",
    )
    parser.add_argument("--envs", nargs="+", default=None, help="default: every env of the track")
    parser.add_argument("--experts", nargs="+", default=(), help="only the track's cells of these experts")
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--config", dest="config_name", default=None, help="named config, e.g. strong")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/TRACK[-CONFIG])")
    parser.add_argument("--peer", action="store_true", help="also run imitation's BC / SimpleDAggerTrainer")
    parser.add_argument("--force", action="store_true", help="redo cells whose results.json exists")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="cells at once: 1 runs them here one by one, more "
        "on an embedded local Ray with that many CPUs (default: 1)",
    )
    parser.add_argument("--ray-address", default=None, metavar="HOST:PORT", help="run the cells on this Ray cluster")
    parser.add_argument(
        "--no-background-eval",
        dest="background_eval",
        action="store_false",
        default=None,
        help="one process per cell also with --workers 1 (parallel cells always use one)",
    )
    add_fields(parser, TrainConfig, note="; for every cell", only=BENCHMARK_OVERRIDES)
    parser.set_defaults(handler=benchmark_command)  # fmt: skip


def benchmark_command(args: argparse.Namespace) -> int:

    from sb3_il.benchmark import LABEL_BUDGETS, TRACKS, run_benchmark

    overrides = {k: getattr(args, k) for k in (*BENCHMARK_OVERRIDES, "background_eval") if getattr(args, k) is not None}
    out = args.out or Path("reports") / (args.track + (f"-{args.config_name}" if args.config_name else ""))
    if args.track == "finetune":
        return finetune_benchmark_command(args, overrides, out)
    given = {"--starts": args.starts, "--modes": args.modes, "--timesteps": args.timesteps,
             "--report-only": args.report_only}  # fmt: skip
    extra = [flag for flag, value in given.items() if value]
    if extra:
        raise UserError(f"{extra[0]} applies to --track finetune only")
    envs = args.envs or list(dict.fromkeys(env for env, _ in TRACKS[args.track]))
    rows = run_benchmark(out, args.track, envs, args.algos, args.seeds, args.config_name, args.peer, args.force,
                         overrides, args.workers, args.ray_address, args.label_budgets or LABEL_BUDGETS,
                         args.experts)  # fmt: skip
    print((out / "summary.md").read_text())
    figures = "label_curve.png" if args.track == "labels" else "learning_curves.png, final_bars.png"
    print(f"report: {out}/ (results.csv, summary.md, {figures})")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def finetune_benchmark_command(args: argparse.Namespace, overrides: dict[str, Any], out: Path) -> int:
    """``benchmark --track finetune``: of the imitation tracks' flags, only --eval-episodes applies."""
    from sb3_il.finetune_benchmark import named_starts, run_finetune_benchmark

    extra = [f"--{k.replace('_', '-')}" for k in sorted(set(overrides) - {"eval_episodes"})]
    given = {"--envs": args.envs, "--experts": args.experts, "--config": args.config_name, "--peer": args.peer}
    extra += [flag for flag, value in given.items() if value]
    if extra:
        raise UserError(f"{extra[0]} does not apply to --track finetune; its --starts choose the imitation runs")
    rows = run_finetune_benchmark(out, named_starts(args.starts), args.modes, args.seeds, args.timesteps,
                                  {k: v for k, v in overrides.items() if k == "eval_episodes"}, args.force,
                                  args.workers, args.ray_address, args.report_only)  # fmt: skip
    print((out / "summary.md").read_text())
    print(f"report: {out}/ (results.csv, summary.md, finetune_curves.png)")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def tune_parser(sub: Any) -> None:
    description = (
        "Search DAgger settings at a fixed label budget (Ray Tune + Optuna), then score the best on test seeds; "
        "writes report.md, trials.csv and dagger-tuned.yml. Tuning reads the env's reward; the policies do not."
    )
    parser = sub.add_parser("tune", help="search DAgger settings with Ray Tune and Optuna", description=description)
    parser.add_argument("--algo", choices=["dagger"], default="dagger")
    parser.add_argument("--env", dest="env_id", required=True, help="gymnasium env id")
    parser.add_argument("--config", dest="config_name", default=None, help="named config the search starts from")
    parser.add_argument("--trials", type=int, default=20, help="settings sampled (default: 20)")
    parser.add_argument("--workers", type=int, default=2, help="trials at once, on an embedded local Ray (default: 2)")
    parser.add_argument("--ray-address", default=None, metavar="HOST:PORT", help="run the trials on this Ray cluster")
    parser.add_argument("--space", default=None, help="search space YAML (default: zoo_configs/tune.yml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds per trial (default: 0 1)")
    parser.add_argument("--test-seeds", type=int, nargs="+", default=[5, 6, 7], help="seeds the best is scored on")
    parser.add_argument("--label-budget", type=int, default=11_000, help="expert labels per run (default: 11000)")
    add_fields(parser, TrainConfig, only=("expert", "n_demo_steps"))
    parser.add_argument("--val-episodes", type=int, default=10, help="validation episodes per trial seed")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: tune/dagger-ENV)")
    parser.set_defaults(handler=tune_command)


def tune_command(args: argparse.Namespace) -> int:
    from sb3_il.tune import tune_dagger

    overrides = {"expert": args.expert, "n_demo_steps": args.n_demo_steps}
    base = make_config(args.algo, args.env_id, overrides, args.config_name)
    out = args.out or Path("tune") / f"dagger-{args.env_id}"
    found = tune_dagger(base, out, args.trials, args.workers, args.ray_address, args.space, args.seeds,
                        args.test_seeds, args.label_budget, args.val_episodes)  # fmt: skip
    print(f"best: {found['best']}")
    print(f"test seeds {found['test']['seeds']}: {found['test']['mean']:.1f} ± {found['test']['std']:.1f}% of expert")
    print(f"report: {out / 'report.md'}; zoo entry: {out / 'dagger-tuned.yml'}")
    return 0


COMMANDS: list[Callable[[Any], None]] = [
    train_parser,
    evaluate_parser,
    finetune_parser,
    push_parser,
    push_demos_parser,
    export_minari_parser,
    benchmark_parser,
    tune_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sb3-il", description="Imitation learning (BC, DAgger) for Stable-Baselines3.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return parser


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a bad flag (already reported in one line)
        return int(exit_.code or 0)
    from sb3_il.policy import use_one_thread  # here, not at the top: --help stays instant

    use_one_thread()
    return args.handler(args)


def command(name: str) -> Callable[[Sequence[str] | None], int]:
    """``main`` for one command: what ``scripts/{name}.py`` and the ``sb3-il-{name}`` entry points run."""

    def run(argv: Sequence[str] | None = None) -> int:
        import sys

        return main([name, *(sys.argv[1:] if argv is None else argv)])

    return run


train_main = command("train")
