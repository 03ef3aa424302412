"""End-to-end: scripts/train.py's main on real envs and real experts, and the PPO round trip of its output."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
import yaml
from conftest import FAST_EVAL, train_run
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch.nn import functional as F

from sb3_il import trainers
from sb3_il.cli import main
from sb3_il.envs import make_env
from sb3_il.evaluation import EpisodeRunner
from sb3_il.experts import load_expert
from sb3_il.policy import (
    ObsNormalizer,
    actor_layers,
    actor_output,
    actor_parameters,
    load_learner,
    make_learner,
    pack_ensemble,
    predict_fn,
)


@pytest.mark.parametrize(
    ("algo", "env_id", "extra", "min_pct"),
    [
        ("bc", "CartPole-v1", ["--n-demo-steps", "1000", "--grad-steps", "500"], 95),
        ("dagger", "CartPole-v1", ["--n-iters", "2", "--grad-steps", "300"], 95),
        ("dagger", "Pendulum-v1", ["--n-iters", "3", "--grad-steps", "1000"], 90),
    ],
)
# BC alone does not solve Pendulum (compounding errors; -440 vs the expert's -150 even with 10k demos),
# which is exactly what DAgger fixes; so BC is checked on CartPole only.
def test_small_envs_reach_near_expert(runs_dir, algo, env_id, extra, min_pct):
    results = train_run(runs_dir, "--algo", algo, "--env", env_id, *extra)
    assert results["pct_expert"] >= min_pct, results
    run = results["dir"]
    for name in ("policy.zip", "config.yml", "progress.csv", "learning_curve.png", "demos"):
        assert (run / name).exists(), name
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard events"
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["algo"] == algo and config["env_id"] == env_id and config["seed"] == 0
    n_iters = config["n_iters"]
    rows = (run / "progress.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + n_iters + 1  # header, BC fit, one row per DAgger iteration
    # Demos are whole episodes (saved as such), but only n_demo_steps of them count against the budget.
    assert results["expert_labels"] == config["n_demo_steps"] + n_iters * config["steps_per_iter"]


def test_eval_episodes_0_evaluates_only_the_final_policy(runs_dir):
    args = ["--env", "CartPole-v1", "--n-iters", "2", "--grad-steps", "300", "--runs-dir", str(runs_dir)]
    assert main([*args, *FAST_EVAL, "--eval-episodes", "0"]) == 0
    rows = (runs_dir / "dagger-CartPole-v1-s0" / "progress.csv").read_text().strip().splitlines()
    column = rows[0].split(",").index("eval/mean_return")
    returns = [row.split(",")[column] for row in rows[1:]]
    assert returns[:-1] == ["nan", "nan"] and float(returns[-1]) >= 475, returns


def test_dagger_hopper_reaches_90_percent_with_reduced_budget(runs_dir):
    results = train_run(runs_dir, "--algo", "dagger", "--env", "Hopper-v4", "--n-iters", "3", "--grad-steps", "500")
    assert results["expert"] == "sb3/trpo-Hopper-v3"
    assert results["expert_labels"] == 1000 + 3 * 1000
    assert results["pct_expert"] >= 90, results


def test_dagger_labels_only_the_selected_states(runs_dir):
    results = train_run(
        runs_dir, "--env", "Pendulum-v1", "--n-iters", "3", "--grad-steps", "1000", "--candidates-per-label", "4"
    )
    assert results["expert_labels"] == 1000 + 3 * 1000  # the budget is unchanged
    assert results["env_steps"] == 4 * 3 * 1000
    assert results["pct_expert"] >= 90, results


def test_select_last_keeps_the_best_iterate_on_validation_episodes(runs_dir):
    results = train_run(
        runs_dir, "--env", "Pendulum-v1", "--n-iters", "3", "--grad-steps", "300", "--select-last", "3",
        "--select-episodes", "4",
    )  # fmt: skip
    scores = results["validation_returns"]
    assert len(scores) == 3 and results["selected_iteration"] == 1 + int(np.argmax(scores))
    assert results["expert_labels"] == 1000 + 3 * 1000  # the choice costs env steps, no labels
    assert results["env_steps"] == 3 * 1000 + 3 * 4 * 200  # 4 validation episodes of 200 steps per candidate
    # The saved policy is the chosen iterate: it repeats that iterate's validation return.
    runner = EpisodeRunner("Pendulum-v1", 4, trainers.VALIDATION_SEED)
    assert runner(predict_fn(*load_learner(results["dir"])), 4).mean() == pytest.approx(max(scores), rel=1e-6)


def test_ensemble_is_one_ppo_policy_acting_with_the_members_mean(runs_dir):
    env = make_env("Hopper-v4")
    members = [make_learner(env, [64, 64], seed).policy for seed in range(3)]
    packed = make_learner(env, [192, 192], 9).policy
    pack_ensemble(packed, members)
    obs = th.randn(32, 11)
    mean = sum(actor_output(member, obs) for member in members) / 3
    th.testing.assert_close(actor_output(packed, obs), mean, rtol=0, atol=1e-6)

    results = train_run(runs_dir, "--env", "Pendulum-v1", "--n-iters", "3", "--grad-steps", "1000", "--ensemble", "2")
    assert results["pct_expert"] >= 90, results
    model = PPO.load(results["dir"] / "policy.zip")
    assert model.policy.mlp_extractor.policy_net[0].out_features == 128


def test_select_uncovered_picks_the_least_covered_states_where_the_learner_sees_them():
    labelled = th.zeros((1, 2))
    candidates = np.array([[0.1, 0], [5, 0], [5.1, 0], [10, 0], [0.2, 0]])
    # Farthest from the labelled state first (10), then farthest from it and that pick (5, not 5.1).
    assert list(trainers.select_uncovered(candidates, labelled, 2, None)) == [1, 3]
    # Distances are taken after normalization: a coordinate with a wide spread counts for less.
    normalizer = ObsNormalizer(np.zeros(2), np.array([1e4, 1.0]))
    two = np.array([[50.0, 0], [0, 2.0]])
    assert list(trainers.select_uncovered(two, labelled, 1, None)) == [0]
    assert list(trainers.select_uncovered(two, labelled, 1, normalizer)) == [1]
    assert list(trainers.select_uncovered(np.zeros((3, 2)), labelled, 3, None)) == [0, 1, 2]  # all, once each


def test_policy_round_trips_through_ppo_load(runs_dir):
    results = train_run(runs_dir, "--algo", "bc", "--env", "Pendulum-v1", "--grad-steps", "200")
    run = results["dir"]
    venv = VecNormalize.load(str(run / "vec_normalize.pkl"), DummyVecEnv([lambda: make_env("Pendulum-v1")]))
    model = PPO.load(run / "policy.zip", env=venv)  # no custom_objects, no sb3_il import needed
    raw = np.random.default_rng(0).uniform(-1, 1, size=(64, 3))  # float64, like MuJoCo observations
    actions, _ = model.predict(venv.normalize_obs(raw), deterministic=True)

    # The same policy, as the trainer evaluated it, gives exactly the same actions.
    from sb3_il.policy import Learner, ObsNormalizer

    learner = Learner(model.policy, ObsNormalizer(venv.obs_rms.mean, venv.obs_rms.var))
    np.testing.assert_array_equal(learner(raw), actions)
    # Reloading gives identical weights and actions, and RL continues.
    again = PPO.load(run / "policy.zip")
    np.testing.assert_array_equal(again.predict(venv.normalize_obs(raw), deterministic=True)[0], actions)
    model.learn(256)
    assert model.num_timesteps >= 256


def test_demos_are_reusable(runs_dir, tmp_path):
    first = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "100")
    second = train_run(
        tmp_path / "again",
        "--algo",
        "bc",
        "--env",
        "CartPole-v1",
        "--grad-steps",
        "100",
        "--demos",
        str(first["dir"] / "demos"),
    )
    assert second["expert_labels"] == first["expert_labels"]
    assert second["n_demo_episodes"] == first["n_demo_episodes"]


BAD_INPUTS = [
    (["--env", "NoSuchEnv-v0"], "unknown env"),
    (["--env", "Swimmer-v4"], "mujoco"),
    (["--env", "MountainCar-v0"], "no default expert"),
    (["--env", "CartPole-v1", "--expert", "sb3/ppo-Missing-v1"], "HF_HUB_CACHE"),
    (["--env", "CartPole-v1", "--expert", "sb3/sac-Pendulum-v1"], "pick an expert trained on CartPole-v1"),
    (["--env", "CartPole-v1", "--expert", "not-a-repo"], "Hub repo id"),
    (["--env", "CartPole-v1", "--grad-steps", "0"], "--grad-steps must be a positive"),
    (["--env", "CartPole-v1", "--steps-per-iter", "-5"], "--steps-per-iter must be a positive"),
    (["--env", "CartPole-v1", "--lr", "0"], "--lr must be > 0"),
    (["--env", "Pendulum-v1", "--jacobian-weight", "-1"], "--jacobian-weight must be 0"),
    (["--env", "CartPole-v1", "--eval-episodes", "-1"], "--eval-episodes must be 0"),
    (["--env", "CartPole-v1", "--beta-schedule", "linear:x"], "beta-schedule"),
    (["--env", "CartPole-v1", "--candidates-per-label", "0"], "--candidates-per-label must be a positive"),
    (["--env", "CartPole-v1", "--ensemble", "0"], "--ensemble must be a positive"),
    (["--env", "CartPole-v1", "--select-last", "-1"], "--select-last must be 0"),
    (["--env", "CartPole-v1", "--select-episodes", "0"], "--select-episodes must be a positive"),
    (["--env", "CartPole-v1", "--candidates-per-label", "4", "--beta-schedule", "linear:5"], "needs --beta-schedule 0"),
    (["--env", "CartPole-v1", "--demos", "/nonexistent/demos"], "cannot load demonstrations"),
    (["--env", "CartPole-v1", "--config", "nope"], "no config"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(runs_dir, capsys, args, message):
    assert main([*args, "--runs-dir", str(runs_dir), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not runs_dir.exists() or not list(runs_dir.iterdir()), "a failed run left a folder behind"


def test_corrupt_demos_exit_2(runs_dir, tmp_path, capsys):
    bad = tmp_path / "demos"
    bad.mkdir()
    (bad / "dataset_info.json").write_text("{not json")
    assert main(["--env", "CartPole-v1", "--demos", str(bad), "--runs-dir", str(runs_dir), "--quiet"]) == 2
    assert "cannot load demonstrations" in capsys.readouterr().err


def test_interrupted_run_leaves_no_results(runs_dir, monkeypatch):
    calls = {"n": 0}
    real_fit = trainers.fit

    def crash_on_second_fit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(trainers, "fit", crash_on_second_fit)
    with pytest.raises(KeyboardInterrupt):
        main(["--env", "CartPole-v1", "--n-iters", "2", "--grad-steps", "50", "--runs-dir", str(runs_dir), *FAST_EVAL])
    assert not (runs_dir / "dagger-CartPole-v1-s0").exists()
    partial = runs_dir / "dagger-CartPole-v1-s0.incomplete"
    assert (partial / "config.yml").exists() and not (partial / "results.json").exists()


def test_expert_is_one_callable_for_demos_and_relabeling(hub_cache):
    env = make_env("Ant-v4")
    expert = load_expert("sb3/trpo-Ant-v3", env)
    obs = np.stack([env.reset(seed=s)[0] for s in range(4)])
    assert expert(obs).shape == (4, 8)
    np.testing.assert_allclose(expert(obs)[1:2], expert(obs[1:2]), atol=1e-5)  # batch-size independent


def _bounded_mse(out: th.Tensor, target: th.Tensor, low: th.Tensor, high: th.Tensor) -> th.Tensor:
    past_bound = ((target >= high) & (out > high)) | ((target <= low) & (out < low))
    assert past_bound.any() and not past_bound.all()  # the case must exercise both branches
    return th.where(past_bound, 0.0, out - target).square().mean()


@pytest.mark.parametrize(
    ("env_id", "activation", "bounded"),
    [("Pendulum-v1", th.nn.ReLU, False), ("Pendulum-v1", th.nn.ReLU, True), ("CartPole-v1", th.nn.Tanh, False)],
)
def test_hand_written_backprop_matches_autograd(env_id, activation, bounded):
    env = make_env(env_id)
    policy = PPO("MlpPolicy", env, policy_kwargs=dict(activation_fn=activation), seed=0, device="cpu").policy
    obs = th.randn(50, *env.observation_space.shape)
    bounds = (th.tensor([-1e-3]), th.tensor([1e-3])) if bounded else None  # tight: the fresh outputs pass them
    if isinstance(env.action_space, gym.spaces.Discrete):
        target, loss_fn = th.randint(env.action_space.n, (50,)), F.cross_entropy
    elif bounded:
        target = th.randn(50, *env.action_space.shape).clamp(*bounds)  # many labels on a bound
        loss_fn = lambda out, y: _bounded_mse(out, y, *bounds)  # noqa: E731
    else:
        target, loss_fn = th.randn(50, *env.action_space.shape), F.mse_loss
    parameters = actor_parameters(policy)
    expected_loss = loss_fn(actor_output(policy, obs), target)
    expected = th.autograd.grad(expected_loss, parameters)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    loss = trainers.backprop(
        actor_layers(policy), obs, trainers.label_ranges(target, *bounds) if bounded else target, discrete
    )
    th.testing.assert_close(loss, expected_loss.detach())
    for param, grad in zip(parameters, expected, strict=True):
        th.testing.assert_close(param.grad, grad)


@pytest.mark.parametrize("bounded", [False, True])
def test_sobolev_backprop_matches_autograd_through_the_jacobian(bounded):
    env = make_env("Hopper-v4")
    policy = PPO("MlpPolicy", env, seed=0, device="cpu").policy  # tanh: curvature in the Jacobian loss
    bounds = (th.tensor([-1e-3]), th.tensor([1e-3]))  # tight: the fresh outputs pass them
    obs, target = th.randn(20, 11), th.randn(20, 3).clamp(*bounds)
    expert_jacobian = th.randn(20, 3, 11)

    def loss_fn() -> th.Tensor:
        out = actor_output(policy, obs)
        jacobian = th.func.vmap(th.func.jacrev(lambda o: actor_output(policy, o[None])[0]))(obs)
        action_loss = _bounded_mse(out, target, *bounds) if bounded else F.mse_loss(out, target)
        return action_loss + 0.3 * F.mse_loss(jacobian, expert_jacobian)

    parameters = actor_parameters(policy)
    expected_loss = loss_fn()
    expected = th.autograd.grad(expected_loss, parameters)
    ranges = trainers.label_ranges(target, *bounds) if bounded else target
    loss = trainers.sobolev_backprop(actor_layers(policy), obs, ranges, expert_jacobian, 0.3)
    th.testing.assert_close(loss, expected_loss.detach())
    for param, grad in zip(parameters, expected, strict=True):
        th.testing.assert_close(param.grad, grad)


def test_jacobian_weight_trains_pendulum_and_rejects_discrete_actions(runs_dir, capsys):
    results = train_run(
        runs_dir, "--env", "Pendulum-v1", "--n-iters", "2", "--grad-steps", "1000", "--jacobian-weight", "0.3"
    )
    assert results["pct_expert"] >= 90 and results["expert_labels"] == 1000 + 2 * 1000, results
    assert main(["--env", "CartPole-v1", "--jacobian-weight", "1", "--runs-dir", str(runs_dir), "--quiet"]) == 2
    assert "Box" in capsys.readouterr().err


def test_collection_continues_the_episode_an_iteration_cut_off():
    env = make_env("CartPole-v1")
    learner = trainers.Learner(make_learner(env, [64, 64], seed=0).policy)
    rng = np.random.default_rng(0)
    whole, _ = trainers.collect(env, env.reset(seed=3)[0], learner, learner, 300, 0.0, 0.0, rng)
    first, obs = trainers.collect(env, env.reset(seed=3)[0], learner, learner, 120, 0.0, 0.0, rng)
    second, _ = trainers.collect(env, obs, learner, learner, 180, 0.0, 0.0, rng)
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)  # resets in between included
