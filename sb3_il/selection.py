"""DAgger's two choices beyond the article: which visited states the expert labels, and which iterate to keep."""

from __future__ import annotations

import math

import numpy as np
import torch as th

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


def select_best(
    learner: Learner, candidates: list[Learner], env_id: str, n_episodes: int
) -> tuple[int, list[float], int]:
    """Make ``learner`` the candidate with the best mean return over validation episodes.

    DAgger's guarantee (Ross et al., 2011) is for the best policy of the sequence, not the last. The
    episodes are deterministic, on seeds of their own (:data:`VALIDATION_SEED`); they cost env steps, not
    expert labels, and read the env's reward. Returns (index of the chosen candidate, each candidate's
    validation return, env steps taken).
    """
    runner = EpisodeRunner(env_id, n_episodes, VALIDATION_SEED)
    try:
        scores = [float(runner(candidate, n_episodes).mean()) for candidate in candidates]
    finally:
        runner.close()
    best = int(np.argmax(scores))
    learner.policy.load_state_dict(candidates[best].policy.state_dict())
    learner.normalizer = candidates[best].normalizer
    return best, scores, runner.steps
