"""The DAgger dataset: preallocated arrays in a FIFO ring, like SB3's buffers, sampled by index."""

from __future__ import annotations

import numpy as np
import torch as th


class ReplayBuffer:
    """(observation, expert action) pairs; when full, the oldest pairs are overwritten first.

    Storage is allocated once (``torch.empty`` does not touch memory until written), so a 1M capacity
    costs nothing up front and sampling a batch is one index operation with no Python-level copies.
    """

    def __init__(
        self, capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...], act_dtype: th.dtype = th.float32
    ) -> None:
        self.capacity = capacity
        self.obs = th.empty((capacity, *obs_shape), dtype=th.float32)
        self.acts = th.empty((capacity, *act_shape), dtype=act_dtype)
        self.pos = 0
        self.full = False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: np.ndarray, acts: np.ndarray) -> None:
        """Append a batch, wrapping around (FIFO) once capacity is reached."""
        n = len(obs)
        if n > self.capacity:  # only the newest `capacity` pairs can survive anyway
            obs, acts, n = obs[-self.capacity :], acts[-self.capacity :], self.capacity
        idx = (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = th.as_tensor(np.asarray(obs), dtype=th.float32)
        self.acts[idx] = th.as_tensor(np.asarray(acts)).to(self.acts.dtype)
        self.full = self.full or self.pos + n >= self.capacity
        self.pos = (self.pos + n) % self.capacity

    def sample(self, batch_size: int, generator: th.Generator) -> tuple[th.Tensor, th.Tensor]:
        idx = th.randint(len(self), (batch_size,), generator=generator)
        return self.obs[idx], self.acts[idx]

    def observations(self) -> th.Tensor:
        """All stored observations (a view, no copy)."""
        return self.obs[: len(self)]
