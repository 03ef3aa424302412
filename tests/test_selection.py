"""Which states DAgger labels (k-center) and which iterate it keeps (validation episodes)."""

import datasets
import numpy as np
import pytest
import torch as th
from conftest import train_run

from sb3_il.evaluation import VALIDATION_SEED, EpisodeRunner
from sb3_il.policy import ObsNormalizer, load_run_model, predict_fn
from sb3_il.selection import select_uncovered


def test_select_uncovered_picks_the_least_covered_states_where_the_learner_sees_them():
    labelled = th.zeros((1, 2))
    candidates = np.array([[0.1, 0], [5, 0], [5.1, 0], [10, 0], [0.2, 0]])
    # Farthest from the labelled state first (10), then farthest from it and that pick (5, not 5.1).
    assert list(select_uncovered(candidates, labelled, 2, None)) == [1, 3]
    # Distances are taken after normalization: a coordinate with a wide spread counts for less.
    normalizer = ObsNormalizer(np.zeros(2), np.array([1e4, 1.0]))
    two = np.array([[50.0, 0], [0, 2.0]])
    assert list(select_uncovered(two, labelled, 1, None)) == [0]
    assert list(select_uncovered(two, labelled, 1, normalizer)) == [1]
    assert list(select_uncovered(np.zeros((3, 2)), labelled, 3, None)) == [0, 1, 2]  # all, once each


def test_dagger_labels_only_the_selected_states(runs_dir):
    results = train_run(
        runs_dir, "--env", "Pendulum-v1", "--n-iters", "3", "--grad-steps", "1000", "--candidates-per-label", "4"
    )
    assert results["expert_labels"] == 1000 + 3 * 1000  # the budget is unchanged
    assert results["env_steps"] == 4 * 3 * 1000
    assert results["pct_expert"] >= 80, results  # seeds 0-9: 95.5% or more (reports/test-margins.md)


def test_select_by_return_keeps_the_best_iterate_on_validation_episodes(runs_dir):
    results = train_run(
        runs_dir, "--env", "Pendulum-v1", "--n-iters", "3", "--grad-steps", "300", "--select-last", "3",
        "--select-by", "return", "--select-episodes", "4",
    )  # fmt: skip
    scores = results["selection_scores"]
    assert results["select_by"] == "return" and len(scores) == 3
    assert results["selected_iteration"] == 1 + int(np.argmax(scores))
    assert results["expert_labels"] == 1000 + 3 * 1000  # the choice costs env steps, no labels
    assert results["env_steps"] == 3 * 1000 + 3 * 4 * 200  # 4 validation episodes of 200 steps per candidate
    # The saved policy is the chosen iterate: it repeats that iterate's validation return.
    runner = EpisodeRunner("Pendulum-v1", 4, VALIDATION_SEED)
    assert runner(predict_fn(*load_run_model(results["dir"])), 4).mean() == pytest.approx(max(scores), rel=1e-6)


def test_select_by_loss_is_reward_free_and_keeps_the_iterate_with_the_least_on_policy_loss(runs_dir):
    """Each iterate is scored on the states it visited, labelled by the expert: the next iteration's labels,
    and for the last iterate a collection of its own, counted in the label budget and kept in labels/."""
    results = train_run(
        runs_dir, "--env", "Pendulum-v1", "--n-iters", "3", "--grad-steps", "300", "--select-last", "3"
    )  # fmt: skip
    scores = results["selection_scores"]
    assert results["select_by"] == "loss" and len(scores) == 3 and min(scores) >= 0
    assert results["selected_iteration"] == 1 + int(np.argmin(scores))
    assert results["expert_labels"] == 1000 + 4 * 1000 and results["env_steps"] == 4 * 1000  # no episodes run
    labels = datasets.load_from_disk(str(results["dir"] / "labels"))
    assert sorted(set(labels["iteration"])) == [1, 2, 3, 4]
    # The saved policy is the chosen iterate: its loss on the states its iteration's successor labelled.
    rows = labels.filter(lambda row: row["iteration"] == results["selected_iteration"] + 1)
    policy = predict_fn(*load_run_model(results["dir"]))
    obs, acts = np.asarray(rows["obs"]), np.asarray(rows["acts"])
    assert np.square(policy(obs) - acts).mean() == pytest.approx(min(scores), rel=1e-4)
