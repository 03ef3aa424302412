"""push_to_hub --dry-run packages a run; the package, laid out as a Hub cache, loads back via load_from_hub."""

import dataclasses
import json

import imageio.v3 as iio
import pytest
import yaml
from conftest import sb3_il, train_run
from huggingface_hub import constants

from sb3_il.config import TrainConfig
from sb3_il.envs import make_env
from sb3_il.evaluation import EVAL_SEED, EpisodeRunner
from sb3_il.experts import load_expert
from sb3_il.hub import as_hub_cache
from sb3_il.model_card import model_card
from sb3_il.runs import Run


def push_main(args: list) -> int:
    return sb3_il("push", *args)


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


def test_model_card_states_the_net_the_loss_and_what_was_labelled(tmp_path):
    config = TrainConfig(
        algo="dagger", env_id="HalfCheetah-v4", expert="sb3/tqc-HalfCheetah-v3", n_iters=40, steps_per_iter=250,
        lr_schedule="cosine", jacobian_weight=0.3,
    )  # fmt: skip
    results = dict(
        mean_return=1.0, std_return=0.0, eval_episodes=20, expert_return_mean=1.0, expert_return_std=0.0,
        pct_expert=100.0, expert_labels=11000, n_demo_episodes=1, env_steps=10000, grad_steps=41000,
    )  # fmt: skip

    def card(results=results, **changes) -> str:
        run = Run(tmp_path, "imitation", dataclasses.replace(config, **changes), results)
        return " ".join(model_card("me/dagger-HalfCheetah-v4", run, has_video=False).split())

    assert "(cosine)" in card() and "plus 0.3 × MSE on the expert's d action / d observation" in card()
    plain = card(jacobian_weight=0.0)
    assert "loss: MSE on the expert's actions." in plain and "40 DAgger iterations of 250 learner steps," in plain
    assert "1000 learner steps (the 250 least covered labelled)" in card(candidates_per_label=4)
    assert "Net: MLP 64×64 ReLU;" in plain
    chosen = card(results | {"selected_iteration": 37}, select_last=10, select_by="return")
    assert "iteration 37's, the best of the last 10 on 20 validation episodes each (reads the env's reward)" in chosen
    by_loss = card(results | {"selected_iteration": 37}, select_last=10)
    assert "the best of the last 10 by its imitation loss on the states it visited (reward-free)" in by_loss
    assert "mean of 3 actors, each an MLP 64×64 ReLU, packed as one 192×192 MLP (block-diagonal)" in card(ensemble=3)
    bc = card(algo="bc", n_iters=0)
    assert "one fit on 1000 expert transitions" in bc and "DAgger iterations" not in bc
    assert "cross-entropy" in card(results | {"discrete": True}, env_id="CartPole-v1")
    assert "license: mit" in card() and "pip install sb3-il" in card()


def test_a_finetuned_run_is_pushed_as_a_ppo_repo(runs_dir, tmp_path, monkeypatch):
    """finetune.py's output is shared like any run: named ppo-ENV, its card says where it started, and the
    package loads back through the offline load_from_hub path and scores its final evaluation again."""
    run = train_run(runs_dir, "--algo", "bc", "--env", "Pendulum-v1", "--grad-steps", "300")["dir"]
    tuned = tmp_path / "tuned"
    short = ["--timesteps", "1024", "--eval-every", "1024", "--eval-episodes", "3", "--vf-warmup-rollouts", "1"]
    assert sb3_il("finetune", "--run", run, *short, "--out", tuned) == 0
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


def test_the_cards_snippet_builds_a_wrapped_env_as_the_policy_saw_it():
    """A wrapped env is a value (EnvSpec), so the card names its wrapper class instead of an ENV|WRAPPER string."""
    from sb3_il.config import EnvSpec
    from sb3_il.model_card import usage

    spec = EnvSpec("Walker2d-v4", ("sb3_contrib.common.wrappers.TimeFeatureWrapper",))
    snippet = usage("me/ppo-Walker2d-v4", spec, normalize=False)
    assert "|" not in snippet and "from sb3_contrib.common.wrappers import TimeFeatureWrapper" in snippet
    setup = snippet.split("model = ")[0].replace("from huggingface_sb3 import load_from_hub\n", "")
    scope: dict = {}
    exec(setup, scope)  # the imports and the env line, as a user runs them
    assert scope["env"].observation_space.shape == (18,)  # Walker2d-v4's 17 entries and the time feature
