import gymnasium as gym
import numpy as np
import pytest

from sb3_il.demos import collect_demos, load_demos, save_demos, transitions, with_noise
from sb3_il.envs import make_env
from sb3_il.errors import UserError
from sb3_il.experts import load_expert


def test_noise_perturbs_within_bounds():
    space = gym.spaces.Box(-1, 1, (3,))
    act = with_noise(lambda obs: np.full((len(obs), 3), 0.9), 0.5, space, np.random.default_rng(0))
    actions = act(np.zeros((1000, 2)))
    assert np.all(np.abs(actions) <= 1) and actions.std() > 0.1
    discrete = with_noise(
        lambda obs: np.zeros(len(obs), dtype=int), 0.5, gym.spaces.Discrete(4), np.random.default_rng(0)
    )
    assert 0.25 < (discrete(np.zeros((2000, 2))) != 0).mean() < 0.5  # half resampled, 3/4 of those differ


def test_noisy_demos_keep_clean_expert_labels_and_round_trip(hub_cache, tmp_path):
    expert = load_expert("sb3/sac-Pendulum-v1", make_env("Pendulum-v1"))
    demos = collect_demos(expert, "Pendulum-v1", 400, seed=0, noise=0.3)
    obs, acts = transitions(demos)
    assert len(obs) >= 400 and len(demos) == 2  # whole 200-step episodes
    np.testing.assert_allclose(acts, expert(obs), atol=1e-6)  # labels are the expert's, not the executed actions
    save_demos(tmp_path / "demos", demos)
    again_obs, again_acts = load_demos(tmp_path / "demos").transitions()
    np.testing.assert_array_equal(again_obs, obs)
    np.testing.assert_array_equal(again_acts, acts)
    assert len(load_demos(tmp_path / "demos", make_env("Pendulum-v1")).trajectories) == 2
    with pytest.raises(UserError, match=r"observations \(3,\) and actions \(1,\), but CartPole-v1 has \(4,\) and \(\)"):
        load_demos(tmp_path / "demos", make_env("CartPole-v1"))
