"""Smoke test of scripts/benchmark.py: a tiny grid on CartPole and Pendulum, with the imitation peer."""

import csv
import dataclasses

import matplotlib.image as mpimg
from conftest import sb3_il

from sb3_il.benchmark import COLUMNS, same_settings
from sb3_il.config import TrainConfig
from sb3_il.recipe import VERSION as RECIPE_VERSION
from sb3_il.runs import Run


def test_benchmark_smoke(hub_cache, tmp_path):
    out = tmp_path / "report"
    args = [
        "--envs",
        "CartPole-v1",
        "Pendulum-v1",
        "--seeds",
        "0",
        "--peer",
        "--out",
        str(out),
        "--n-iters",
        "1",
        "--grad-steps",
        "200",
        "--eval-episodes",
        "2",
        "--final-eval-episodes",
        "3",
    ]
    assert sb3_il("benchmark", *args) == 0

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert list(rows[0]) == COLUMNS
    assert len(rows) == 2 * 2 * 2  # envs x algos x (ours, imitation)
    assert {r["status"] for r in rows} == {"ok"}
    assert {(r["impl"], r["algo"]) for r in rows} == {(i, a) for i in ("sb3_il", "imitation") for a in ("bc", "dagger")}
    for row in rows:
        assert float(row["expert_labels"]) >= 1000 and float(row["train_wall_s"]) > 0

    summary = (out / "summary.md").read_text()
    assert "| CartPole-v1 | sb3/ppo-CartPole-v1 |" in summary and "speed-up" in summary
    for name in ("learning_curves.png", "final_bars.png"):
        image = mpimg.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300

    # A second invocation reuses every finished run instead of training again.
    finished = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/results.json")}
    assert len(finished) == len(rows)
    assert sb3_il("benchmark", *args) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/results.json")} == finished
    assert (out / "results.csv").read_text().count("\n") == len(rows) + 1


def test_a_cell_made_with_other_settings_is_trained_again(hub_cache, tmp_path):
    """Finished cells are reused only when they were trained as the grid now asks."""
    grid = ["benchmark", "--envs", "CartPole-v1", "--algos", "bc", "--seeds", "0", "--out", tmp_path / "grid",
            "--final-eval-episodes", "2"]  # fmt: skip
    assert sb3_il(*grid, "--grad-steps", "50") == 0
    results = next((tmp_path / "grid" / "runs").glob("*/results.json"))
    first = results.stat().st_mtime_ns
    assert sb3_il(*grid, "--grad-steps", "50") == 0 and results.stat().st_mtime_ns == first  # reused
    assert sb3_il(*grid, "--grad-steps", "60") == 0 and results.stat().st_mtime_ns != first  # trained again
    assert "grad_steps: 60" in (results.parent / "config.yml").read_text()


def test_labels_track_scores_each_budget(hub_cache, tmp_path):
    """Each budget is a cell of its own; a budget too small for one DAgger iteration has a BC cell only."""
    out = tmp_path / "labels"
    args = ["benchmark", "--track", "labels", "--envs", "CartPole-v1", "--seeds", "0", "--label-budgets", "500",
            "2000", "--out", out, "--grad-steps", "100", "--final-eval-episodes", "2"]  # fmt: skip
    assert sb3_il(*args) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted((r["algo"], r["label_budget"], r["expert_labels"]) for r in rows) == [
        ("bc", "2000", "2000"), ("bc", "500", "500"), ("dagger", "2000", "2000")]  # fmt: skip
    assert {p.name for p in (out / "runs").iterdir()} == {
        "bc-CartPole-v1-ppo-CartPole-v1-L500-s0", "bc-CartPole-v1-ppo-CartPole-v1-L2000-s0",
        "dagger-CartPole-v1-ppo-CartPole-v1-L2000-s0"}  # fmt: skip
    summary = (out / "summary.md").read_text()
    assert "| CartPole-v1 | sb3/ppo-CartPole-v1 | dagger | - | " in summary and "Labels needed" in summary
    image = mpimg.imread(out / "label_curve.png")
    assert image.ndim == 3 and image.shape[1] > 300


def test_a_cell_an_older_recipe_made_is_trained_again(tmp_path):
    """With ``adapt`` the resolved settings are the recipe's to choose, so only its version tells a stale cell."""
    requested = TrainConfig(env_id="Hopper-v4", adapt=True)
    resolved = dataclasses.replace(requested, adapt=False, net_arch=[256, 256])  # what a run records
    run = Run(tmp_path, "imitation", resolved, {"recipe": RECIPE_VERSION})
    assert same_settings(run, requested)
    assert not same_settings(dataclasses.replace(run, results={"recipe": RECIPE_VERSION - 1}), requested)
    assert not same_settings(dataclasses.replace(run, results={}), requested)  # made before versions
    assert same_settings(Run(tmp_path, "imitation", resolved, {}), resolved)  # settings given, not resolved
