"""The Python API (BC, DAgger, evaluate), ``sb3-il evaluate`` and the example script, as a user runs them."""

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest
from conftest import sb3_il, train_run
from stable_baselines3 import PPO

from sb3_il import BC, DAgger, evaluate
from sb3_il.errors import UserError
from sb3_il.runs import read_run

ROOT = Path(__file__).resolve().parents[1]


def balance(obs: np.ndarray) -> np.ndarray:
    """A scripted CartPole controller (holds the pole for all 500 steps)."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


def test_dagger_from_a_hub_id_learns_a_ppo_and_saves_a_run_folder(hub_cache, tmp_path):
    dagger = DAgger("CartPole-v1", expert="sb3/ppo-CartPole-v1", n_iters=1, grad_steps=300, final_eval_episodes=5)
    model = dagger.learn()
    assert isinstance(model, PPO) and dagger.expert_labels == 2000 and dagger.mean_return > 0
    run = read_run(dagger.save(tmp_path / "saved"))
    assert run.results["mean_return"] == dagger.mean_return and run.config.expert == "sb3/ppo-CartPole-v1"
    assert evaluate(str(tmp_path / "saved"), episodes=5)["mean_return"] == pytest.approx(dagger.mean_return)


def test_bc_from_a_callable_expert_on_a_gymnasium_env(hub_cache):
    bc = BC(gym.make("CartPole-v1"), expert=balance, n_demo_steps=2000, grad_steps=500, final_eval_episodes=5)
    bc.learn()
    assert bc.expert.startswith("callable:") and bc.expert_return_mean == 500
    assert bc.pct_expert >= 50  # far above a random policy's ~4%, with room for any CPU's rounding
    with pytest.raises(UserError, match="needs an SB3 expert"):
        BC("Pendulum-v1", expert=lambda obs: np.zeros((len(obs), 1)), jacobian_weight=0.1).learn()


def test_evaluate_scores_runs_hub_repos_and_films(runs_dir, tmp_path, capsys):
    run = train_run(runs_dir, "--algo", "bc", "--env", "CartPole-v1", "--grad-steps", "200")
    scores = evaluate(str(run["dir"]), episodes=5, video=tmp_path / "run.mp4")
    assert scores["mean_return"] == pytest.approx(run["mean_return"]) and "pct_expert" in scores
    assert iio.imread(tmp_path / "run.mp4").ndim == 4
    assert sb3_il("evaluate", "sb3/ppo-CartPole-v1", "--env", "CartPole-v1", "--episodes", "3") == 0
    assert "sb3/ppo-CartPole-v1 on CartPole-v1: 500.0 ± 0.0 over 3 episodes" in capsys.readouterr().out
    assert sb3_il("evaluate", "sb3/ppo-CartPole-v1") == 2  # which env: it cannot tell


def test_the_example_runs(hub_cache, tmp_path):
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        "BC from a scripted controller" in done.stdout and (tmp_path / "runs" / "example-dagger-CartPole-v1").is_dir()
    )


SCRIPT = """
from sb3_il import DAgger

dagger = DAgger("CartPole-v1", expert="sb3/ppo-CartPole-v1", n_iters=1, grad_steps=100, final_eval_episodes=3)
model = dagger.learn()
print("learned", type(model).__name__, dagger.pct_expert)
"""


@pytest.mark.parametrize("how", ["script", "stdin", "command"])
def test_a_plain_script_without_a_main_guard_works_and_leaves_no_temporary_run(hub_cache, tmp_path, how):
    """The README's pattern at top level: the background evaluation's worker used to re-run the script
    (BrokenProcessPool), and every learn() left its run folder in $TMPDIR."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (tmp_path / "script.py").write_text(SCRIPT)
    argv = {"script": [str(tmp_path / "script.py")], "stdin": ["-"], "command": ["-c", SCRIPT]}[how]
    env = os.environ | {"PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    done = subprocess.run([sys.executable, *argv], input=SCRIPT if how == "stdin" else None, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0 and "learned PPO" in done.stdout, done.stderr[-2000:]
    assert done.stdout.count("learned") == 1  # the worker did not run the script again
    assert not [p for p in scratch.iterdir() if p.name.startswith("sb3_il-")]


def test_finetune_from_python_reports_progress_or_stays_quiet(runs_dir, tmp_path, capsys):
    """sb3_il.fine_tune beside BC and DAgger: a line per evaluation (% of start and of the expert), none with
    quiet; the folder holds a plain PPO zip."""
    from sb3_il import fine_tune

    run = train_run(runs_dir, "--algo", "bc", "--env", "Pendulum-v1", "--grad-steps", "200")["dir"]
    capsys.readouterr()
    short = dict(timesteps=1024, eval_every=512, eval_episodes=2, vf_warmup_rollouts=1)
    folder = fine_tune(run, out=tmp_path / "ft", **short)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step")]
    assert len(lines) >= 3 and "% of start" in lines[0] and "% of expert" in lines[0]
    assert PPO.load(folder / "policy.zip").num_timesteps >= 1024
    fine_tune(run, out=tmp_path / "quiet", quiet=True, **short)
    assert "step" not in capsys.readouterr().out
    with pytest.raises(UserError, match="unknown fine-tuning settings"):
        fine_tune(run, out=tmp_path / "x", timestep=5)
