"""The fine-tuning benchmark (``sb3-il benchmark --track finetune``): starts × modes × PPO seeds.

A start is an imitation run the grid trains first (imitation seed 0, so every PPO seed fine-tunes the same
policy), or a Hub PPO expert itself: PPO continuing its own training is the pace a start that copies it can aim
at. Each start is fine-tuned in the modes its targets compare; each (start, mode, seed) cell is then an
ordinary fine-tuning folder, ``{out}/runs/finetune-{start}-{mode}-s{seed}``, reused on re-runs when its
recorded settings match. Cells run here or on Ray like the other tracks' (:mod:`sb3_il.scale`). The report
gives each mode's curve as % of the start (band over seeds) and a table of the lowest evaluation and the
returns at 200k, 500k and 1M steps.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sb3_il.benchmark import run_cell
from sb3_il.config import FINETUNE_MODES, FinetuneConfig, TrainConfig, make_config
from sb3_il.envs import check_env_fits
from sb3_il.errors import UserError
from sb3_il.evaluation import percent_of_expert
from sb3_il.experts import expert_files
from sb3_il.files import atomic_write, claimed_dir
from sb3_il.finetune import finetune_run, load_source
from sb3_il.plots import BandPanel, band_figure
from sb3_il.runs import RESULTS_FILE, read_results, read_run
from sb3_il.scale import Failed, Job, check_workers, run_jobs

#: ``Start.algo`` of a start that is the expert itself (a Hub PPO), not an imitation run of it.
EXPERT = "expert"


@dataclass(frozen=True)
class Start:
    """A policy to fine-tune: how the grid trains it (imitation seed 0; ``algo`` :data:`EXPERT`: the expert
    itself), PPO's budget from it, and the modes its targets compare."""

    algo: str
    env_id: str
    expert: str
    timesteps: int
    config_name: str | None = None
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig settings over the config's
    modes: tuple[str, ...] = FINETUNE_MODES

    def train_config(self) -> TrainConfig | None:
        """The imitation run's settings (None for the expert itself); an unknown expert fails here, first."""
        if self.algo == EXPERT:
            load_source(self.expert)  # a Hub PPO, or a one-line error
            return None
        config = make_config(self.algo, self.env_id, self.train | {"expert": self.expert, "seed": 0}, self.config_name)
        check_env_fits(config)
        expert_files(config.expert)
        return config


#: The fine-tuning targets' starts: near-expert DAgger ones (the article's settings, and ``--config strong`` from
#: the strongest expert), judged against their own start; poor BC ones on one episode of a TQC expert, judged
#: against PPO.load + learn and PPO from scratch; and, for reference, the expert the first one copies, continued
#: by PPO with its own critic. PPO's budget is where each is judged.
STARTS = {
    "expert-HalfCheetah": Start(EXPERT, "HalfCheetah-v4", "sb3/ppo-HalfCheetah-v3", 200_000, modes=("naive",)),
    "dagger-HalfCheetah": Start("dagger", "HalfCheetah-v4", "sb3/ppo-HalfCheetah-v3", 1_000_000, modes=("prepared",)),
    "dagger-Hopper": Start("dagger", "Hopper-v4", "sb3/trpo-Hopper-v3", 500_000, modes=("prepared",)),
    "strong-HalfCheetah": Start(
        "dagger", "HalfCheetah-v4", "sb3/tqc-HalfCheetah-v3", 1_000_000, "strong", modes=("prepared",)
    ),
    "bc1-Hopper": Start("bc", "Hopper-v4", "sb3/tqc-Hopper-v3", 500_000, train={"n_demo_steps": 1000}),
    "bc1-HalfCheetah": Start("bc", "HalfCheetah-v4", "sb3/tqc-HalfCheetah-v3", 500_000, train={"n_demo_steps": 1000}),
}
#: Timesteps at which the table reports the return.
MILESTONES = (200_000, 500_000, 1_000_000)
#: The returns the table gives: the lowest evaluation, the milestones and the one after the last update.
POINTS = ("lowest", *(f"{m // 1000}k" for m in MILESTONES), "final")
#: What they are measured against: the start's return (a near-expert start's targets) and the expert's (a poor
#: start's, whose own return may be negative).
SCALES = {"start": "the start's return", "expert": "the expert's return"}
COLUMNS = ["start", "mode", "seed", "status", "timesteps", "start_return", "expert_return",
           *(f"pct_{scale}_{point}" for scale in SCALES for point in POINTS), "wall_s", "run"]  # fmt: skip


