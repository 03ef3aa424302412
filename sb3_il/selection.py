"""DAgger's two choices beyond the article: which visited states the expert labels, and which iterate to keep."""

from __future__ import annotations

import math

import numpy as np
import torch as th

from sb3_il.config import EnvSpec
from sb3_il.evaluation import VALIDATION_SEED, EpisodeRunner
from sb3_il.policy import Learner, ObsNormalizer


def select_uncovered(
    candidates: np.ndarray, labelled: th.Tensor, k: int, normalizer: ObsNormalizer | None
) -> np.ndarray:
    """Indices (in visit order) of the ``k`` candidate states farthest from the labelled states and from
    each other: greedy k-center, each pick the candidate farthest from everything labelled or picked.

    A periodic gait otherwise spends most labels on near-repeats of states already labelled. Distances are
    taken where the learner sees the states (normalized), so every coordinate counts on its own scale.
    """
    cands = th.as_tensor(candidates, dtype=th.float32)
    if normalizer is not None:
        cands = normalizer.torch(cands)
    dist = th.full((len(cands),), math.inf)
    for chunk in labelled.split(65_536):  # a full 1M buffer at once would be a 1000 x 1M matrix
        chunk = normalizer.torch(chunk) if normalizer is not None else chunk
        dist = th.minimum(dist, th.cdist(cands, chunk).min(1).values)
    picked = []
    for _ in range(k):
        i = int(dist.argmax())
        picked.append(i)
        dist = th.minimum(dist, (cands - cands[i]).norm(dim=1))
        dist[i] = -math.inf  # never twice, even among duplicate states
    return np.sort(picked)


def imitation_loss(learner: Learner, obs: np.ndarray, labels: np.ndarray) -> float:
    """How far the actions ``learner`` executes at ``obs`` are from the expert's ``labels``: mean squared
    difference (Box, both inside the bounds the env clips to) or the rate of disagreement (Discrete).

    On the states an iterate visited this is DAgger's on-policy loss, for whose best iterate its guarantee holds
    (Ross et al., 2011): a choice among iterates that needs no reward.
    """
    actions = learner(obs)
    if learner.discrete:
        return float((actions != np.asarray(labels)).mean())
    return float(np.square(actions - np.asarray(labels)).mean())


def validation_returns(candidates: list[Learner], env_id: EnvSpec | str, n_episodes: int) -> tuple[list[float], int]:
    """Each candidate's mean return on deterministic validation episodes (seeds of their own,
    :data:`VALIDATION_SEED`; they read the env's reward), and the env steps taken."""
    with EpisodeRunner(env_id, n_episodes, VALIDATION_SEED) as runner:
        scores = [float(runner(candidate, n_episodes).mean()) for candidate in candidates]
    return scores, runner.steps
