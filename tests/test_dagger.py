"""End-to-end: ``sb3-il train`` on real envs and real Hub experts, its run folder, and its one-line errors."""

import numpy as np
import pytest
import yaml
from conftest import FAST_EVAL, sb3_il, train_run

from sb3_il import dagger
from sb3_il.envs import make_env
from sb3_il.experts import load_expert
from sb3_il.policy import Learner, make_learner
from sb3_il.recipe import SOBOLEV_ROWS, SOBOLEV_WEIGHT


@pytest.mark.parametrize(
    ("algo", "env_id", "extra", "min_pct"),
    [
        ("bc", "CartPole-v1", ["--n-demo-steps", "1000", "--grad-steps", "500"], 95),
        ("dagger", "CartPole-v1", ["--n-iters", "2", "--grad-steps", "300"], 95),
        ("dagger", "Pendulum-v1", ["--n-iters", "3", "--grad-steps", "1000"], 25),
    ],
)
# Thresholds sit well below the lowest of seeds 0-9 (reports/test-margins.md): one seed's number moves with the
# CPU's float rounding. Pendulum at this budget fails a swing-up now and then; a random policy scores ~-700%.
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
    assert rows[0].startswith("iteration,eval/mean_return,eval/std_return,eval/pct_expert,data/expert_labels")
    # Demos are whole episodes (saved as such), but only n_demo_steps of them count against the budget.
    assert results["expert_labels"] == config["n_demo_steps"] + n_iters * config["steps_per_iter"]


def test_eval_episodes_0_evaluates_only_the_final_policy(runs_dir):
    args = ["--env", "CartPole-v1", "--n-iters", "2", "--grad-steps", "300", "--runs-dir", runs_dir]
    assert sb3_il("train", *args, *FAST_EVAL, "--eval-episodes", "0") == 0
    rows = (runs_dir / "dagger-CartPole-v1-s0" / "progress.csv").read_text().strip().splitlines()
    column = rows[0].split(",").index("eval/mean_return")
    returns = [row.split(",")[column] for row in rows[1:]]
    assert returns[:-1] == ["nan", "nan"] and float(returns[-1]) >= 475, returns


def test_dagger_hopper_hops_with_a_reduced_budget(runs_dir):
    """Seeds 0-9 end at 68.7-99.7% of the expert (reports/test-margins.md); a Hopper that falls at once scores
    under 10%. The old >= 90 on seed 0 failed on another CPU (57.8%)."""
    results = train_run(runs_dir, "--algo", "dagger", "--env", "Hopper-v4", "--n-iters", "3", "--grad-steps", "500")
    assert results["expert"] == "sb3/trpo-Hopper-v3"
    assert results["expert_labels"] == 1000 + 3 * 1000
    assert results["pct_expert"] >= 45, results


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
    assert sb3_il("train", *args, "--runs-dir", runs_dir, "--quiet") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not runs_dir.exists() or not list(runs_dir.iterdir()), "a failed run left a folder behind"


def test_corrupt_demos_exit_2(runs_dir, tmp_path, capsys):
    bad = tmp_path / "demos"
    bad.mkdir()
    (bad / "dataset_info.json").write_text("{not json")
    assert sb3_il("train", "--env", "CartPole-v1", "--demos", bad, "--runs-dir", runs_dir, "--quiet") == 2
    assert "cannot load demonstrations" in capsys.readouterr().err


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_or_crashed_run_publishes_nothing(runs_dir, monkeypatch, capsys, error):
    """Ctrl-C: one line, exit 130, nothing left. A crash: no run folder; the partial one kept for inspection."""
    calls = {"n": 0}
    real_fit = dagger.fit

    def crash_on_second_fit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise error
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(dagger, "fit", crash_on_second_fit)
    args = ["train", "--env", "CartPole-v1", "--n-iters", "2", "--grad-steps", "50", "--runs-dir", runs_dir]
    if error is KeyboardInterrupt:
        assert sb3_il(*args, *FAST_EVAL) == 130
        assert capsys.readouterr().err.strip() == "interrupted; nothing was written"
        assert sorted(runs_dir.iterdir()) == []
        return
    with pytest.raises(RuntimeError):
        sb3_il(*args, *FAST_EVAL)
    assert not (runs_dir / "dagger-CartPole-v1-s0").exists()
    partial = runs_dir / "dagger-CartPole-v1-s0.incomplete"
    assert (partial / "config.yml").exists() and not (partial / "results.json").exists()


