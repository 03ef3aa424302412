"""The learner is a plain SB3 PPO policy: ensembles pack into one MLP, and the zip round-trips through PPO.load."""

import numpy as np
import torch as th
from conftest import train_run
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_il.envs import make_env
from sb3_il.policy import Learner, ObsNormalizer, actor_output, make_learner, pack_ensemble


def test_ensemble_is_one_ppo_policy_acting_with_the_members_mean(runs_dir):
    env = make_env("Hopper-v4")
    members = [make_learner(env, [64, 64], seed).policy for seed in range(3)]
    packed = make_learner(env, [192, 192], 9).policy
    pack_ensemble(packed, members)
    obs = th.randn(32, 11)
    mean = sum(actor_output(member, obs) for member in members) / 3
    th.testing.assert_close(actor_output(packed, obs), mean, rtol=0, atol=1e-6)

    results = train_run(runs_dir, "--env", "Pendulum-v1", "--n-iters", "3", "--grad-steps", "1000", "--ensemble", "2")
    assert results["pct_expert"] >= 80, results  # seeds 0-9: 99.1% or more (reports/test-margins.md)
    model = PPO.load(results["dir"] / "policy.zip")
    assert model.policy.mlp_extractor.policy_net[0].out_features == 128


def test_policy_round_trips_through_ppo_load(runs_dir):
    results = train_run(runs_dir, "--algo", "bc", "--env", "Pendulum-v1", "--grad-steps", "200")
    run = results["dir"]
    venv = VecNormalize.load(str(run / "vec_normalize.pkl"), DummyVecEnv([lambda: make_env("Pendulum-v1")]))
    model = PPO.load(run / "policy.zip", env=venv)  # no custom_objects, no sb3_il import needed
    raw = np.random.default_rng(0).uniform(-1, 1, size=(64, 3))  # float64, like MuJoCo observations
    actions, _ = model.predict(venv.normalize_obs(raw), deterministic=True)

    # The same policy, as the trainer evaluated it, gives exactly the same actions.
    learner = Learner(model.policy, ObsNormalizer(venv.obs_rms.mean, venv.obs_rms.var))
    np.testing.assert_array_equal(learner(raw), actions)
    # Reloading gives identical weights and actions, and RL continues.
    again = PPO.load(run / "policy.zip")
    np.testing.assert_array_equal(again.predict(venv.normalize_obs(raw), deterministic=True)[0], actions)
    model.learn(256)
    assert model.num_timesteps >= 256
