"""RL fine-tuning keeps an imitation policy's return and writes a PPO-loadable policy."""

import copy
import csv
import json
import re
from collections import deque

import matplotlib.image as mpimg
import pytest
import torch as th
import yaml
from conftest import sb3_il, train_run
from stable_baselines3 import PPO

from sb3_il.anchored_ppo import (
    FRAGILE_LOG_STD,
    FRAGILE_TARGET_KL,
    LOG_STD_CANDIDATES,
    AnchoredPPO,
    anchor_strength,
    calibrate_log_std,
    exploration_log_std,
    kl_limit,
)
from sb3_il.config import EnvSpec, FinetuneConfig, ppo_hyperparams
from sb3_il.envs import make_env
from sb3_il.errors import UserError
from sb3_il.evaluation import percent_of_expert
from sb3_il.finetune import Source, finetune, load_source
from sb3_il.finetune_benchmark import COLUMNS, EXPERT, Start, run_finetune_benchmark, table_row


def finetune_main(args: list) -> int:
    return sb3_il("finetune", *args)


def test_prepared_finetuning_keeps_pendulum_dagger_policy(runs_dir, tmp_path):
    run = train_run(runs_dir, "--algo", "dagger", "--env", "Pendulum-v1", "--n-iters", "3")["dir"]
    out = tmp_path / "ft"
    args = [
        "--run",
        str(run),
        "--timesteps",
        "4096",
        "--eval-every",
        "2048",
        "--eval-episodes",
        "5",
        "--vf-warmup-rollouts",
        "2",
        "--compare",
        "scratch",
        "--out",
        str(out),
    ]
    assert finetune_main(args) == 0

    results = json.loads((out / "results.json").read_text())
    start = results["start_return"]
    # Pendulum returns are negative: "within tolerance" = no more than 25% worse than the start, at any eval.
    assert results["min_return"] >= start - 0.25 * abs(start), results["curve"]
    assert len(results["curve"]) >= 3
    assert results["target_kl"] == kl_limit(None, results["init_log_std"])  # the fragility defaults reach PPO
    assert results["anchor_coef"] == anchor_strength(None, results["init_log_std"])
    assert results["init_log_std"] > FRAGILE_LOG_STD or results["init_log_std"] == LOG_STD_CANDIDATES[-1]
    # The calibration measured the noise's cost against the expert's return that train.py recorded.
    assert results["expert_return"] == json.loads((run / "results.json").read_text())["expert_return_mean"]
    assert finetune_main(["--run", str(run), "--out", str(run)]) == 2  # never over the run it starts from
    for name in ("policy.zip", "vec_normalize.pkl", "progress.csv", "config.yml", "finetune_curve.png"):
        assert (out / name).exists(), name
    assert list((out / "checkpoints").glob("*.zip"))
    assert (out / "reference-scratch" / "results.json").exists()
    assert mpimg.imread(out / "finetune_curve.png").ndim == 3
    model = PPO.load(out / "policy.zip")
    assert model.num_timesteps >= 4096

    # A fragile start (given, not calibrated, to keep this short) gets the harder pull and the KL limit.
    fragile = tmp_path / "fragile"
    short = [
        "--timesteps",
        "1024",
        "--eval-every",
        "1024",
        "--eval-episodes",
        "1",
        "--vf-warmup-rollouts",
        "1",
    ]
    assert finetune_main(["--run", str(run), *short, "--init-log-std", "-3.0", "--out", str(fragile)]) == 0
    fragile_results = json.loads((fragile / "results.json").read_text())
    assert (fragile_results["anchor_coef"], fragile_results["target_kl"]) == (3.0, FRAGILE_TARGET_KL)
    assert PPO.load(fragile / "policy.zip").target_kl == FRAGILE_TARGET_KL

    # The env's cap (zoo_configs/ppo.yml) bounds the calibration: below what this start tolerates, it binds.
    fast = dict(timesteps=1024, eval_every=1024, eval_episodes=1, vf_warmup_rollouts=1)
    capped = finetune(
        load_source(str(run)), FinetuneConfig("Pendulum-v1", ppo={"max_log_std": -2.0}, **fast), tmp_path / "capped"
    )
    assert capped["init_log_std"] <= -2.0 < results["init_log_std"] <= ppo_hyperparams("Pendulum-v1")["max_log_std"]


