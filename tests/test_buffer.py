import numpy as np
import torch as th

from sb3_il.buffer import ReplayBuffer


def test_fifo_wraps_and_keeps_newest():
    buffer = ReplayBuffer(5, (2,), (1,))
    buffer.add(np.arange(6).reshape(3, 2), np.arange(3).reshape(3, 1))
    assert len(buffer) == 3 and not buffer.full
    buffer.add(np.arange(6, 14).reshape(4, 2), np.arange(3, 7).reshape(4, 1))
    assert len(buffer) == 5 and buffer.full
    # 7 pairs into capacity 5: the two oldest (actions 0, 1) are gone.
    assert sorted(buffer.acts[:, 0].tolist()) == [2, 3, 4, 5, 6]
    buffer.add(np.zeros((12, 2)), np.full((12, 1), 9))
    assert buffer.acts[:, 0].tolist() == [9] * 5


def test_sample_returns_stored_pairs():
    buffer = ReplayBuffer(100, (3,), (), th.long)
    obs = np.random.default_rng(0).normal(size=(10, 3))
    buffer.add(obs, np.arange(10))
    batch_obs, batch_acts, jacobians = buffer.sample(64, th.Generator().manual_seed(0))
    assert batch_obs.shape == (64, 3) and batch_acts.dtype == th.long and jacobians is None
    np.testing.assert_allclose(batch_obs.numpy(), obs[batch_acts.numpy()].astype(np.float32))


def test_jacobians_are_their_own_array_sampled_with_their_rows():
    buffer = ReplayBuffer(8, (3,), (2,), with_jacobians=True)
    obs = np.arange(30, dtype=np.float32).reshape(10, 3)  # 10 rows into 8: the first two are dropped
    jacobians = obs[:, None, :] * np.ones((1, 2, 1), dtype=np.float32)
    buffer.add(obs, obs[:, :2], jacobians)
    batch = buffer.sample(16, th.Generator().manual_seed(0))
    assert batch.jacobians.shape == (16, 2, 3) and batch.obs.min() >= 6
    np.testing.assert_array_equal(batch.jacobians[:, 0, :].numpy(), batch.obs.numpy())
