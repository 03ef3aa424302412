"""PPO prepared for an imitation policy: an anchor that holds it, a critic warmed up first, calibrated noise.

A BC/DAgger policy loaded into PPO has an untrained value head (advantages are noise) and SB3's log-std
(std 1), far more noise than the action noise it was trained for, so naive ``learn`` acts mostly at random
and its first updates push the actor away from what it imitated. The pieces here, which
:func:`sb3_il.finetune.finetune` puts together:

* :func:`calibrate_log_std`: the largest exploration std the policy tolerates;
* :func:`warm_up_value_function`: fit the critic on the policy's own rollouts before any actor update;
* :class:`AnchoredPPO`: after each update, pull the actor back toward an anchor policy that ratchets up;
* :func:`anchor_strength`, :func:`kl_limit`: a fragile start (one that tolerates little noise) is pulled
  harder and its updates stop at a small KL.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import ConvertCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_il.config import EnvSpec
from sb3_il.evaluation import EpisodeRunner
from sb3_il.policy import actor_output, predict_fn


def use_fused_adam(model: PPO) -> None:
    """Give ``model``'s policy the fused Adam kernel: SB3 builds ``torch.optim.Adam`` with its default (a loop
    over parameters, several kernels each), and the fused one takes the same steps in one kernel per
    minibatch. The settings and any saved moments (a Hub expert's) carry over, so a saved zip loads as usual."""
    old = model.policy.optimizer
    if type(old) is not th.optim.Adam:
        return
    settings = {k: old.defaults[k] for k in ("lr", "betas", "eps", "weight_decay", "amsgrad")}
    new = th.optim.Adam(model.policy.parameters(), **settings, fused=True)
    for param in model.policy.parameters():
        if param in old.state:
            new.state[param] = {k: v.float() if k == "step" else v for k, v in old.state[param].items()}
    model.policy.optimizer = new


class AnchoredPPO(PPO):
    """PPO that, after every update, pulls the actor back toward an anchor policy on the rollout's states.

    The pull regresses the action means (logits for discrete actions) onto the frozen anchor's for
    ``anchor_coef × n_epochs`` epochs, the coefficient decaying linearly to 0 at ``anchor_until`` timesteps:
    early updates, driven by a critic that is still poor, cannot walk the policy away from what it
    imitated, and RL takes over gradually.

    The anchor starts as the imitation policy and ratchets: whenever the mean return of the last
    ``ratchet_episodes`` training episodes beats the anchor's, the current policy becomes the anchor.
    A near-expert start is then held where it is, while a poor start is not pulled back to its poor
    actions once RL has found better ones. Saves as a plain PPO zip (the anchor is not saved).
    """

    anchor: ActorCriticPolicy | None = None
    anchor_return: float = -math.inf
    anchor_coef: float = 0.0
    anchor_until: int = 1
    ratchet_episodes: int = 0
    #: (start, end, timesteps): the log-std ceiling's linear path; None: no ceiling.
    log_std_ceiling: tuple[float, float, int] | None = None

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "anchor"]

    def hold(self, coef: float, until: int, target_kl: float | None, ratchet_episodes: int,
             log_std_ceiling: tuple[float, float, int] | None = None) -> None:  # fmt: skip
        """Anchor the current policy: pulled toward with ``coef`` (decaying to 0 at ``until`` timesteps),
        updates stopped past ``target_kl``, the anchor ratcheting after ``ratchet_episodes`` better episodes, and
        the log-std held under ``log_std_ceiling``. A loaded model is built by ``PPO.load``: this sets the rest."""
        self.anchor = copy.deepcopy(self.policy)
        self.anchor_coef, self.anchor_until, self.target_kl = coef, until, target_kl
        self.ratchet_episodes, self.log_std_ceiling = ratchet_episodes, log_std_ceiling

    def recent_return(self) -> float | None:
        """Mean raw return of the last ``ratchet_episodes`` finished training episodes (None: too few)."""
        if self.ratchet_episodes <= 0 or len(self.ep_info_buffer) < self.ratchet_episodes:
            return None
        return float(np.mean([info["r"] for info in list(self.ep_info_buffer)[-self.ratchet_episodes :]]))

    def train(self) -> None:
        recent = self.recent_return()
        if self.anchor is not None and recent is not None and recent > self.anchor_return:
            self.anchor = copy.deepcopy(self.policy)  # the policy that collected the episodes just scored
            self.anchor_return = recent
            self.ep_info_buffer.clear()  # the next comparison scores only the new anchor's successors
        super().train()
        self.logger.record("train/anchor_return", self.anchor_return)
        if self.log_std_ceiling is not None:
            begin, end, until = self.log_std_ceiling
            with th.no_grad():
                self.policy.log_std.clamp_(max=begin + (end - begin) * min(1.0, self.num_timesteps / until))
        weight = self.anchor_coef * max(0.0, 1.0 - self.num_timesteps / self.anchor_until)
        epochs = math.ceil(weight * self.n_epochs)  # Adam steps have ~lr size whatever the loss scale:
        if self.anchor is None or epochs == 0:  # the pull is measured in epochs, like PPO's own update
            return
        obs = th.as_tensor(self.rollout_buffer.observations, dtype=th.float32).reshape(
            -1, *self.observation_space.shape
        )
        with th.no_grad():
            target = actor_output(self.anchor, obs)
        for _ in range(epochs):
            for idx in th.randperm(len(obs)).split(self.batch_size):
                loss = th.nn.functional.mse_loss(actor_output(self.policy, obs[idx]), target[idx])
                self.policy.optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
        self.logger.record("train/anchor_epochs", epochs)
        self.logger.record("train/anchor_loss", loss.item())


