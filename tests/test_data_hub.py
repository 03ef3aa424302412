"""Demonstrations as data: every label kept with provenance, shared as a Hub dataset or Minari, trained from."""

import json
import shutil

import datasets
import minari
import numpy as np
import pytest
import yaml
from conftest import sb3_il, train_run
from huggingface_hub import constants
from imitation.data import huggingface_utils
from imitation.data.types import TrajectoryWithRew

from sb3_il.demos import load_demos
from sb3_il.hub import as_hub_cache

DAGGER = ["--env", "CartPole-v1", "--n-iters", "2", "--grad-steps", "200"]


def curve(results: dict) -> list:
    return [(point["mean_return"], point["loss"]) for point in results["curve"]]


@pytest.fixture
def dagger_run(runs_dir):
    return train_run(runs_dir, *DAGGER)


def test_a_run_keeps_every_label_with_provenance(dagger_run):
    run = dagger_run["dir"]
    labels = datasets.load_from_disk(str(run / "labels"))
    assert len(labels) == 2 * 1000 and set(labels.column_names) == {
        "obs",
        "acts",
        "iteration",
        "beta",
        "episode",
        "step",
    }
    assert sorted(set(labels["iteration"])) == [1, 2] and set(labels["beta"]) == {0.0}
    provenance = json.loads((run / "labels" / "provenance.json").read_text())
    assert provenance["expert"] == "sb3/ppo-CartPole-v1" and len(provenance["expert_revision"]) == 40
    assert provenance["expert_return"] == dagger_run["expert_return_mean"] and provenance["n_labels"] == 2000
    assert json.loads((run / "demos" / "provenance.json").read_text()) == provenance


def test_bc_from_a_pushed_hub_dataset_equals_bc_from_the_runs_demos(dagger_run, tmp_path, monkeypatch, hub_cache):
    package = tmp_path / "package"
    assert (
        sb3_il("push-demos", "--run", dagger_run["dir"], "--repo-id", "me/cartpole-labels", "--dry-run", package) == 0
    )
    card = (package / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert {"imitation-learning", "sb3", "CartPole-v1"} <= set(meta["tags"]) and meta["license"] == "mit"
    assert meta["task_categories"] == ["reinforcement-learning"] and len(meta["configs"]) == 2
    assert "hf://datasets/me/cartpole-labels" in card and 'load_dataset("me/cartpole-labels", "demos"' in card
    assert datasets.Dataset.from_parquet(str(package / "labels" / "train-00000-of-00001.parquet")).num_rows == 2000

    cache = tmp_path / "cache"  # the experts' cache, plus the dataset as the Hub client would have cached it
    shutil.copytree(hub_cache, cache, symlinks=True)
    as_hub_cache(package, "me/cartpole-labels", cache, repo_type="dataset")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    bc = ["--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "200"]
    from_hub = train_run(tmp_path / "hub", *bc, "--demos", "hf://datasets/me/cartpole-labels")
    from_run = train_run(tmp_path / "own", *bc, "--demos", dagger_run["dir"] / "demos")
    assert curve(from_hub) == curve(from_run) and from_hub["demos_source"] == "hf://datasets/me/cartpole-labels"
    every = train_run(tmp_path / "all", *bc, "--demos", "hf://datasets/me/cartpole-labels", "--n-demo-steps", "11000")
    assert every["expert_labels"] == 1000 + 2000  # all it holds, and config.yml says so
    assert yaml.safe_load((every["dir"] / "config.yml").read_text())["n_demo_steps"] == 3000


def test_minari_export_reads_back_and_trains_the_same(dagger_run, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert sb3_il("export-minari", "--run", dagger_run["dir"], "--dataset-id", "sb3-il/cartpole-expert-v0") == 0
    dataset = minari.load_dataset("sb3-il/cartpole-expert-v0")
    assert dataset.total_episodes == dagger_run["n_demo_episodes"]
    assert dataset.storage.metadata["ref_max_score"] == dagger_run["expert_return_mean"]
    assert "sb3/ppo-CartPole-v1" in dataset.storage.metadata["algorithm_name"]
    assert dataset.recover_environment(eval_env=True).spec.id == "CartPole-v1"
    assert sb3_il("export-minari", "--run", dagger_run["dir"], "--dataset-id", "sb3-il/cartpole-expert-v0") == 2
    bc = ["--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "200"]
    from_minari = train_run(tmp_path / "m", *bc, "--demos", "minari:sb3-il/cartpole-expert-v0")
    from_run = train_run(tmp_path / "own", *bc, "--demos", dagger_run["dir"] / "demos")
    assert curve(from_minari) == curve(from_run)


def test_imitations_published_trajectory_schema_loads(tmp_path, hub_cache):
    rng = np.random.default_rng(0)
    trajectories = [
        TrajectoryWithRew(obs=rng.normal(size=(n + 1, 4)).astype(np.float32), acts=rng.integers(2, size=n),
                          infos=None, terminal=True, rews=np.ones(n, dtype=np.float32))
        for n in (30, 50)
    ]  # fmt: skip
    (tmp_path / "data").mkdir()
    huggingface_utils.trajectories_to_dataset(trajectories).to_parquet(str(tmp_path / "data" / "train-0.parquet"))
    demos = load_demos(tmp_path)
    assert [len(t) for t in demos.trajectories] == [30, 50] and demos.label_obs is None
    np.testing.assert_array_equal(demos.trajectories[1].obs, trajectories[1].obs)
    np.testing.assert_array_equal(demos.transitions()[1], np.concatenate([t.acts for t in trajectories]))


def test_a_pushed_policy_names_its_dataset(runs_dir, tmp_path):
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "50")["dir"]
    push = ["push", "--run", run, "--repo-id", "me/bc-CartPole-v1", "--video-steps", "0", "--dry-run", tmp_path / "p"]
    assert sb3_il(*push, "--dataset", "me/cartpole-labels") == 0
    meta = yaml.safe_load((tmp_path / "p" / "README.md").read_text().split("---")[1])
    assert meta["datasets"] == ["me/cartpole-labels"]