def run_finetune_benchmark(
    out: Path,
    starts: dict[str, Start],
    modes: Sequence[str] | None,
    seeds: Sequence[int],
    timesteps: int | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    workers: int = 1,
    address: str | None = None,
    report_only: bool = False,
) -> list[dict[str, Any]]:
    """Train (or reuse) the starts, fine-tune every (start, mode, seed) cell, then write results.csv,
    summary.md and finetune_curves.png into ``out``. ``modes`` replaces every start's own, ``timesteps`` its
    budget; ``overrides`` are FinetuneConfig fields for every cell. Every setting is checked before any work.
    ``report_only`` runs nothing: the report shows the cells already finished with these settings (a grid
    stopped early, or one whose starts ran with different seeds)."""
    bad = [m for m in modes or () if m not in FINETUNE_MODES]
    if bad:
        raise UserError(f"unknown mode {bad[0]!r}; use any of {', '.join(FINETUNE_MODES)}")
    trains = {name: start.train_config() for name, start in starts.items()}
    cells = {(s, m, seed): cell_config(start, m, seed, timesteps, overrides or {}) for s, start in starts.items()
             for m in modes or start.modes for seed in seeds}  # fmt: skip
    check_workers(workers, address)
    out = Path(out)
    with claimed_dir(out):
        root = out.resolve() / "runs"
        if report_only:
            results = {key: finished(root / cell_name(*key), config) or NOT_RUN for key, config in cells.items()}
        else:
            results = run_cells(root, starts, trains, cells, force, workers, address)
        starts_return = {key[0]: value["start_return"] for key, value in results.items()
                         if key[1] != "scratch" and not isinstance(value, Failed)}  # fmt: skip
        experts_return = {s: starts_return.get(s) for s, start in starts.items() if start.algo == EXPERT}
        rows = [table_row(key, value, starts_return.get(key[0]), experts_return.get(key[0]))
                for key, value in results.items()]  # fmt: skip
        write_finetune_report(out, rows, results)
    return rows


def run_cells(root: Path, starts: dict[str, Start], trains: dict[str, TrainConfig | None],
              cells: dict[tuple[str, str, int], FinetuneConfig], force: bool, workers: int,
              address: str | None) -> dict[tuple[str, str, int], Any]:  # fmt: skip
    """Train (or reuse) the imitation starts into ``root``, then run every cell of a start that trained: each
    cell's results, or a :class:`Failed`."""
    parallel = workers > 1 or address is not None
    start_jobs = [Job(f"start-{s}", run_cell, (config, root / f"start-{s}", False, force, parallel))
                  for s, config in trains.items() if config is not None]  # fmt: skip
    trained = run_jobs(start_jobs, workers, address) if start_jobs else {}
    failed = {s: trained[f"start-{s}"] for s in starts if isinstance(trained.get(f"start-{s}"), Failed)}
    sources = {s: str(root / f"start-{s}") if trains[s] else start.expert for s, start in starts.items()}
    jobs = [Job(cell_name(*key), finetune_cell, (sources[key[0]], config, root / cell_name(*key), force))
            for key, config in cells.items() if key[0] not in failed]  # fmt: skip
    done = run_jobs(jobs, workers, address)
    return {key: Failed(f"its start failed: {failed[key[0]].error}") if key[0] in failed else done[cell_name(*key)]
            for key in cells}  # fmt: skip


