"""Hyperparameter search for DAgger with Ray Tune and Optuna's sampler, at a fixed label budget.

Each trial trains the sampled settings on ``seeds`` and scores the final policies by % of the expert on
validation episodes (seeds :data:`TUNE_SEED` onward, apart from the evaluation's). The best settings are then
trained on ``test_seeds``, never seen by the search, and scored by the usual evaluation. Tuning reads the
env's reward to choose settings; the policies it trains do not (training stays reward-free).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sb3_il.config import TrainConfig, read_config_file, zoo_file
from sb3_il.envs import make_env
from sb3_il.errors import UserError
from sb3_il.evaluation import EpisodeRunner, Evaluator, evaluate_expert, percent_of_expert
from sb3_il.experts import load_expert
from sb3_il.files import atomic_write, staged_dir, write_yaml
from sb3_il.policy import load_run_model, predict_fn, use_one_thread
from sb3_il.runs import train_run
from sb3_il.scale import Failed, Job, check_workers, ray_session, run_jobs

#: First seed of the validation episodes that score trials (apart from evaluation and iterate selection).
TUNE_SEED = 3_000_000


def settings(params: dict[str, Any], base: TrainConfig, label_budget: int) -> TrainConfig:
    """``base`` with a trial's sampled ``params`` (``width``: both hidden layers; ``n_iters``: the budget split)."""
    values = dict(params)
    if "width" in values:
        values["net_arch"] = [int(values.pop("width"))] * 2
    if "n_iters" in values:
        values["steps_per_iter"] = max(1, (label_budget - base.n_demo_steps) // int(values["n_iters"]))
    config = dataclasses.replace(base, **values)
    config.validate()
    return config


def score(config: TrainConfig, folder: Path, episodes: int) -> float:
    """% of the expert of ``folder``'s policy on the validation episodes."""
    with closing(make_env(config.env)) as spaces:
        expert = load_expert(config.expert, spaces)
    evaluator = Evaluator(config.env, episodes, TUNE_SEED)
    try:
        expert_returns = evaluate_expert(evaluator, expert, config.env, TUNE_SEED, episodes).result()
    finally:
        evaluator.close()
    with EpisodeRunner(config.env, episodes, TUNE_SEED) as runner:
        returns = runner(predict_fn(*load_run_model(folder)), episodes)
    return percent_of_expert(float(returns.mean()), float(expert_returns.mean()))


def trial(params: dict[str, Any], base: TrainConfig, label_budget: int, seeds: Sequence[int], out: Path,
          episodes: int) -> dict[str, float]:  # fmt: skip
    """One Ray Tune trial: train on each seed, return the mean validation % of expert."""
    from ray import tune

    use_one_thread()
    config = settings(params, base, label_budget)
    name = tune.get_context().get_trial_id()
    pcts = []
    for seed in seeds:
        folder = out / "trials" / f"{name}-s{seed}"
        train_run(dataclasses.replace(config, seed=seed), folder, progress=False)
        pcts.append(score(config, folder, episodes))
    return {"pct_expert": float(np.mean(pcts)), "pct_expert_min": float(np.min(pcts))}


def search_space(spec: dict[str, Any]) -> dict[str, Any]:
    from ray import tune

    make = {"choice": lambda values: tune.choice(list(values)), "loguniform": lambda bounds: tune.loguniform(*bounds)}
    return {key: make[kind](values) for key, (kind, values) in map(_entry, spec.items())}


def _entry(item: tuple[str, Any]) -> tuple[str, tuple[str, Any]]:
    """A search-space entry as (key, (kind, values)), or a one-line error before any trial starts."""
    key, entry = item
    kind, values = next(iter(entry.items())) if isinstance(entry, dict) and len(entry) == 1 else (None, None)
    numbers = isinstance(values, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if kind == "choice" and isinstance(values, list) and values:
        return key, (kind, values)
    if kind == "loguniform" and numbers and len(values) == 2 and 0 < values[0] < values[1]:
        return key, (kind, values)
    raise UserError(f"search space entry {key!r} must be {{choice: [v, ...]}} or {{loguniform: [low, high]}} with "
                    f"0 < low < high, got {entry!r:.80}")  # fmt: skip


def read_space(path: str | None) -> dict[str, Any]:
    spec = zoo_file("tune.yml") if path is None else read_config_file(path)
    known = {f.name for f in dataclasses.fields(TrainConfig)} | {"width"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise UserError(f"search space keys {unknown} are not TrainConfig fields (nor width)")
    for item in spec.items():
        _entry(item)
    return spec


def tune_dagger(base: TrainConfig, out: Path, trials: int, workers: int = 1, address: str | None = None,
                space: str | None = None, seeds: Sequence[int] = (0, 1), test_seeds: Sequence[int] = (5, 6, 7),
                label_budget: int = 11_000, episodes: int = 10) -> dict[str, Any]:  # fmt: skip
    """Search, then score the best settings on ``test_seeds``; writes a report and a zoo-style entry in ``out``."""
    spec = read_space(space)
    check_workers(workers, address)
    if trials < 1 or label_budget <= base.n_demo_steps or set(seeds) & set(test_seeds):
        raise UserError("--trials >= 1, --label-budget above --n-demo-steps, and --test-seeds apart from --seeds")
    with staged_dir(Path(out), discard_on=(UserError,)) as stage:
        stage = stage.resolve()
        write_yaml(stage / "config.yml", {"base": base.to_dict(), "space": spec, "trials": trials, "seeds": list(seeds),
                                          "test_seeds": list(test_seeds), "label_budget": label_budget})  # fmt: skip
        table = search(base, stage, trials, workers, address, spec, seeds, label_budget, episodes)
        best = max(table, key=lambda row: row["pct_expert"])
        best_config = settings({k: best[k] for k in spec}, base, label_budget)
        test = test_score(best_config, stage, test_seeds, workers, address)
        write_outputs(stage, base, spec, table, best, best_config, test)
    return {"best": best, "test": test}


def search(base: TrainConfig, out: Path, trials: int, workers: int, address: str | None, spec: dict[str, Any],
           seeds: Sequence[int], label_budget: int, episodes: int) -> list[dict[str, Any]]:  # fmt: skip
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    with ray_session(workers, address):
        one_core = dataclasses.replace(base, background_eval=False)
        trainable = tune.with_resources(
            tune.with_parameters(trial, base=one_core, label_budget=label_budget, seeds=list(seeds), out=out,
                                 episodes=episodes), {"cpu": 1})  # fmt: skip
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(spec),
            tune_config=tune.TuneConfig(metric="pct_expert", mode="max", num_samples=trials,
                                        search_alg=OptunaSearch(seed=base.seed), max_concurrent_trials=workers),
            run_config=tune.RunConfig(storage_path=str(out / "ray"), name="search", verbose=1),
        )  # fmt: skip
        grid = tuner.fit()
    table = []
    for result in grid:
        if result.error is None and result.metrics and "pct_expert" in result.metrics:
            table.append(
                {k: result.config[k] for k in spec}
                | {"pct_expert": result.metrics["pct_expert"], "pct_expert_min": result.metrics["pct_expert_min"]}
            )
    if not table:
        raise UserError("every tuning trial failed; see the errors above")
    return table


def test_score(config: TrainConfig, out: Path, seeds: Sequence[int], workers: int, address: str | None) -> dict:
    """The best settings on seeds the search never saw, by the usual evaluation."""
    parallel = dataclasses.replace(config, background_eval=workers == 1 and address is None)
    jobs = [Job(f"test-s{seed}", train_run, (dataclasses.replace(parallel, seed=seed), out / "test" / f"s{seed}",
                                             False)) for seed in seeds]  # fmt: skip
    results = run_jobs(jobs, workers, address)
    pcts = [r["pct_expert"] for r in results.values() if not isinstance(r, Failed)]
    return {"seeds": list(seeds), "pct_expert": pcts, "mean": float(np.mean(pcts)) if pcts else float("nan"),
            "std": float(np.std(pcts)) if pcts else float("nan"), "failed": len(seeds) - len(pcts)}  # fmt: skip


def write_outputs(out: Path, base: TrainConfig, spec: dict[str, Any], table: list[dict[str, Any]],
                  best: dict[str, Any], best_config: TrainConfig, test: dict[str, Any]) -> None:  # fmt: skip
    """trials.csv, the zoo-style ``dagger-tuned.yml`` entry and ``report.md``."""
    columns = [*spec, "pct_expert", "pct_expert_min"]
    ranked = sorted(table, key=lambda row: -row["pct_expert"])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns)
    writer.writeheader()
    writer.writerows(ranked)
    atomic_write(out / "trials.csv", lambda p: p.write_text(buf.getvalue()))
    defaults = TrainConfig(env_id=base.env_id).to_dict()
    entry = {k: v for k, v in best_config.to_dict().items() if v != defaults[k] and k not in ("seed", "env_id")}
    write_yaml(out / "dagger-tuned.yml", {base.env_id: entry})
    report = report_markdown(base, columns, ranked, entry, test)
    atomic_write(out / "report.md", lambda p: p.write_text(report))


def report_markdown(base: TrainConfig, columns: list[str], ranked: list[dict[str, Any]], entry: dict[str, Any],
                    test: dict[str, Any]) -> str:  # fmt: skip
    scores = ", ".join(f"{p:.1f}" for p in test["pct_expert"]) + (
        f"; {test['failed']} failed" if test["failed"] else ""
    )
    lines = [
        f"# `sb3-il tune`: DAgger on {base.env_id} from `{base.expert}`", "",
        "Tuning reads the env's reward (validation episodes score the trials); training does not.", "",
        f"{len(ranked)} trials, each scored by the mean % of expert over its seeds on validation episodes. Best:", "",
        "```yaml", yaml.safe_dump(entry, sort_keys=False).strip(), "```", "",
        f"On test seeds {test['seeds']}, never seen by the search, by the usual evaluation: "
        f"**{test['mean']:.1f} ± {test['std']:.1f}% of expert** ({scores}).", "",
        "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
    ]  # fmt: skip
    for row in ranked:
        cells = (f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "`dagger-tuned.yml` is a zoo-style entry: as `zoo_configs/dagger-NAME.yml` it is `--config NAME`."]
    return "\n".join(lines) + "\n"
