"""Evaluation of any ``obs batch -> actions`` callable, on fixed seeds so expert and learner are comparable.

Unlike SB3's ``evaluate_policy`` (which spreads episodes over a VecEnv's envs in order), every episode
here runs in its own env seeded ``seed + i``: the expert and each learner see exactly the same starts,
and n episodes are stepped together so the policy is queried on batches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sb3_il.envs import make_env

ActFn = Callable[[np.ndarray], np.ndarray]


class Evaluator:
    """Holds the eval envs so repeated evaluations (every iteration) do not rebuild MuJoCo models."""

    def __init__(self, env_id: str, max_episodes: int, seed: int) -> None:
        self.envs = [make_env(env_id) for _ in range(max_episodes)]
        self.seed = seed

    def __call__(self, act: ActFn, n_episodes: int) -> np.ndarray:
        """Undiscounted returns of ``n_episodes`` deterministic episodes (seeds ``seed .. seed+n-1``)."""
        envs = self.envs[:n_episodes]
        obs = np.stack([env.reset(seed=self.seed + i)[0] for i, env in enumerate(envs)])
        returns = np.zeros(len(envs))
        active = np.ones(len(envs), dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            actions = act(obs[idx])
            for j, i in enumerate(idx):
                obs[i], reward, terminated, truncated, _ = envs[i].step(actions[j])
                returns[i] += reward
                active[i] = not (terminated or truncated)
        return returns

    def close(self) -> None:
        for env in self.envs:
            env.close()


def percent_of_expert(learner_return: float, expert_return: float) -> float:
    """``100 * learner / expert``, generalised so that worse is always below 100 when the expert's
    return is negative (Pendulum): ``100 * (1 + (learner - expert) / |expert|)``."""
    return 100.0 * (1.0 + (learner_return - expert_return) / abs(expert_return))
