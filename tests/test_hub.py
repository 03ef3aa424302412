"""push_to_hub --dry-run packages a run; the package, laid out as a Hub cache, loads back via load_from_hub."""

import json

import imageio.v3 as iio
import pytest
import yaml
from conftest import load_script, train_run
from huggingface_hub import constants

from sb3_il.envs import make_env
from sb3_il.evaluation import EpisodeRunner
from sb3_il.experts import load_expert
from sb3_il.hub import as_hub_cache, model_card
from sb3_il.trainers import EVAL_SEED


def push_main(args: list[str]) -> int:
    return load_script("push_to_hub").main(args)


@pytest.mark.parametrize(
    ("env_id", "train_args"),
    [
        ("CartPole-v1", ["--algo", "bc", "--grad-steps", "300"]),
        ("Hopper-v4", ["--algo", "dagger", "--n-iters", "1", "--grad-steps", "300"]),
    ],
)
def test_dry_run_package_and_round_trip(runs_dir, tmp_path, monkeypatch, env_id, train_args):
    results = train_run(runs_dir, *train_args, "--env", env_id)
    run = results["dir"]
    algo = train_args[1]
    repo_id = f"tester/{algo}-{env_id}"
    package = tmp_path / "package"
    assert push_main(["--run", str(run), "--repo-id", repo_id, "--dry-run", str(package), "--video-steps", "60"]) == 0

    files = {p.name for p in package.iterdir()}
    expected = {f"{algo}-{env_id}.zip", "config.yml", "results.json", "README.md", "replay.mp4", "learning_curve.png"}
    assert expected <= files
    assert ("vec_normalize.pkl" in files) == (run / "vec_normalize.pkl").exists()

    card = (package / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "stable-baselines3"
    assert {"imitation-learning", env_id, "behavior-cloning" if algo == "bc" else "dagger"} <= set(metadata["tags"])
    metric = metadata["model-index"][0]["results"][0]["metrics"][0]
    results = json.loads((package / "results.json").read_text())  # what the package reports
    assert metric["type"] == "mean_reward" and metric["value"].startswith(f"{results['mean_return']:.2f}")
    assert results["repo_id"] == repo_id and "pct_expert" in results and "expert_return_mean" in results

    frames = iio.imread(package / "replay.mp4")
    assert frames.ndim == 4 and len(frames) >= 2

    # The package as a Hub cache: the real offline load_from_hub path, then the reported return again.
    cache = tmp_path / "cache"
    as_hub_cache(package, repo_id, cache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    policy = load_expert(repo_id, make_env(env_id))
    returns = EpisodeRunner(env_id, results["eval_episodes"], EVAL_SEED)(policy, results["eval_episodes"])
    assert returns.mean() == pytest.approx(results["mean_return"], rel=1e-9)


def test_push_rejects_unfinished_run_and_bad_repo(runs_dir, tmp_path, capsys):
    assert push_main(["--run", str(tmp_path), "--repo-id", "me/bc-CartPole-v1", "--dry-run", str(tmp_path / "o")]) == 2
    assert "not a finished sb3-il run" in capsys.readouterr().err


def test_model_card_states_the_net_the_loss_and_what_was_labelled():
    config = dict(
        algo="dagger", env_id="HalfCheetah-v4", expert="sb3/tqc-HalfCheetah-v3", seed=0, net_arch=[64, 64], lr=5e-3,
        batch_size=100, grad_steps=1000, n_iters=40, steps_per_iter=250, beta_schedule="0", lr_schedule="cosine",
        normalize=True, bounded_loss=False, jacobian_weight=0.3,
    )  # fmt: skip
    results = dict(
        mean_return=1.0, std_return=0.0, eval_episodes=20, expert_return_mean=1.0, expert_return_std=0.0,
        pct_expert=100.0, expert_labels=11000, n_demo_episodes=1, env_steps=10000, grad_steps=41000,
    )  # fmt: skip
    card = model_card("me/dagger-HalfCheetah-v4", config, results, has_video=False)
    assert "learning rate\ncosine" in card and "plus 0.3 × MSE on the expert's d action / d observation" in card
    plain = model_card("me/dagger-HalfCheetah-v4", config | {"jacobian_weight": 0.0}, results, has_video=False)
    assert "loss: MSE on the expert's actions." in plain and "iterations of\n250 learner steps," in plain
    selective = model_card("me/dagger-HalfCheetah-v4", config | {"candidates_per_label": 4}, results, has_video=False)
    assert "iterations of\n1000 learner steps (the 250 least covered labelled)" in selective
    assert "Settings: MLP 64×64 ReLU," in plain
    selecting = config | {"select_last": 10, "select_episodes": 20}
    chosen = model_card("me/dagger-HalfCheetah-v4", selecting, results | {"selected_iteration": 37}, has_video=False)
    assert "iteration 37's, the best of the last 10 on 20 validation episodes each" in chosen.replace("\n", " ")
    ensemble = model_card("me/dagger-HalfCheetah-v4", config | {"ensemble": 3}, results, has_video=False)
    assert "mean of 3 actors, each an MLP 64×64 ReLU, packed as one 192×192 MLP (block-diagonal)" in ensemble


def test_a_finetuned_run_is_pushed_as_a_ppo_repo(runs_dir, tmp_path, monkeypatch):
    """finetune.py's output is shared like any run: named ppo-ENV, its card says where it started, and the
    package loads back through the offline load_from_hub path and scores its final evaluation again."""
    run = train_run(runs_dir, "--algo", "bc", "--env", "Pendulum-v1", "--grad-steps", "300")["dir"]
    tuned = tmp_path / "tuned"
    short = ["--timesteps", "1024", "--eval-every", "1024", "--eval-episodes", "3", "--vf-warmup-rollouts", "1"]
    assert load_script("finetune").main(["--run", str(run), *short, "--modes", "prepared", "--out", str(tuned)]) == 0
    results = json.loads((tuned / "results.json").read_text())
    package = tmp_path / "package"
    dry_run = ["--run", str(tuned), "--dry-run", str(package), "--video-steps", "0"]
    assert push_main([*dry_run, "--repo-id", "tester/bc-Pendulum-v1"]) == 2  # it is a PPO policy now

    assert push_main([*dry_run, "--repo-id", "tester/ppo-Pendulum-v1"]) == 0
    assert {"ppo-Pendulum-v1.zip", "vec_normalize.pkl", "finetune_curve.png", "config.yml"} <= {
        p.name for p in package.iterdir()
    }
    card = (package / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert {"ppo", "rl-fine-tuning", "Pendulum-v1"} <= set(metadata["tags"])
    value = metadata["model-index"][0]["results"][0]["metrics"][0]["value"]
    assert value.startswith(f"{results['final_return']:.2f}") and f"{results['start_return']:.1f}" in card
    cache = tmp_path / "cache"
    as_hub_cache(package, "tester/ppo-Pendulum-v1", cache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    policy = load_expert("tester/ppo-Pendulum-v1", make_env("Pendulum-v1"))
    returns = EpisodeRunner("Pendulum-v1", 3, EVAL_SEED)(policy, 3)
    assert returns.mean() == pytest.approx(results["final_return"], rel=1e-9)
