"""The strong recipe's adaptation (``adapt: true``): settings that follow from what a run observes about its
expert and its labels, never from the expert's name.

* **Width** of the learner's two hidden layers: the widest hidden layer of the expert's actor (64 to 256). A
  learner narrower than its expert cannot represent it; a wider one fits the article's small experts no better.
* **Learning rate**: 5e-3 (the article's, for width 64) scaled by 64 / width, so wider nets take smaller steps.
* **Ensemble**: as many actors as fit in 192 units (3 of width 64, 1 of wider), averaging out a fit's noise at
  about the compute of one wide actor.
* **Bounded loss** when at least 10% of the demonstration's action entries sit on a bound the env clips to.
* **Sobolev term** when the expert's actor squashes its output (tanh, as SAC and TQC do): such an actor,
  trained stochastically, switches steeply between actions near its bounds, and a fit of its actions alone
  averages across the switches. Matching its d action / d observation as well (Czarnecki et al. 2017) teaches
  where they are. The term sees 20 rows of each batch: a run then takes about 2x the time, not 6x
  (reports/zoo/README.md).

The resolved values replace ``adapt`` in the run's config.yml, so ``--config-file`` replays them exactly.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
from torch import nn

from sb3_il.config import TrainConfig
from sb3_il.policy import ActFn

#: Bumped whenever a rule changes what a run resolves. Runs record it, so a benchmark cell the recipe made before
#: a change is trained again rather than reused: config.yml records what was resolved, not by which rules.
VERSION = 2
#: Share of demonstration action entries on a bound above which the bounded loss is used.
SATURATION = 0.1
#: The Sobolev term for a squashing expert: its weight, and the rows of each batch it sees.
SOBOLEV_WEIGHT, SOBOLEV_ROWS = 0.3, 20


def expert_width(expert: ActFn) -> int:
    """The widest hidden layer of an SB3 expert's actor (64 for experts without a network, such as callables)."""
    policy = getattr(expert, "policy", None)
    actor = getattr(getattr(policy, "actor", None), "latent_pi", None)  # SAC, TQC, TD3-style actors
    if actor is None:
        actor = getattr(getattr(policy, "mlp_extractor", None), "policy_net", None)  # PPO, A2C, TRPO
    widths = [m.out_features for m in actor.modules() if isinstance(m, nn.Linear)] if actor is not None else []
    return max(widths, default=64)


def squashes(expert: ActFn) -> bool:
    """Whether an SB3 expert's actor squashes its output with tanh (SAC, TQC); False for callables."""
    return bool(getattr(getattr(expert, "policy", None), "squash_output", False))


def saturation(acts: np.ndarray, space: gym.Space) -> float:
    """Share of action entries on a bound of the Box ``space`` (0 for discrete actions)."""
    if not isinstance(space, gym.spaces.Box):
        return 0.0
    acts = np.asarray(acts)
    return float(((acts <= space.low) | (acts >= space.high)).mean())


def adapt(config: TrainConfig, expert: ActFn, demo_acts: np.ndarray, action_space: gym.Space) -> TrainConfig:
    """``config`` with the recipe's settings resolved for this expert (unchanged unless ``config.adapt``)."""
    if not config.adapt:
        return config
    width = int(np.clip(expert_width(expert), 64, 256))
    sobolev = squashes(expert) and isinstance(action_space, gym.spaces.Box)
    return dataclasses.replace(
        config,
        adapt=False,
        net_arch=[width, width],
        lr=5e-3 * 64 / width,
        ensemble=max(1, 192 // width),
        bounded_loss=saturation(demo_acts, action_space) >= SATURATION,
        jacobian_weight=SOBOLEV_WEIGHT if sobolev else config.jacobian_weight,
        jacobian_rows=SOBOLEV_ROWS if sobolev else config.jacobian_rows,
    )
