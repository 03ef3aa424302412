"""Scale-out on Ray: a 2-node cluster on 127.0.0.1 (never another address) runs a grid and a tuning search."""

import csv
import os

import pytest
import yaml
from conftest import sb3_il

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is imported: loopback only
ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

GRID = ["--envs", "CartPole-v1", "Pendulum-v1", "--algos", "dagger", "--seeds", "0", "1", "--n-iters", "1",
        "--grad-steps", "200", "--eval-episodes", "2", "--final-eval-episodes", "3"]  # fmt: skip
NUMBERS = ["env", "algo", "seed", "status", "final_return_mean", "pct_expert", "expert_labels", "env_steps"]


@pytest.fixture
def cluster():
    """A head and a worker node, one CPU each, both on 127.0.0.1 (a fresh one per test: a cluster that served
    earlier drivers cancelled Tune's actors)."""
    local = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=local)
    cluster.add_node(**{k: v for k, v in local.items() if k != "include_dashboard"})
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def numbers(path) -> list[list[str]]:
    return [[row[k] for k in NUMBERS] for row in csv.DictReader(path.open())]


def test_a_grid_on_a_local_cluster_equals_the_sequential_grid(hub_cache, tmp_path, cluster):
    assert sb3_il("benchmark", *GRID, "--out", tmp_path / "seq") == 0
    assert sb3_il("benchmark", *GRID, "--out", tmp_path / "ray", "--ray-address", cluster.address) == 0
    assert numbers(tmp_path / "ray" / "results.csv") == numbers(tmp_path / "seq" / "results.csv")
    assert {row[3] for row in numbers(tmp_path / "ray" / "results.csv")} == {"ok"}
    ray.init(address=cluster.address)
    try:
        nodes = [node for node in ray.nodes() if node["Alive"]]
        assert len(nodes) == 2 and {node["NodeManagerAddress"] for node in nodes} == {"127.0.0.1"}
    finally:
        ray.shutdown()


def test_embedded_workers_report_a_failing_cell_and_finish_the_rest(hub_cache, tmp_path, capsys):
    """--workers 2 starts its own Ray. The CartPole expert cannot act in Pendulum: those cells fail (after a retry)
    at run time, are reported as failed, and the CartPole cells finish."""
    out = tmp_path / "w2"
    assert sb3_il("benchmark", *GRID, "--out", out, "--workers", "2", "--expert", "sb3/ppo-CartPole-v1") == 1
    assert "[4/4]" in capsys.readouterr().out
    rows = {(row[0], row[2]): row[3] for row in numbers(out / "results.csv")}
    assert rows[("CartPole-v1", "0")] == rows[("CartPole-v1", "1")] == "ok"
    assert rows[("Pendulum-v1", "0")].startswith("failed: UserError: expert sb3/ppo-CartPole-v1 acts in Discrete(2)")
    assert (out / "summary.md").exists()


def test_tune_finds_and_tests_a_configuration(hub_cache, tmp_path, cluster):
    space = tmp_path / "space.yml"
    space.write_text(yaml.safe_dump({"lr": {"loguniform": [1e-3, 1e-2]}, "grad_steps": {"choice": [100, 200]}}))
    args = [
        "tune",
        "--env",
        "CartPole-v1",
        "--trials",
        "3",
        "--space",
        space,
        "--seeds",
        "0",
        "--test-seeds",
        "5",
        "--label-budget",
        "2000",
        "--val-episodes",
        "3",
        "--out",
        tmp_path / "tune",
        "--ray-address",
        cluster.address,
    ]
    assert sb3_il(*args) == 0
    report = (tmp_path / "tune" / "report.md").read_text()
    assert "Tuning reads the env's reward" in report and "On test seeds [5]" in report
    assert len(list(csv.DictReader((tmp_path / "tune" / "trials.csv").open()))) == 3
    entry = yaml.safe_load((tmp_path / "tune" / "dagger-tuned.yml").read_text())["CartPole-v1"]
    assert entry["expert"] == "sb3/ppo-CartPole-v1" and "lr" in entry