@pytest.mark.parametrize(("recent", "replaced"), [([-100.0, -150.0], True), ([-100.0, -400.0], False)])
def test_anchor_ratchets_only_to_a_better_policy(recent, replaced):
    model = AnchoredPPO("MlpPolicy", make_env("Pendulum-v1"), n_steps=64, batch_size=64, n_epochs=1, seed=0)
    first = model.anchor = copy.deepcopy(model.policy)
    model.anchor_return, model.anchor_coef, model.anchor_until, model.ratchet_episodes = -200.0, 1.0, 10**6, 2
    model.ep_info_buffer = deque([{"r": r, "l": 200, "t": 0.0} for r in recent], maxlen=100)
    model.ep_success_buffer = deque(maxlen=100)
    model.learn(64, reset_num_timesteps=False)  # one rollout, one update: the anchor is judged before it
    assert (model.anchor is not first) == replaced
    assert model.anchor_return == (-125.0 if replaced else -200.0)


def test_log_std_calibration_takes_the_largest_tolerated_std():
    model = PPO("MlpPolicy", make_env("Pendulum-v1"), seed=0, device="cpu")
    # Pendulum returns are negative: keep=0 tolerates losing 100% (any std passes, the largest is taken);
    # keep=2 asks for a return above 0, which no std gives: every candidate is tried, the smallest kept.
    assert calibrate_log_std(model, None, "Pendulum-v1", seed=0, keep=0.0) == (LOG_STD_CANDIDATES[0], 2 * 5 * 200)
    # Measured against an expert's return: against a huge one any loss is small (the largest std passes);
    # asking to gain 100% of it is impossible (the smallest is kept).
    assert calibrate_log_std(model, None, "Pendulum-v1", seed=0, scale=1e9)[0] == LOG_STD_CANDIDATES[0]
    rng = th.random.get_rng_state()
    assert calibrate_log_std(model, None, "Pendulum-v1", seed=0, keep=2.0, scale=1e9)[0] == LOG_STD_CANDIDATES[-1]
    assert th.equal(th.random.get_rng_state(), rng)  # its samples leave fine-tuning's random stream alone
    log_std, steps = calibrate_log_std(model, None, "Pendulum-v1", seed=0, keep=2.0)
    assert (log_std, steps) == (LOG_STD_CANDIDATES[-1], (1 + len(LOG_STD_CANDIDATES)) * 5 * 200)
    assert model.policy.log_std.detach().eq(log_std).all()


def test_a_cap_below_every_candidate_is_a_user_error(tmp_path):
    config = FinetuneConfig(env_id="Pendulum-v1", ppo={"max_log_std": LOG_STD_CANDIDATES[-1] - 1})
    with pytest.raises(UserError, match="max_log_std"):
        finetune(Source("unused", tmp_path, None), config, tmp_path / "out")


@pytest.mark.parametrize(
    ("source", "env", "message"),
    [
        ("{tmp}", "Pendulum-v1", "not a finished sb3-il run .no policy.zip"),
        ("{tmp}", None, "not a finished sb3-il run .no policy.zip"),
        ("{tmp}/typo", None, "neither a run folder nor a Hub repo id"),
        ("{tmp}/typo", "Pendulum-v1", "neither a run folder nor a Hub repo id"),
        ("sb3/tqc-Hopper-v3", "Hopper-v4", "holds a TQC model"),
        ("sb3/ppo-CartPole-v1", None, "is a Hub repo; pass --env"),
        (
            "sb3/ppo-CartPole-v1",
            "Pendulum-v1",
            r"observations of shape \(4,\) and actions in Discrete\(2\), not Pendulum",
        ),
        ("sb3/ppo-CartPole-v1", "Nope-v0", "unknown env 'Nope-v0'"),
        ("{tmp}/corrupt", "CartPole-v1", "policy.zip is not a valid SB3 model zip .*re-run what wrote it"),
        ("{tmp}/badconfig", None, "cannot read .*config.yml"),
        ("{tmp}/unfinished", None, "no results.json"),
    ],
)
def test_finetune_bad_source_exits_2(hub_cache, tmp_path, capsys, source, env, message):
    for name in ("corrupt", "badconfig", "unfinished"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "policy.zip").write_bytes(b"PK\x03\x04 truncated")
        (tmp_path / name / "config.yml").write_text("algo: bc\nenv_id: CartPole-v1\nexpert: sb3/ppo-CartPole-v1\n")
    (tmp_path / "corrupt" / "results.json").write_text(
        '{"mean_return": 1, "std_return": 0, "eval_episodes": 1, '
        '"expert_return_mean": 1, "pct_expert": 100, "expert_labels": 1}'
    )
    (tmp_path / "badconfig" / "config.yml").write_text("env_id: [\n")
    args = ["--run", source.format(tmp=tmp_path), "--out", str(tmp_path / "o")] + (["--env", env] if env else [])
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("repo_id", "env_id"), [("sb3/ppo-HalfCheetah-v3", "HalfCheetah-v4"), ("sb3/ppo-CartPole-v1", "CartPole-v1")]
)
def test_a_hub_ppo_zip_saved_under_old_gym_fine_tunes(hub_cache, tmp_path, repo_id, env_id):
    """The Zoo's zips and vec_normalize.pkl pickle old gym classes; fine-tuning loads them like experts."""
    config = FinetuneConfig(
        env_id, timesteps=512, eval_every=512, eval_episodes=2, vf_warmup_rollouts=1, init_log_std=-3.0
    )
    results = finetune(load_source(repo_id), config, tmp_path / "out")
    assert results["final_return"] >= 0.9 * results["start_return"] > 0
    model = PPO.load(tmp_path / "out" / "policy.zip")
    assert model.num_timesteps >= 512 and model.verbose == 0


