import shutil
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from sb3_il.config import EnvSpec
from sb3_il.envs import make_env
from sb3_il.errors import UserError
from sb3_il.evaluation import EpisodeRunner
from sb3_il.experts import PadAdapter, load_expert

ANT_TIME_FEATURE = EnvSpec("Ant-v4", ("sb3_contrib.common.wrappers.TimeFeatureWrapper",))


def expert_returns(repo_id: str, env_id: str, n: int) -> np.ndarray:
    expert = load_expert(repo_id, make_env(env_id))
    return EpisodeRunner(env_id, n, seed=123)(expert, n)


@pytest.mark.parametrize(
    ("repo_id", "env_id", "episodes", "minimum"),
    [
        ("sb3/ppo-CartPole-v1", "CartPole-v1", 3, 500),
        ("sb3/sac-Pendulum-v1", "Pendulum-v1", 5, -250),
        ("sb3/trpo-Hopper-v3", "Hopper-v4", 3, 3500),
        ("sb3/trpo-Ant-v3", "Ant-v4", 2, 4000),  # 111-dim expert on the 27-dim Ant-v4: zero padding
        ("sb3/ppo-HalfCheetah-v3", "HalfCheetah-v4", 2, 5000),
    ],
)
def test_cached_experts_reach_their_level(hub_cache, repo_id, env_id, episodes, minimum):
    returns = expert_returns(repo_id, env_id, episodes)
    assert returns.mean() >= minimum, returns


@pytest.mark.parametrize("repo_id", ["sb3/tqc-Hopper-v3"])
def test_contrib_expert_loads_and_acts(hub_cache, repo_id):
    env = make_env("Hopper-v4")
    expert = load_expert(repo_id, env)
    obs, _ = env.reset(seed=0)
    action = expert(obs[None])
    assert action.shape == (1, 3) and np.all(np.abs(action) <= 1)


@pytest.mark.parametrize(
    ("repo_id", "env_id"),
    [
        ("sb3/trpo-Hopper-v3", "Hopper-v4"),  # VecNormalize statistics, clipped Gaussian mean
        ("sb3/trpo-Ant-v3", "Ant-v4"),  # 111-dim expert on 27-dim obs: the padding adapter
        ("sb3/ppo-Ant-v3", ANT_TIME_FEATURE),  # the adapter under the expert's wrapper: 112 on 28
        ("sb3/sac-Pendulum-v1", "Pendulum-v1"),  # tanh-squashed actions, rescaled to [-2, 2]
    ],
)
def test_expert_jacobian_matches_finite_differences(hub_cache, repo_id, env_id):
    env = make_env(env_id)
    expert = load_expert(repo_id, env)
    states = [env.reset(seed=0)[0]]
    for _ in range(30):  # states along an expert episode: at the start trpo Hopper's actions all sit on a bound
        states.append(env.step(expert(states[-1][None])[0])[0])
    obs = np.stack(states[10::10]).astype(np.float64)
    jacobian = expert.jacobian(obs)
    assert jacobian.shape == (3, *env.action_space.shape, *env.observation_space.shape)
    eps = 1e-3
    numeric = np.stack(
        [(expert(obs + eps * e) - expert(obs - eps * e)) / (2 * eps) for e in np.eye(obs.shape[1])], axis=2
    )
    assert np.abs(jacobian).mean() > 1e-2  # not trivially zero
    # Clipped entries have a zero Jacobian; finite differences straddling the bound would not.
    inside = np.abs(expert(obs)) < 0.98 * env.action_space.high
    assert inside.any()
    np.testing.assert_allclose(jacobian[inside], numeric[inside], atol=5e-3 * np.abs(numeric).max())
    assert np.all(jacobian[np.abs(expert(obs)) >= env.action_space.high] == 0)


def test_missing_repo_is_a_user_error(hub_cache):
    with pytest.raises(UserError, match="HF_HUB_CACHE"):
        load_expert("sb3/ppo-NotCached-v0", make_env("CartPole-v1"))


def test_expert_for_other_spaces_is_rejected(hub_cache):
    with pytest.raises(UserError, match=r"acts in Discrete\(2\) .* pick an expert trained on Pendulum-v1"):
        load_expert("sb3/ppo-CartPole-v1", make_env("Pendulum-v1"))
    with pytest.raises(UserError, match=r"acts in Box\(shape \(3,\)\)"):
        load_expert("sb3/trpo-Hopper-v3", make_env("HalfCheetah-v4"))
    hopper = make_env("Hopper-v4")
    wider = SimpleNamespace(observation_space=gym.spaces.Box(-np.inf, np.inf, (12,)), action_space=hopper.action_space)
    with pytest.raises(UserError, match="observations of shape"):
        load_expert("sb3/trpo-Hopper-v3", wider)


def test_corrupt_zip_is_a_user_error(hub_cache, tmp_path, monkeypatch):
    """A cache whose zip is truncated: copy the cache layout, corrupt the copy, point the Hub client at it."""
    cache = tmp_path / "cache"
    shutil.copytree(hub_cache / "models--sb3--ppo-CartPole-v1", cache / "models--sb3--ppo-CartPole-v1", symlinks=False)
    zip_path = next(Path(cache).rglob("ppo-CartPole-v1.zip"))
    data = zip_path.read_bytes()
    zip_path.unlink()
    zip_path.write_bytes(data[: len(data) // 3])
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    with pytest.raises(UserError, match="re-download"):
        load_expert("sb3/ppo-CartPole-v1", make_env("CartPole-v1"))


def test_a_wrapped_v3_expert_reads_a_wrapped_v4_env(hub_cache):
    """sb3/ppo-Ant-v3 was trained on Ant-v3 (111) with a time feature (112): on Ant-v4 with the same wrapper
    (28) the 84 contact forces are padded in between and the time feature stays last."""
    env = make_env(ANT_TIME_FEATURE)
    expert = load_expert("sb3/ppo-Ant-v3", env)
    obs = np.arange(2 * 28, dtype=np.float64).reshape(2, 28)
    adapted = expert.adapt(obs)
    assert isinstance(expert.adapt, PadAdapter) and adapted.shape == (2, 112)
    assert np.array_equal(adapted[:, :27], obs[:, :27]) and np.array_equal(adapted[:, 111], obs[:, 27])
    assert not adapted[:, 27:111].any()
    runner = EpisodeRunner(ANT_TIME_FEATURE, 2, 0)
    assert runner(expert, 2).mean() > 500  # it walks (a random policy scores about -50)
    runner.close()
