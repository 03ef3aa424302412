"""RL fine-tuning keeps an imitation policy's return and writes a PPO-loadable policy."""

import json

import matplotlib.image as mpimg
from conftest import load_script, train_run
from stable_baselines3 import PPO


def finetune_main(args: list[str]) -> int:
    return load_script("finetune").main(args)


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
        "--modes",
        "prepared",
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
    for name in ("policy.zip", "vec_normalize.pkl", "progress.csv", "config.yml", "finetune_curve.png"):
        assert (out / name).exists(), name
    assert list((out / "checkpoints").glob("*.zip"))
    assert (out / "reference-scratch" / "results.json").exists()
    assert mpimg.imread(out / "finetune_curve.png").ndim == 3
    model = PPO.load(out / "policy.zip")
    assert model.num_timesteps >= 4096


def test_finetune_bad_source_exits_2(tmp_path, capsys):
    assert finetune_main(["--run", str(tmp_path), "--env", "Pendulum-v1", "--out", str(tmp_path / "o")]) == 2
    assert "no policy.zip" in capsys.readouterr().err
