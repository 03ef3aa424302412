"""The DAgger dataset: preallocated arrays in a FIFO ring, like SB3's buffers, sampled by index."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch as th


class Batch(NamedTuple):
    obs: th.Tensor
    acts: th.Tensor
    #: The expert's d action / d observation at each state (Sobolev training), or None.
    jacobians: th.Tensor | None


class ReplayBuffer:
    """(observation, expert action[, expert Jacobian]) rows; when full, the oldest are overwritten first.

    Storage is allocated once (``torch.empty`` does not touch memory until written), so a large capacity
    costs nothing up front and sampling a batch is one index operation with no Python-level copies.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        act_shape: tuple[int, ...],
        act_dtype: th.dtype = th.float32,
        with_jacobians: bool = False,
    ) -> None:
        self.capacity = capacity
        self.obs = th.empty((capacity, *obs_shape), dtype=th.float32)
        self.acts = th.empty((capacity, *act_shape), dtype=act_dtype)
        self.jacobians = th.empty((capacity, *act_shape, *obs_shape)) if with_jacobians else None
        self.pos = 0
        self.full = False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: np.ndarray, acts: np.ndarray, jacobians: np.ndarray | None = None) -> None:
        """Append a batch, wrapping around (FIFO) once capacity is reached."""
        if (jacobians is None) != (self.jacobians is None):
            raise ValueError("pass jacobians exactly when the buffer was made with_jacobians")
        n = len(obs)
        start = max(0, n - self.capacity)  # only the newest `capacity` rows can survive anyway
        idx = (self.pos + np.arange(n - start)) % self.capacity
        self.obs[idx] = th.as_tensor(np.asarray(obs[start:]), dtype=th.float32)
        self.acts[idx] = th.as_tensor(np.asarray(acts[start:])).to(self.acts.dtype)
        if self.jacobians is not None:
            self.jacobians[idx] = th.as_tensor(np.asarray(jacobians[start:]), dtype=th.float32)
        n -= start
        self.full = self.full or self.pos + n >= self.capacity
        self.pos = (self.pos + n) % self.capacity

    def sample(self, batch_size: int, generator: th.Generator) -> Batch:
        idx = th.randint(len(self), (batch_size,), generator=generator)
        return Batch(self.obs[idx], self.acts[idx], None if self.jacobians is None else self.jacobians[idx])

    def observations(self) -> th.Tensor:
        """All stored observations (a view, no copy)."""
        return self.obs[: len(self)]
