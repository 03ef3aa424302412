"""The article's experiment as a grid of independent runs: (env, algo, seed) -> table, curves, bars.

Each cell is an ordinary run folder (``{out}/runs/{algo}-{env}-{expert}-s{seed}``), so a finished cell is
skipped on re-runs (``results.json`` exists) and a crashed cell is reported as failed without stopping the rest.
With ``peer=True`` each cell is also trained by ``imitation`` (``sb3_il.peer``) on the same demos. The labels
track adds a label budget to each cell (``...-L{budget}-s{seed}``): % of expert against the labels paid for.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sb3_il.config import TrainConfig, dagger_iterations, default_expert, make_config, with_label_budget
from sb3_il.envs import check_env_fits, make_env
from sb3_il.errors import UserError
from sb3_il.evaluation import fall_rate, percent_of_expert
from sb3_il.experts import expert_files, load_expert
from sb3_il.files import atomic_write, claimed_dir, write_json
from sb3_il.peer import run_peer
from sb3_il.plots import BandPanel, CurvePanel, band_figure, benchmark_bars, benchmark_curves
from sb3_il.policy import load_run_model, predict_fn
from sb3_il.recipe import VERSION as RECIPE_VERSION
from sb3_il.runs import RESULTS_FILE, Run, read_results, read_run, train_run
from sb3_il.scale import Failed, Job, check_workers, run_jobs

#: The (env, expert) pairs of each track; None: the env's default expert (zoo_configs/experts.yml). The zoo track
#: is every MuJoCo expert of the RL Zoo this project's tests read (Swimmer-v4 does not build under mujoco 3).
TRACKS: dict[str, list[tuple[str, str | None]]] = {
    "article": [("Ant-v4", None), ("Hopper-v4", None), ("HalfCheetah-v4", None)],
    "strong": [("Hopper-v4", "sb3/tqc-Hopper-v3"), ("HalfCheetah-v4", "sb3/tqc-HalfCheetah-v3")],
    "zoo": [
        ("Ant-v4", "sb3/trpo-Ant-v3"), ("HalfCheetah-v4", "sb3/ppo-HalfCheetah-v3"),
        ("HalfCheetah-v4", "sb3/tqc-HalfCheetah-v3"), ("Hopper-v4", "sb3/trpo-Hopper-v3"),
        ("Hopper-v4", "sb3/tqc-Hopper-v3"), ("Hopper-v4", "sb3/sac-Hopper-v3"), ("Hopper-v4", "sb3/ppo-Hopper-v3"),
        ("Walker2d-v4", "sb3/tqc-Walker2d-v3"), ("Walker2d-v4", "sb3/ppo-Walker2d-v3"),
        ("Walker2d-v4", "sb3/a2c-Walker2d-v3"),
    ],
}  # fmt: skip
TRACKS["labels"] = TRACKS["zoo"]
#: Label budgets of the labels track: the article's 11,000, and from a tenth of it to ten times it.
LABEL_BUDGETS = (1_000, 3_000, 11_000, 30_000, 100_000)
#: The reference article's % of expert (BC, DAgger) on the -v2 envs.
ARTICLE_RESULTS = {"Ant": (88.9, 102.1), "Hopper": (23.7, 99.8), "HalfCheetah": (94.3, 96.0)}

COLUMNS = [
    "track",
    "config",
    "task",
    "env",
    "expert",
    "algo",
    "impl",
    "seed",
    "label_budget",
    "status",
    "expert_return_mean",
    "expert_return_std",
    "expert_episodes",
    "final_return_mean",
    "final_return_std",
    "pct_expert",
    "expert_labels",
    "n_demo_episodes",
    "env_steps",
    "grad_steps",
    "train_wall_s",
    "wall_s",
    "fall_rate",
    "expert_fall_rate",
    "run",
]


@dataclass(frozen=True)
class Cell:
    """One grid cell: a run's config, and the label budget it was made from (labels track; None elsewhere)."""

    config: TrainConfig
    budget: int | None = None

    @property
    def name(self) -> str:
        """Its run folder: ``{algo}-{env}-{expert repo name}[-L{budget}]-s{seed}`` (an env may have several
        experts, and the labels track several budgets)."""
        config, budget = self.config, f"-L{self.budget}" if self.budget is not None else ""
        expert = Path(str(config.expert)).name.removesuffix(".zip")
        return f"{config.algo}-{config.env_id}-{expert}{budget}-s{config.seed}"


