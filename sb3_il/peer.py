"""The peer: ``imitation``'s own ``bc.BC`` and ``dagger.SimpleDAggerTrainer`` under our run's conditions.

Same policy (SB3 ``ActorCriticPolicy``, hidden ``net_arch``, ReLU), same demonstrations (our run's
``demos/``), same optimizer (Adam, our lr), same batch size, same gradient steps per round, same label
budget (rounds of at least ``steps_per_iter`` learner steps, β = 0), evaluated by our evaluator on the
same seeds. imitation's in-training rollout logging is switched off so its wall time is training only.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch as th
from imitation.algorithms import bc, dagger
from imitation.data.wrappers import RolloutInfoWrapper
from imitation.util.logger import configure
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from sb3_il.config import TrainConfig
from sb3_il.demos import load_demos
from sb3_il.envs import make_env
from sb3_il.evaluation import EVAL_SEED, EpisodeRunner
from sb3_il.experts import Expert, load_expert


class _ImitationExpert(BasePolicy):
    """Our expert as imitation's DAgger wants it: an SB3 ``BasePolicy`` with the env's spaces."""

    def __init__(self, expert: Expert, venv: DummyVecEnv) -> None:
        super().__init__(venv.observation_space, venv.action_space)
        self.expert = expert

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return th.as_tensor(self.expert(observation.numpy()))


def bc_trainer(config: TrainConfig, venv: DummyVecEnv, rng: np.random.Generator, demos: Any, logger: Any) -> bc.BC:
    """imitation's BC trainer with our article policy: the MLP, activation, batch size and learning rate."""
    policy = ActorCriticPolicy(venv.observation_space, venv.action_space, lambda _: config.lr,
                               net_arch=list(config.net_arch), activation_fn=nn.ReLU)  # fmt: skip
    return bc.BC(observation_space=venv.observation_space, action_space=venv.action_space, rng=rng, policy=policy,
                 demonstrations=demos, batch_size=config.batch_size, optimizer_kwargs=dict(lr=config.lr),
                 device="cpu", custom_logger=logger)  # fmt: skip


def run_peer(config: TrainConfig, our_run: Path) -> dict[str, Any]:
    """Train imitation's BC or DAgger like ``config`` on ``our_run``'s demos; returns the same result keys."""
    datasets.disable_progress_bars()  # imitation's DAgger saves its demos every round, each with a bar
    th.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    venv = DummyVecEnv([lambda: RolloutInfoWrapper(make_env(config.env))])
    venv.seed(config.seed)
    expert = load_expert(config.expert, venv)
    demos = load_demos(our_run / "demos").trajectories
    scratch = tempfile.TemporaryDirectory()  # imitation's logs and DAgger's demos; imitation would use /tmp
    logger = configure(scratch.name, format_strs=[])
    trainer_bc = bc_trainer(config, venv, rng, demos if config.algo == "bc" else None, logger)
    train_kwargs = dict(n_batches=config.grad_steps, log_rollouts_venv=None, progress_bar=False)
    start = time.perf_counter()
    with scratch:
        if config.algo == "bc":
            trainer_bc.train(**train_kwargs)
            labels, fits = sum(len(t) for t in demos), 1
        else:
            trainer = dagger.SimpleDAggerTrainer(
                venv=venv,
                scratch_dir=scratch.name,
                expert_policy=_ImitationExpert(expert, venv),
                rng=rng,
                expert_trajs=demos,
                beta_schedule=lambda _: 0.0,
                bc_trainer=trainer_bc,
                custom_logger=logger,
            )
            trainer.train(
                config.n_iters * config.steps_per_iter,
                rollout_round_min_episodes=1,
                rollout_round_min_timesteps=config.steps_per_iter,
                bc_train_kwargs=train_kwargs,
            )
            labels = sum(len(t) for t in trainer._all_demos)  # imitation keeps no public count
            fits = trainer.round_num
    train_wall_s = time.perf_counter() - start
    with EpisodeRunner(config.env, config.final_eval_episodes, EVAL_SEED) as runner:
        returns = runner(lambda obs: trainer_bc.policy.predict(obs, deterministic=True)[0], config.final_eval_episodes)
    venv.close()
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "expert_labels": int(labels),
        "grad_steps": config.grad_steps * fits,
        "train_wall_s": train_wall_s,
    }