def test_a_hub_ppo_fine_tunes_under_the_wrappers_its_repo_records(hub_cache, tmp_path):
    """sb3/ppo-Walker2d-v3 acts on Walker2d's 17 observations plus a TimeFeatureWrapper's time entry."""
    out = tmp_path / "walker"
    args = ["--run", "sb3/ppo-Walker2d-v3", "--env", "Walker2d-v4", "--mode", "naive", "--timesteps", "64",
            "--eval-episodes", "1", "--quiet", "--out", str(out)]  # fmt: skip
    assert finetune_main(args) == 0
    config = yaml.safe_load((out / "config.yml").read_text())
    assert config["env_wrapper"] == ["sb3_contrib.common.wrappers.TimeFeatureWrapper"]
    assert PPO.load(out / "policy.zip").observation_space.shape == (18,)


def test_a_run_folder_source_carries_its_expert_return(runs_dir):
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "100")
    source = load_source(str(run["dir"]))
    assert source.expert_return == run["expert_return_mean"] and source.env == EnvSpec("CartPole-v1")


def test_log_std_ceiling_falls_linearly_over_the_budget():
    model = AnchoredPPO("MlpPolicy", make_env("Pendulum-v1"), n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.log_std_ceiling = (-1.0, -3.0, 256)  # halfway (128 steps): a ceiling of -2
    model.learn(128)
    assert model.policy.log_std.detach().le(-2.0).all()
    model.learn(256, reset_num_timesteps=False)  # past the end: the final value holds
    assert model.policy.log_std.detach().le(-3.0).all()


@pytest.mark.parametrize(
    ("coef", "kl", "log_std", "expected"),
    [
        (None, None, -3.0, (3.0, FRAGILE_TARGET_KL)),
        (None, None, -1.0, (1.0, None)),
        (None, None, None, (1.0, None)),  # a categorical policy has no log-std
        (0.5, 0.0, -3.0, (0.5, None)),  # explicit values win; a limit of 0 is none
        (None, 0.02, -1.0, (1.0, 0.02)),
    ],
)
def test_a_fragile_start_is_held_harder(coef, kl, log_std, expected):
    assert (anchor_strength(coef, log_std), kl_limit(kl, log_std)) == expected


def test_a_fragile_start_explores_at_the_smallest_std():
    assert [exploration_log_std(x) for x in LOG_STD_CANDIDATES] == [0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -3.0]


def test_finetune_track_tabulates_starts_modes_and_seeds(hub_cache, tmp_path):
    """Each (start, mode, seed) is a fine-tuning folder of one shared start; a second call reuses them all."""
    start = Start("dagger", "Pendulum-v1", "sb3/sac-Pendulum-v1", 2048,
                  train={"n_iters": 1, "grad_steps": 200, "eval_episodes": 2, "final_eval_episodes": 3})  # fmt: skip
    tiny = {"eval_every": 1024, "eval_episodes": 2, "vf_warmup_rollouts": 1}
    out = tmp_path / "ft-track"
    rows = run_finetune_benchmark(out, {"pendulum": start}, ["prepared", "naive"], [0, 1], overrides=tiny)
    assert [(r["mode"], r["seed"], r["status"]) for r in rows] == [
        ("prepared", 0, "ok"), ("prepared", 1, "ok"), ("naive", 0, "ok"), ("naive", 1, "ok")]  # fmt: skip
    cells = sorted((out / "runs").glob("finetune-*/results.json"))
    assert len(cells) == 4 and {json.loads(c.read_text())["start_return"] for c in cells[:2]} == {
        rows[0]["start_return"]
    }  # every PPO seed starts from the same policy, scored on the same episodes
    for row in rows:
        results = json.loads((out / "runs" / row["run"] / "results.json").read_text())
        curve = [p["mean_return"] for p in results["curve"]]
        assert {row["pct_start_lowest"], row["pct_start_final"]} <= {percent_of_expert(r, curve[0]) for r in curve}
        assert row["pct_expert_final"] == percent_of_expert(curve[-1], results["expert_return"])
        assert row["timesteps"] >= 2048 and row["pct_start_200k"] is None  # past the budget: no milestone
    with (out / "results.csv").open() as f:
        assert next(csv.reader(f)) == COLUMNS
    assert "| pendulum | naive |" in (out / "summary.md").read_text()
    assert mpimg.imread(out / "finetune_curves.png").ndim == 3
    before = {c: c.stat().st_mtime_ns for c in cells}
    run_finetune_benchmark(out, {"pendulum": start}, ["prepared", "naive"], [0, 1], overrides=tiny)
    assert {c: c.stat().st_mtime_ns for c in cells} == before
    # a report of finished cells only: a seed never run, and settings no cell ran with, run nothing
    rows = run_finetune_benchmark(out, {"pendulum": start}, ["naive"], [1, 2], overrides=tiny, report_only=True)
    assert [r["status"] for r in rows] == ["ok", "not run"]
    assert not (out / "runs" / "finetune-pendulum-naive-s2").exists()
    assert "| pendulum | naive | " in (out / "summary.md").read_text()
    assert "(1 not run)" in (out / "summary.md").read_text()
    other = tiny | {"eval_every": 512}
    rows = run_finetune_benchmark(out, {"pendulum": start}, ["naive"], [0], overrides=other, report_only=True)
    assert [r["status"] for r in rows] == ["not run"] and {c: c.stat().st_mtime_ns for c in cells} == before


def test_finetune_track_continues_a_hub_expert_itself(hub_cache, tmp_path):
    """An expert start is the Hub PPO as saved, continued in its own modes: nothing is trained first, its
    recorded wrappers apply, and an expert PPO cannot continue is refused before any work."""
    start = Start(EXPERT, "CartPole-v1", "sb3/ppo-CartPole-v1", 512, modes=("naive",))
    out = tmp_path / "expert-track"
    (row,) = run_finetune_benchmark(out, {"cartpole": start}, None, [0], overrides={"eval_every": 256,
                                                                                  "eval_episodes": 2})  # fmt: skip
    assert (row["mode"], row["status"]) == ("naive", "ok") and row["start_return"] == 500.0
    assert row["expert_return"] == 500.0  # the start is its own expert
    assert row["pct_expert_final"] == row["pct_start_final"]
    assert 512 <= row["timesteps"] < 1024  # PPO steps taken here, not the zip's count from its own training
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["finetune-cartpole-naive-s0"]
    with pytest.raises(UserError, match="holds a SAC model"):
        run_finetune_benchmark(tmp_path / "sac", {"p": Start(EXPERT, "Pendulum-v1", "sb3/sac-Pendulum-v1", 512)},
                               None, [0])  # fmt: skip
    assert not (tmp_path / "sac").exists()


def test_scratch_cells_are_measured_against_the_start_they_are_compared_with():
    curve = [{"timesteps": 0, "mean_return": 50.0}, {"timesteps": 200_000, "mean_return": 150.0}]
    results = {"curve": curve, "start_return": 50.0, "final_return": 150.0, "expert_return": 300.0, "wall_s": 1.0}
    row = table_row(("poor", "scratch", 0), results, start_return=100.0)
    assert (row["pct_start_lowest"], row["pct_start_200k"]) == (50.0, 150.0)
    assert (row["pct_expert_lowest"], row["pct_expert_final"]) == (pytest.approx(100 / 6), 50.0)
    assert table_row(("poor", "scratch", 0), results)["pct_start_lowest"] == 100.0  # no other mode: its own


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--track", "finetune", "--n-iters", "3"], "--n-iters does not apply"),
        (["--track", "finetune", "--starts", "nope"], "unknown start 'nope'"),
        (["--report-only"], "--report-only applies to --track finetune only"),
    ],
)
def test_finetune_track_refuses_what_it_cannot_use(hub_cache, tmp_path, capsys, flags, message):
    assert sb3_il("benchmark", "--out", tmp_path / "x", *flags) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "x").exists()