def cell_config(start: Start, mode: str, seed: int, timesteps: int | None, overrides: dict[str, Any]) -> FinetuneConfig:
    """A cell's settings: the defaults, the start's budget, 50-episode evaluations every 50k steps."""
    values = {"timesteps": timesteps or start.timesteps, "eval_every": 50_000} | overrides
    config = FinetuneConfig(env_id=start.env_id, mode=mode, seed=seed, **values)
    config.validate()
    return config


def cell_name(start: str, mode: str, seed: int) -> str:
    return f"finetune-{start}-{mode}-s{seed}"


def finetune_cell(source: str, config: FinetuneConfig, cell_dir: Path, force: bool) -> dict[str, Any]:
    """One fine-tuning run of ``source``, a start's run folder or a Hub repo (reused if it finished with these
    settings)."""
    reused = None if force else finished(cell_dir, config)
    if reused is not None:
        return reused
    finetune_run(source, config, out=cell_dir, quiet=True)
    return read_results(cell_dir)


#: A cell ``report_only`` found no finished run for.
NOT_RUN = Failed("not run")


def finished(cell_dir: Path, config: FinetuneConfig) -> dict[str, Any] | None:
    """The results of the run in ``cell_dir`` if it finished with ``config``'s settings, else None."""
    if not (cell_dir / RESULTS_FILE).exists():
        return None
    recorded = asdict(read_run(cell_dir).config)
    requested = asdict(config) | {"env_wrapper": recorded["env_wrapper"]}  # the start's, resolved by the run
    same = {k: v for k, v in recorded.items() if k != "ppo"} == {k: v for k, v in requested.items() if k != "ppo"}
    if not same or not (requested["ppo"] or {}).items() <= (recorded["ppo"] or {}).items():
        return None
    return read_results(cell_dir)


def table_row(key: tuple[str, str, int], results: Any, start_return: float | None = None,
              expert_return: float | None = None) -> dict[str, Any]:  # fmt: skip
    """A cell's CSV row: the :data:`POINTS` of its curve as % of the start's return and of the expert's.
    ``start_return`` is the policy the start's modes fine-tune; a scratch cell, which starts from a random
    policy of its own, is measured against it too (its own start when the start has no other mode).
    ``expert_return`` is for a start that is the expert itself; other cells' runs record their expert's."""
    start, mode, seed = key
    row: dict[str, Any] = {"start": start, "mode": mode, "seed": seed, "run": cell_name(*key)}
    if results is NOT_RUN:
        return row | {"status": NOT_RUN.error}
    if isinstance(results, Failed):
        return row | {"status": f"failed: {results.error}"}
    curve, steps = results["curve"], steps_taken(results["curve"])
    first = start_return if start_return is not None else results["start_return"]
    expert = expert_return if expert_return is not None else results.get("expert_return")
    row |= {"status": "ok", "timesteps": steps[-1], "start_return": first, "expert_return": expert,
            "wall_s": results["wall_s"]}  # fmt: skip
    for scale, reference in (("start", first), ("expert", expert)):
        if reference:
            pct = [percent_of_expert(p["mean_return"], reference) for p in curve]
            at = [next((p for p, t in zip(pct, steps, strict=True) if t >= m), None) for m in MILESTONES]
            row |= {f"pct_{scale}_{point}": v for point, v in zip(POINTS, [min(pct), *at, pct[-1]], strict=True)}
    return row


def steps_taken(curve: list[dict[str, float]]) -> list[int]:
    """PPO steps taken by each evaluation of ``curve``: a Hub expert's zip starts its count where its own
    training ended."""
    return [int(p["timesteps"] - curve[0]["timesteps"]) for p in curve]


def write_finetune_report(out: Path, rows: list[dict[str, Any]], results: dict[tuple, Any]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "results.csv", lambda p: p.write_text(buf.getvalue()))
    atomic_write(out / "summary.md", lambda p: p.write_text(finetune_markdown(rows)))
    finetune_figure(out / "finetune_curves.png", rows, results)