def test_expert_is_one_callable_for_demos_and_relabeling(hub_cache):
    env = make_env("Ant-v4")
    expert = load_expert("sb3/trpo-Ant-v3", env)
    obs = np.stack([env.reset(seed=s)[0] for s in range(4)])
    assert expert(obs).shape == (4, 8)
    np.testing.assert_allclose(expert(obs)[1:2], expert(obs[1:2]), atol=1e-5)  # batch-size independent


def test_jacobian_weight_trains_pendulum_and_rejects_discrete_actions(runs_dir, capsys):
    results = train_run(
        runs_dir, "--env", "Pendulum-v1", "--n-iters", "2", "--grad-steps", "1000", "--jacobian-weight", "0.3"
    )
    # Seeds 0-9 range from -120% to 101% at this budget (reports/test-margins.md): far above random, not reliable.
    assert results["pct_expert"] >= -400 and results["expert_labels"] == 1000 + 2 * 1000, results
    assert sb3_il("train", "--env", "CartPole-v1", "--jacobian-weight", "1", "--runs-dir", runs_dir, "--quiet") == 2
    assert "Box" in capsys.readouterr().err


def test_collection_continues_the_episode_an_iteration_cut_off():
    env = make_env("CartPole-v1")
    learner = Learner(make_learner(env, [64, 64], seed=0).policy)
    rng = np.random.default_rng(0)
    whole = dagger.collect(env, dagger.Cursor(env.reset(seed=3)[0]), learner, learner, 300, 0.0, 0.0, rng)
    cursor = dagger.Cursor(env.reset(seed=3)[0])
    first = dagger.collect(env, cursor, learner, learner, 120, 0.0, 0.0, rng)
    second = dagger.collect(env, cursor, learner, learner, 180, 0.0, 0.0, rng)
    for name in ("obs", "episode", "step"):  # resets in between included
        np.testing.assert_array_equal(np.concatenate([getattr(first, name), getattr(second, name)]),
                                      getattr(whole, name))  # fmt: skip
    assert (
        whole.episode[-1] > 0 and whole.step[0] == 0 and (np.diff(whole.step)[np.diff(whole.episode) == 0] == 1).all()
    )


def test_the_strong_recipe_adapts_to_what_it_observes_and_replays(runs_dir, tmp_path):
    """A 256-wide SAC expert gets a 256-wide learner at a smaller lr and one actor; the resolved settings are in
    config.yml, so replaying it gives the same run."""
    args = ["--env", "Pendulum-v1", "--config", "strong", "--n-iters", "2", "--steps-per-iter", "500",
            "--grad-steps", "200"]  # fmt: skip
    results = train_run(runs_dir, *args)
    config = yaml.safe_load((results["dir"] / "config.yml").read_text())
    assert config["adapt"] is False and config["net_arch"] == [64, 64]  # sb3/sac-Pendulum-v1's actor is 64 wide
    assert (config["ensemble"], config["lr"]) == (3, 5e-3) and results["select_by"] == "loss"
    assert (config["jacobian_weight"], config["jacobian_rows"]) == (SOBOLEV_WEIGHT, SOBOLEV_ROWS)  # SAC squashes
    replay = train_run(tmp_path / "replay", "--config-file", results["dir"] / "config.yml")
    assert [p["mean_return"] for p in replay["curve"]] == [p["mean_return"] for p in results["curve"]]
