"""The strong recipe's rules: settings from what a run observes about its expert."""

import gymnasium as gym
import numpy as np

from sb3_il.config import TrainConfig
from sb3_il.envs import make_env
from sb3_il.experts import CallableExpert, load_expert
from sb3_il.recipe import SOBOLEV_ROWS, SOBOLEV_WEIGHT, adapt, expert_width, saturation, squashes

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


def test_the_sobolev_term_follows_a_squashing_actor(hub_cache):
    """TQC and SAC actors squash with tanh: the recipe matches their Jacobians too, on part of each batch."""
    env = make_env("Hopper-v4")
    config, acts = TrainConfig(env_id="Hopper-v4", adapt=True), np.zeros((10, 3))
    experts = [load_expert(repo, env) for repo in ("sb3/tqc-Hopper-v3", "sb3/sac-Hopper-v3")]
    squashing = [adapt(config, expert, acts, env.action_space) for expert in experts]
    assert {(run.jacobian_weight, run.jacobian_rows) for run in squashing} == {(SOBOLEV_WEIGHT, SOBOLEV_ROWS)}
    assert squashes(load_expert("sb3/tqc-Hopper-v3", env)) and not squashes(CallableExpert(np.zeros_like, BOX))
    for expert in (load_expert("sb3/trpo-Hopper-v3", env), CallableExpert(np.zeros_like, env.action_space)):
        assert adapt(config, expert, acts, env.action_space).jacobian_weight == 0
