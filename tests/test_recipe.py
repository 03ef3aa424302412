"""The strong recipe's rules: settings from what a run observes about its expert."""

import gymnasium as gym
import numpy as np

from sb3_il.config import TrainConfig
from sb3_il.envs import make_env
from sb3_il.experts import CallableExpert, load_expert
from sb3_il.recipe import adapt, expert_width, saturation

BOX = gym.spaces.Box(-1, 1, (1,))


def test_saturation_counts_action_entries_on_a_bound():
    space = gym.spaces.Box(-1, 1, (2,))
    assert saturation(np.array([[1.0, 0.2], [-1.0, 0.0]]), space) == 0.5
    assert saturation(np.zeros((3, 2)), space) == 0.0 and saturation(np.zeros(3), gym.spaces.Discrete(2)) == 0.0


def test_width_lr_and_ensemble_follow_the_experts_actor(hub_cache):
    wide = load_expert("sb3/tqc-Hopper-v3", make_env("Hopper-v4"))
    small = load_expert("sb3/trpo-Hopper-v3", make_env("Hopper-v4"))
    assert (expert_width(wide), expert_width(small), expert_width(CallableExpert(np.zeros_like, BOX))) == (256, 64, 64)
    space = make_env("Hopper-v4").action_space
    config = TrainConfig(env_id="Hopper-v4", adapt=True)
    saturated = np.ones((10, 3))
    wide_run, small_run = adapt(config, wide, saturated, space), adapt(config, small, np.zeros((10, 3)), space)
    assert (wide_run.net_arch, wide_run.lr, wide_run.ensemble, wide_run.bounded_loss) == ([256, 256], 1.25e-3, 1, True)
    assert (small_run.net_arch, small_run.lr, small_run.ensemble, small_run.bounded_loss) == ([64, 64], 5e-3, 3, False)
    assert not wide_run.adapt and adapt(TrainConfig(), wide, saturated, space) == TrainConfig()