def finetune_markdown(rows: list[dict[str, Any]]) -> str:
    """One table per scale; per (start, mode), mean ± std over seeds of each of the :data:`POINTS`."""
    lines = ["50-episode deterministic evaluations every 50k PPO steps and after the last update; mean ± std over "
             "PPO seeds, lowest seed in brackets."]  # fmt: skip
    for scale, what in SCALES.items():
        header = f"| start | mode | {scale} return | seeds | lowest | 200k | 500k | 1M | end |"
        lines += ["", f"% of {what}:", "", header, "|" + "---|" * 9]
        for start in dict.fromkeys(r["start"] for r in rows):
            for mode in dict.fromkeys(r["mode"] for r in rows if r["start"] == start):
                cell = [r for r in rows if r["start"] == start and r["mode"] == mode]
                lines.append(markdown_row(cell, scale))
    return "\n".join(lines) + "\n"


def markdown_row(cell: list[dict[str, Any]], scale: str) -> str:
    """One (start, mode)'s row of ``scale``'s table, its seeds that failed or did not run counted."""
    ok = [r for r in cell if r["status"] == "ok"]
    missing = {what: sum(r["status"].startswith(what) for r in cell) for what in ("failed", NOT_RUN.error)}
    failed = "".join(f" ({n} {what})" for what, n in missing.items() if n)
    references = [r[f"{scale}_return"] for r in ok if r[f"{scale}_return"] is not None]
    reference = f"{np.mean(references):.0f}" if references else "-"
    spreads = [_spread([r.get(f"pct_{scale}_{point}") for r in ok]) for point in POINTS]
    return f"| {cell[0]['start']} | {cell[0]['mode']} | {reference} | {len(ok)}{failed} | {' | '.join(spreads)} |"


def _spread(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known or len(known) < len(values):  # a milestone past some seeds' budget
        return "-"
    return f"{np.mean(known):.1f} ± {np.std(known):.1f} ({min(known):.1f})"


def finetune_figure(path: Path, rows: list[dict[str, Any]], results: dict[tuple, Any]) -> None:
    """% of the expert's return against PPO timesteps, one panel per start, one band per mode; the start and
    97% of it (a near-expert start's floor) as lines. One scale for every panel: a poor start's return, the
    other scale, may be negative."""
    panels = []
    for start in dict.fromkeys(r["start"] for r in rows):
        ok = [r for r in rows if r["start"] == start and r["status"] == "ok"]
        if not ok:  # nothing ran: an empty panel says so
            panels.append(BandPanel(f"{start} (not run)", {}, {}))
            continue
        expert, first = ok[0]["expert_return"] or ok[0]["start_return"], ok[0]["start_return"]
        series = {}
        for mode in dict.fromkeys(r["mode"] for r in ok):
            curves = [results[start, mode, r["seed"]]["curve"] for r in ok if r["mode"] == mode]
            length = min(map(len, curves))
            series[mode] = (
                steps_taken(curves[0])[:length],
                [[percent_of_expert(p["mean_return"], expert) for p in c[:length]] for c in curves],
            )
        level = percent_of_expert(first, expert)
        lines = {"expert (100%)": 100.0, f"start ({level:.0f}%)": level}
        if first > 0:
            lines["97% of the start"] = percent_of_expert(0.97 * first, expert)
        panels.append(BandPanel(start, series, lines))
    band_figure(panels, "PPO timesteps", "% of the expert's return", "PPO fine-tuning of imitation policies", path)


def named_starts(names: Sequence[str]) -> dict[str, Start]:
    """The :data:`STARTS` entries named (all for an empty list)."""
    unknown = [name for name in names if name not in STARTS]
    if unknown:
        raise UserError(f"unknown start {unknown[0]!r}; use any of {', '.join(STARTS)}")
    return {name: STARTS[name] for name in names or STARTS}