def warm_up_value_function(model: PPO, rollouts: int, epochs: int) -> None:
    """Fit the critic to the IL policy's returns with PPO's own rollout buffer, actor untouched.

    Each round collects ``n_steps`` with the current policy, computes GAE(λ) returns with the current
    critic (fitted value iteration: the bootstrap improves round by round) and regresses the critic on them.
    """
    model._setup_learn(total_timesteps=rollouts * model.n_steps, callback=None, reset_num_timesteps=True)
    critic = [*model.policy.mlp_extractor.value_net.parameters(), *model.policy.value_net.parameters()]
    optimizer = th.optim.Adam(critic, lr=1e-3)
    callback = ConvertCallback(None)
    callback.init_callback(model)
    for _ in range(rollouts):
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
        for _ in range(epochs):
            for batch in model.rollout_buffer.get(model.batch_size):
                values = model.policy.predict_values(batch.observations).flatten()
                loss = th.nn.functional.mse_loss(values, batch.returns)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    model.num_timesteps = 0  # the warm-up's env steps are reported separately, not counted as RL budget


#: A start calibrated to at most this log-std (std 0.08) is fragile: std 0.14 already cost it more than 10% of
#: its return. Evidence: reports/finetune-history/summary.md.
FRAGILE_LOG_STD = -2.5


def is_fragile(log_std: float | None) -> bool:
    return log_std is not None and log_std <= FRAGILE_LOG_STD


def anchor_strength(coef: float | None, log_std: float | None) -> float:
    """The anchor's pull in PPO epochs: ``coef`` if given, else 3 for a fragile start and 1 otherwise.

    A fragile near-expert policy loses return to the changes PPO's noisy early gradients make; a poor start
    needs room to improve.
    """
    if coef is not None:
        return coef
    return 3.0 if is_fragile(log_std) else 1.0


#: PPO's target_kl for a fragile start: the Zoo's settings, tuned for policies exploring at std 0.14, move one
#: exploring at std 0.05 much further in KL per update. Evidence: reports/finetune-history/summary.md.
FRAGILE_TARGET_KL = 0.003


def kl_limit(target_kl: float | None, log_std: float | None) -> float | None:
    """PPO's ``target_kl``: ``target_kl`` if given (0: none), else :data:`FRAGILE_TARGET_KL` for a fragile start.

    A poor start needs PPO's full updates to improve; on a near-expert one they are mostly the noise of
    advantage estimates, a random walk away from what it imitated, which the limit keeps short.
    """
    if target_kl is not None:
        return target_kl or None
    return FRAGILE_TARGET_KL if is_fragile(log_std) else None


#: Exploration log-stds tried by :func:`calibrate_log_std`, largest first (std 1, SB3's default, down to 0.05).
LOG_STD_CANDIDATES = (0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0)


def exploration_log_std(calibrated: float) -> float:
    """The log-std a start explores at, from its calibrated one: the smallest candidate for a fragile start,
    whose calibration can land on either of the two smallest (see :data:`FRAGILE_LOG_STD`)."""
    return LOG_STD_CANDIDATES[-1] if is_fragile(calibrated) else calibrated


def calibrate_log_std(
    model: PPO,
    obs_norm: VecNormalize | None,
    env_id: EnvSpec | str,
    seed: int,
    episodes: int = 5,
    keep: float = 0.9,
    scale: float | None = None,
    candidates: Sequence[float] = LOG_STD_CANDIDATES,
) -> tuple[float, int]:
    """The largest of ``candidates`` (largest first) whose sampled episodes lose at most ``1 - keep`` of
    ``scale`` (the expert's return; None: the deterministic return itself) against the deterministic ones.

    How much exploration noise a policy tolerates varies by orders of magnitude: a poor start has little
    to lose and needs the noise to improve, a near-expert one can lose half its return to a little. The
    loss is measured against what the task pays, not against the start's own return: noise costs a
    HalfCheetah policy some control penalty whatever it does. Episodes use seeds of their own (not the
    evaluation seeds), and their action samples a random stream of their own: fine-tuning draws the same
    numbers whatever the calibration tried. Returns (log-std, env steps used).
    """
    with EpisodeRunner(env_id, episodes, seed=10_000 * (seed + 1)) as runner, th.random.fork_rng():

        def score(deterministic: bool) -> float:
            return float(runner(predict_fn(model, obs_norm, deterministic), episodes).mean())

        th.manual_seed(seed)
        target = score(deterministic=True)
        target -= (1 - keep) * abs(target if scale is None else scale)
        for log_std in candidates:
            with th.no_grad():
                model.policy.log_std.fill_(log_std)
            if score(deterministic=False) >= target:
                break
    return log_std, runner.steps