def run_benchmark(
    out: Path,
    track: str,
    envs: Sequence[str],
    algos: Sequence[str],
    seeds: Sequence[int],
    config_name: str | None = None,
    peer: bool = False,
    force: bool = False,
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
    address: str | None = None,
    budgets: Sequence[int] = LABEL_BUDGETS,
    experts: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Run (or reuse) every cell, then write results.csv, summary.md and the figures into ``out``.

    Every cell's config is checked before the first one trains, so a bad grid fails at once. Cells run one
    after another (``workers=1``) or in parallel on Ray (:mod:`sb3_il.scale`): each is the same run folder with
    the same numbers either way. ``budgets`` are the labels track's; ``experts`` keeps only the track's cells of
    these experts.
    """
    cells = grid(track, envs, algos, seeds, config_name, overrides or {}, budgets, experts)
    check_workers(workers, address)
    with claimed_dir(Path(out)):
        return _run_grid(Path(out), track, cells, config_name, peer, force, workers, address)


def _run_grid(out: Path, track: str, cells: list[Cell], config_name: str | None, peer: bool, force: bool,
              workers: int, address: str | None) -> list[dict[str, Any]]:  # fmt: skip
    parallel = workers > 1 or address is not None
    jobs = [Job(cell.name, run_cell, (cell.config, out.resolve() / "runs" / cell.name, peer, force, parallel))
            for cell in cells]  # fmt: skip
    results = run_jobs(jobs, workers, address)
    rows: list[dict[str, Any]] = []
    for cell in cells:
        config = cell.config
        base = {"track": track, "config": config_name or "article", "task": f"{config.env_id} ({config.expert})",
                "env": config.env_id, "expert": config.expert, "algo": config.algo, "seed": config.seed,
                "label_budget": cell.budget, "run": cell.name}  # fmt: skip
        result = results[cell.name]
        if isinstance(result, Failed):
            result = [{"impl": "sb3_il", "status": f"failed: {result.error}"}]
        rows += [base | row for row in result]
    for row in rows:
        _print_row(row)
    write_report(out, rows)
    return rows


def run_cell(config: TrainConfig, run_dir: Path, peer: bool, force: bool, parallel: bool) -> list[dict[str, Any]]:
    """One cell: our run in ``run_dir`` (reused if finished), and imitation's beside it with ``peer``.

    In parallel each cell has one core, so its evaluation runs in its own process (the same numbers).
    """
    if parallel:
        config = dataclasses.replace(config, background_eval=False)
    reuse = (run_dir / RESULTS_FILE).exists() and not force and same_settings(read_run(run_dir), config)
    ours = read_results(run_dir) if reuse else train_run(config, run_dir, progress=False)
    rows = [{"impl": "sb3_il"} | _row(ours | {"status": "ok"}) | fall_rates(config, run_dir)]
    if peer:
        peer_dir = run_dir.with_name(run_dir.name + "-imitation")
        theirs = _cached_or_run(peer_dir, force or not reuse, _peer_results, config, run_dir, ours)
        rows.append({"impl": "imitation"} | _row(theirs))
    return rows


#: Settings a run resolves from what it observes (the recipe, the expert's wrappers, the data held), or that
#: change how but not what it computes: a finished cell's config.yml may differ from the request in these.
RESOLVED = (
    "adapt",
    "net_arch",
    "lr",
    "ensemble",
    "bounded_loss",
    "jacobian_weight",
    "jacobian_rows",
    "env_wrapper",
    "n_demo_steps",
    "background_eval",
)


def same_settings(run: Run, requested: TrainConfig) -> bool:
    """Whether a finished cell was trained as ``requested``: every setting the run does not resolve itself
    agrees, and the resolved ones too unless the request leaves them to the recipe (``adapt``), whose version
    must then be today's. A cell made with other settings (another ``--n-iters`` into the same ``--out``) or by
    an older recipe is trained again, not reused."""
    if requested.adapt and run.results.get("recipe") != RECIPE_VERSION:
        return False
    skip = set(RESOLVED) if requested.adapt else {"env_wrapper", "n_demo_steps", "background_eval"}
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in skip]
    return all(getattr(run.config, name) == getattr(requested, name) for name in fields)


def grid(
    track: str, envs: Sequence[str], algos: Sequence[str], seeds: Sequence[int], config_name: str | None,
    overrides: dict[str, Any], budgets: Sequence[int] = LABEL_BUDGETS, experts: Sequence[str] = (),
) -> list[Cell]:  # fmt: skip
    """Every (env, algo[, budget], seed) cell, each config checked (env included). In the labels track a
    budget DAgger cannot spend on one iteration after its demonstrations has a BC cell only; its cells
    evaluate the final policy alone unless ``eval_episodes`` is given (the budgets make the curve)."""
    if track not in TRACKS:
        raise UserError(f"unknown track {track!r}; use one of {', '.join(TRACKS)}")
    labels = track == "labels"
    if labels:
        overrides = {"eval_episodes": 0} | overrides
        if not budgets or min(budgets) < 1:
            raise UserError(f"--label-budgets must be positive integers, got {list(budgets)}")
    pairs = [(env, expert) for env, expert in TRACKS[track] if env in envs]
    pairs += [(env, None) for env in envs if env not in dict(TRACKS[track])]  # envs outside the track
    if experts:
        pairs = [(env, expert) for env, expert in pairs if expert in experts]
        if not pairs:
            raise UserError(f"--experts {' '.join(experts)}: none is an expert of the {track} track's --envs")
    cells = []
    for env, expert in pairs:
        for algo in algos:
            values = {"expert": overrides.get("expert") or expert or default_expert(env)}
            config = make_config(algo, env, overrides | values, config_name)
            check_env_fits(config)
            expert_files(config.expert)  # an unknown expert fails here, not in every cell
            for budget in sorted(set(budgets)) if labels else [None]:
                if budget is not None and algo == "dagger" and dagger_iterations(config, budget) < 1:
                    continue
                made = config if budget is None else with_label_budget(config, budget)
                cells += [Cell(dataclasses.replace(made, seed=seed), budget) for seed in seeds]
    return cells


def fall_rates(config: TrainConfig, run_dir: Path) -> dict[str, float]:
    """In envs that end an episode when the body falls (Hopper, Walker2d, Ant): the share of the final
    evaluation's episodes that fell, for the learner and the expert (empty elsewhere)."""
    env = make_env(config.env_id)
    env.close()
    if not getattr(env.unwrapped, "_terminate_when_unhealthy", False):
        return {}
    wrapped = read_run(run_dir).env  # with the wrappers the expert's files named
    spaces = make_env(wrapped)
    policy, expert = predict_fn(*load_run_model(run_dir)), load_expert(config.expert, spaces)
    spaces.close()
    episodes = config.final_eval_episodes
    return {"fall_rate": fall_rate(policy, wrapped, episodes), "expert_fall_rate": fall_rate(expert, wrapped, episodes)}


def _cached_or_run(folder: Path, force: bool, compute: Callable[..., dict], *args: Any) -> dict[str, Any]:
    """A cell's results: its folder's if finished (and not ``force``), else computed (a failure is a status)."""
    if (folder / RESULTS_FILE).exists() and not force:
        return read_results(folder) | {"status": "ok"}
    try:
        results = compute(*args)
    except Exception as err:  # one broken cell must not sink the grid
        traceback.print_exc()
        return {"status": f"failed: {type(err).__name__}: {err}".splitlines()[0]}
    if not (folder / RESULTS_FILE).exists():
        write_json(folder / RESULTS_FILE, results)
    return results | {"status": "ok"}


def _peer_results(config: TrainConfig, our_run: Path, ours: dict[str, Any]) -> dict[str, Any]:
    """imitation's run on our run's demos, scored against the same expert numbers."""
    theirs = run_peer(config, our_run)
    demo_labels = ours["curve"][0]["expert_labels"]  # iteration 0 fits on the demonstrations alone
    return theirs | {
        "expert_return_mean": ours["expert_return_mean"],
        "expert_return_std": ours["expert_return_std"],
        "eval_episodes": ours["eval_episodes"],
        "n_demo_episodes": ours["n_demo_episodes"],
        "pct_expert": percent_of_expert(theirs["mean_return"], ours["expert_return_mean"]),
        "wall_s": theirs["train_wall_s"],
        "env_steps": theirs["expert_labels"] - demo_labels,
    }


def _row(results: dict[str, Any]) -> dict[str, Any]:
    if results.get("status") != "ok":
        return {"status": results.get("status", "failed")}
    return {
        "status": "ok",
        "expert_return_mean": results["expert_return_mean"],
        "expert_return_std": results["expert_return_std"],
        "expert_episodes": results["eval_episodes"],
        "final_return_mean": results["mean_return"],
        "final_return_std": results["std_return"],
        "pct_expert": results["pct_expert"],
        "expert_labels": results["expert_labels"],
        "n_demo_episodes": results["n_demo_episodes"],
        "env_steps": results["env_steps"],
        "grad_steps": results["grad_steps"],
        "train_wall_s": results["train_wall_s"],
        "wall_s": results["wall_s"],
    }


def _print_row(row: dict[str, Any]) -> None:
    if row["status"] == "ok":
        print(
            f"{row['env']:15s} {row['algo']:6s} {row['impl']:9s} seed {row['seed']}"
            + (f", {row['label_budget']:,} labels asked" if row.get("label_budget") else "")
            + f": {row['pct_expert']:6.1f}% "
            f"of expert, {row['expert_labels']} labels, train {row['train_wall_s']:.1f}s",
            flush=True,
        )
    else:
        print(f"{row['env']:15s} {row['algo']:6s} {row['impl']:9s} seed {row['seed']}: {row['status']}", flush=True)


def _falls(rows: list[dict[str, Any]]) -> str:
    """Mean fall rates over seeds, learner / expert, in envs where bodies fall ("-" elsewhere)."""
    if not rows or rows[0].get("fall_rate") in (None, ""):
        return "-"
    return f"{_stat(rows, 'fall_rate')[0]:.0%} / {_stat(rows, 'expert_fall_rate')[0]:.0%}"


def _stat(rows: list[dict[str, Any]], key: str) -> tuple[float, float, int]:
    values = [float(r[key]) for r in rows if r["status"] == "ok"]
    return (float(np.mean(values)), float(np.std(values)), len(values)) if values else (float("nan"), 0.0, 0)


def _select(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def write_report(out: Path, rows: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "results.csv", lambda p: p.write_text(buf.getvalue()))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    if rows and rows[0]["track"] == "labels":
        atomic_write(out / "summary.md", lambda p: p.write_text(labels_markdown(rows)))
        labels_figure(out / "label_curve.png", tasks, rows)
        return
    atomic_write(out / "summary.md", lambda p: p.write_text(summary_markdown(rows)))
    curves_figure(out, tasks, rows)
    bars_figure(out / "final_bars.png", tasks, rows)


#: The levels the labels track reports the labels needed for, in % of the expert's return.
LABEL_TARGETS = (95.0, 99.0)


def label_curve(rows: list[dict[str, Any]]) -> list[tuple[int, float, float, float]]:
    """(budget, mean labels used, mean % of expert, lowest seed's %) for each budget of one (task, algo)."""
    points = []
    for budget in sorted({r["label_budget"] for r in rows}):
        cell = [r for r in rows if r["label_budget"] == budget and r["status"] == "ok"]
        if cell:
            pct = [float(r["pct_expert"]) for r in cell]
            points.append((budget, _stat(cell, "expert_labels")[0], float(np.mean(pct)), min(pct)))
    return points


def labels_markdown(rows: list[dict[str, Any]]) -> str:
    """% of expert at each label budget (mean ± std over seeds), and the smallest budget whose mean reaches
    each of :data:`LABEL_TARGETS`."""
    budgets = sorted({r["label_budget"] for r in rows})
    lines = ["% of the expert's return (mean ± std over seeds; lowest seed in brackets) at each label budget:", "",
             "| env | expert | algo | " + " | ".join(f"{b:,}" for b in budgets) + " | train s (largest) |",
             "|" + "---|" * (len(budgets) + 4)]  # fmt: skip
    reach = ["", "Labels needed: the smallest budget whose mean over seeds reaches the level.", "",
             "| env | expert | algo | " + " | ".join(f"{t:.0f}%" for t in LABEL_TARGETS) + " |",
             "|" + "---|" * (len(LABEL_TARGETS) + 3)]  # fmt: skip
    for task in dict.fromkeys(r["task"] for r in rows):
        for algo in dict.fromkeys(r["algo"] for r in _select(rows, task=task)):
            cell = _select(rows, task=task, algo=algo)
            head = f"| {cell[0]['env']} | {cell[0]['expert']} | {algo} | "
            by_budget = {b: _select(cell, label_budget=b) for b in budgets}
            pcts = [_pct_cell(by_budget[b]) for b in budgets]
            largest = [r for r in cell if r["label_budget"] == max(r["label_budget"] for r in cell)]
            lines.append(head + " | ".join(pcts) + f" | {_stat(largest, 'train_wall_s')[0]:.1f} |")
            curve = label_curve(cell)
            needed = [next((f"{b:,}" for b, _, mean, _ in curve if mean >= t), f"> {max(budgets):,}")
                      for t in LABEL_TARGETS]  # fmt: skip
            reach.append(head + " | ".join(needed) + " |")
    return "\n".join(lines + reach) + "\n"


def _pct_cell(rows: list[dict[str, Any]]) -> str:
    ok = [float(r["pct_expert"]) for r in rows if r["status"] == "ok"]
    if not ok:
        return "-" if not rows else "failed"
    return f"{np.mean(ok):.1f} ± {np.std(ok):.1f} ({min(ok):.0f})"


def labels_figure(path: Path, tasks: list[str], rows: list[dict[str, Any]]) -> None:
    """% of expert against the expert labels used, one panel per (env, expert), one line per algo."""
    panels = []
    for task in tasks:
        series = {}
        for algo in dict.fromkeys(r["algo"] for r in _select(rows, task=task)):
            ok = _select(rows, task=task, algo=algo, status="ok")
            budgets = sorted({r["label_budget"] for r in ok})
            seeds = sorted({r["seed"] for r in ok})
            table = {(r["label_budget"], r["seed"]): float(r["pct_expert"]) for r in ok}
            full = [b for b in budgets if all((b, s) in table for s in seeds)]  # a budget every seed finished
            if full:
                series[algo.upper() if algo == "bc" else "DAgger"] = (
                    full, [[table[b, s] for b in full] for s in seeds])  # fmt: skip
        panels.append(BandPanel(task, series, {"expert (100%)": 100.0, "95%": 95.0}))
    title = "% of the expert's return against the expert labels paid for"
    band_figure(panels, "expert labels (label budget)", "% of the expert's return", title, path, log_x=True)


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """The article-style table: % of expert, mean ± std over seeds, with the article's numbers beside ours."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    lines = [
        "| env | expert | expert return | algo | impl | % of expert (mean ± std) | min seed | seeds | "
        "labels | train s | falls (learner / expert) | article % |",
        "|" + "---|" * 12,
    ]
    for task in tasks:
        for algo in dict.fromkeys(r["algo"] for r in _select(rows, task=task)):
            for impl in impls:
                cell = _select(rows, task=task, algo=algo, impl=impl)
                if not cell:
                    continue
                pct, pct_std, n = _stat(cell, "pct_expert")
                ok = [r for r in cell if r["status"] == "ok"]
                expert = f"{ok[0]['expert_return_mean']:.0f} ± {ok[0]['expert_return_std']:.0f}" if ok else "-"
                low = min((float(r["pct_expert"]) for r in ok), default=float("nan"))
                env = cell[0]["env"]
                article = ARTICLE_RESULTS.get(env.split("-")[0]) if cell[0]["track"] == "article" else None
                ref = f"{article[0 if algo == 'bc' else 1]:.1f}" if article else "-"
                failed = len(cell) - n
                lines.append(
                    f"| {env} | {cell[0]['expert']} | {expert} | {algo} | {impl} | {pct:.1f} ± {pct_std:.1f} | "
                    f"{low:.1f} | {n}{f' ({failed} failed)' if failed else ''} | {_stat(cell, 'expert_labels')[0]:.0f} "
                    f"| {_stat(cell, 'train_wall_s')[0]:.1f} | {_falls(ok)} | {ref} |"
                )
    if "imitation" in impls:
        lines += [
            "",
            "Ours vs imitation (same demos, label budget, gradient steps, policy size; eval on the same seeds):",
            "",
            "| env | algo | return ratio (ours / imitation, % of expert) | speed-up (imitation s / ours s) |",
            "|---|---|---|---|",
        ]
        for task in tasks:
            for algo in dict.fromkeys(r["algo"] for r in _select(rows, task=task)):
                ours, theirs = (
                    _select(rows, task=task, algo=algo, impl="sb3_il"),
                    _select(rows, task=task, algo=algo, impl="imitation"),
                )
                if theirs:
                    ours_pct, theirs_pct = _stat(ours, "pct_expert")[0], _stat(theirs, "pct_expert")[0]
                    # A ratio of two negative scores reads backwards; say so instead of printing it.
                    ratio = f"{ours_pct / theirs_pct:.2f}" if min(ours_pct, theirs_pct) > 0 else "n/a (score < 0)"
                    speed = _stat(theirs, "train_wall_s")[0] / _stat(ours, "train_wall_s")[0]
                    lines.append(f"| {ours[0]['env']} | {algo} | {ratio} | {speed:.1f}x |")
    return "\n".join(lines) + "\n"


def curves_figure(out: Path, tasks: list[str], rows: list[dict[str, Any]]) -> None:
    """The data of the curves figure (:func:`sb3_il.plots.benchmark_curves`), one panel per (env, expert)."""
    panels = []
    for task in tasks:
        dagger = _select(rows, task=task, algo="dagger", impl="sb3_il", status="ok")
        curves = [[(p["expert_labels"], p["mean_return"]) for p in read_results(out / "runs" / r["run"])["curve"]]
                  for r in dagger]  # fmt: skip
        ok = _select(rows, task=task, status="ok")
        bc_cells = {
            impl: _select(rows, task=task, algo="bc", impl=impl, status="ok") for impl in ("sb3_il", "imitation")
        }
        bc = {impl: _stat(cell, "final_return_mean")[0] for impl, cell in bc_cells.items() if cell}
        peer = [(r["expert_labels"], r["final_return_mean"])
                for r in _select(rows, task=task, algo="dagger", impl="imitation", status="ok")]  # fmt: skip
        expert = ok[0]["expert_return_mean"] if ok else None
        panels.append(CurvePanel(task, curves, expert, bc, peer))
    benchmark_curves(panels, out / "learning_curves.png")


def bars_figure(path: Path, tasks: list[str], rows: list[dict[str, Any]]) -> None:
    """The data of the bars figure (:func:`sb3_il.plots.benchmark_bars`): % of expert per seed, by (algo, impl)."""
    groups = {
        f"{algo} ({impl})": [[float(r["pct_expert"]) for r in _select(rows, task=t, algo=algo, impl=impl, status="ok")]
                             for t in tasks]
        for algo, impl in dict.fromkeys((r["algo"], r["impl"]) for r in rows)
    }  # fmt: skip
    benchmark_bars(tasks, groups, path)
