"""Run configuration: one dataclass, filled from ``zoo_configs/{algo}.yml`` and then CLI overrides.

Defaults are the reference article's settings; the YAML files (RL Zoo style, keyed by env id) hold the
per-env choices, chiefly which Hub expert to imitate. A run writes the resolved config as ``config.yml``
so that ``--config-file runs/.../config.yml`` reproduces it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ZOO_CONFIGS = Path(__file__).resolve().parent.parent / "zoo_configs"
ALGOS = ("bc", "dagger")


class UserError(Exception):
    """Bad input: the CLI prints the one-line message (which says how to fix it) and exits with code 2."""


@dataclass
class TrainConfig:
    """Everything that determines a BC or DAgger run."""

    algo: str = "dagger"
    env_id: str = "Hopper-v4"
    #: Hub repo of the expert (``sb3/{algo}-{env}``); the zoo config supplies a default per env.
    expert: str | None = None
    seed: int = 0
    #: Expert transitions to train on: whole episodes are collected (and saved) until there are this many,
    #: and exactly this many count against the label budget.
    n_demo_steps: int = 1000
    #: DAgger iterations after the initial fit on the demonstrations; each first collects
    #: ``steps_per_iter`` learner steps and relabels them with the expert. BC is iteration 0 alone.
    n_iters: int = 10
    steps_per_iter: int = 1000
    #: DAgger visits this many times ``steps_per_iter`` learner states per iteration and has the expert
    #: label only the ``steps_per_iter`` the dataset covers least (:func:`sb3_il.trainers.select_uncovered`).
    #: Env steps are cheap and labels are the budget: a periodic gait otherwise spends most labels on
    #: near-repeats of states already labelled. 1: label every visited state (the article).
    candidates_per_label: int = 1
    #: Each iteration's collection starts a fresh episode (the article); with False an episode cut off
    #: by the end of an iteration goes on in the next, so short iterations still visit late states.
    reset_each_iter: bool = True
    grad_steps: int = 1000
    batch_size: int = 100
    lr: float = 5e-3
    #: "constant" (the article) or "cosine": annealed to 0 within every iteration's fit.
    lr_schedule: str = "constant"
    #: MSE that ignores the error of an output beyond an action bound when the expert's label is on that
    #: bound (the env clips both to the same action). Experts that saturate (a third of trpo Hopper's
    #: action entries are at ±1) otherwise cost fitting capacity on an exact 1.0.
    bounded_loss: bool = False
    #: Sobolev training: weight of a second loss, on the actor's d action / d observation against the
    #: expert's (Box actions). Each labelled state then teaches how the action changes around it, not just
    #: the action; the expert is a network we hold, so the same query answers both. 0: actions only.
    jacobian_weight: float = 0.0
    buffer_size: int = 1_000_000
    #: Probability of executing the expert's action while DAgger collects: "0" (always the learner,
    #: the article), "linear:N" (1 -> 0 over N iterations) or "exp:P" (P**iteration).
    beta_schedule: str = "0"
    #: Perturbation of executed actions while collecting demos and DAgger data (labels stay clean): Gaussian
    #: std as a fraction of half the action range (Box), or random-action probability (Discrete). 0: none.
    noise: float = 0.0
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    #: Independent actors of ``net_arch``, each fitted on the same labels with its own initialization and
    #: minibatches; the learner acts with their mean. They are packed into one MLP of ``ensemble`` times
    #: the width (block-diagonal weights, :func:`sb3_il.policy.pack_ensemble`), so the output is still a plain
    #: PPO policy. Averaging cancels part of each fit's noise, which on a hard expert swings single runs by
    #: tens of points. Each actor takes ``grad_steps`` per fit; the gradient steps a run reports are one
    #: actor's, so an ensemble does ``ensemble`` times that work. 1: one actor (the article).
    ensemble: int = 1
    #: Keep the best of the last ``select_last`` iterates instead of the last (DAgger's guarantee is for the
    #: best policy of the sequence), judged on ``select_episodes`` deterministic validation episodes per
    #: candidate, on seeds apart from the evaluation's. They cost env steps (counted), no expert labels.
    #: 0 or 1: the last iterate (the article).
    select_last: int = 0
    select_episodes: int = 20
    #: Standardize observations with statistics of the training data (saved as vec_normalize.pkl).
    normalize: bool = True
    #: Episodes per evaluation after each iteration (0: none, the curve has gaps), and for the final
    #: learner/expert numbers.
    eval_episodes: int = 5
    final_eval_episodes: int = 20
    #: Evaluate in a second process while training goes on (same numbers, less wall time on 2+ cores).
    background_eval: bool = True
    #: Reuse saved demonstrations (imitation's format) instead of querying the expert for them.
    demos: str | None = None

    def validate(self) -> None:
        """Reject settings that would crash later or silently train nothing."""
        if self.algo not in ALGOS:
            raise UserError(f"unknown algo {self.algo!r}; use one of {', '.join(ALGOS)}")
        if self.algo == "dagger" and int(self.n_iters) <= 0:
            raise UserError(f"--n-iters must be a positive integer for dagger, got {self.n_iters}")
        for name in (
            "n_demo_steps",
            "steps_per_iter",
            "candidates_per_label",
            "ensemble",
            "grad_steps",
            "batch_size",
            "buffer_size",
            "final_eval_episodes",
            "select_episodes",
        ):
            if int(getattr(self, name)) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if int(self.select_last) < 0:
            raise UserError(f"--select-last must be 0 (keep the last iterate) or more, got {self.select_last}")
        if int(self.eval_episodes) < 0:
            raise UserError(f"--eval-episodes must be 0 (final evaluation only) or more, got {self.eval_episodes}")
        if not 0 <= self.noise <= 1:
            raise UserError(f"--noise must be in [0, 1], got {self.noise}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"--lr-schedule must be constant or cosine, got {self.lr_schedule!r}")
        if not self.jacobian_weight >= 0:
            raise UserError(f"--jacobian-weight must be 0 (off) or more, got {self.jacobian_weight}")
        if not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")
        if not self.net_arch or any(int(n) <= 0 for n in self.net_arch):
            raise UserError(f"net_arch must be a list of positive layer sizes, got {self.net_arch}")
        if self.candidates_per_label > 1 and str(self.beta_schedule) != "0":
            raise UserError(
                "--candidates-per-label > 1 needs --beta-schedule 0: each state where the expert acts is a query "
                "beyond the label budget"
            )
        from sb3_il.envs import make_env
        from sb3_il.trainers import parse_beta_schedule

        parse_beta_schedule(self.beta_schedule)
        env = make_env(self.env_id)
        env.close()
        if self.jacobian_weight > 0 and len(env.action_space.shape) != 1:
            raise UserError(f"--jacobian-weight needs continuous (Box) actions, {self.env_id} has {env.action_space}")
        if not self.expert:
            raise UserError(
                f"no default expert for {self.env_id} in zoo_configs/{self.algo}.yml; "
                "pass --expert ORG/ALGO-ENV (a Hub repo such as sb3/sac-Hopper-v3)"
            )

    @property
    def run_name(self) -> str:
        return f"{self.algo}-{self.env_id}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def zoo_hyperparams(
    algo: str, env_id: str, config_name: str | None = None, expert: str | None = None
) -> dict[str, Any]:
    """The Zoo-style entry for ``env_id`` in ``zoo_configs/{algo}[-{config_name}].yml`` (empty if absent).

    An entry's optional ``by_expert`` map (Hub repo -> keys) adjusts it when imitating another expert than
    the entry's own: what suits one expert's labels need not suit another's on the same env.
    """
    stem = algo if config_name in (None, "article") else f"{algo}-{config_name}"
    path = ZOO_CONFIGS / f"{stem}.yml"
    if not path.exists():
        choices = sorted(p.stem for p in ZOO_CONFIGS.glob(f"{algo}*.yml"))
        raise UserError(f"no config {path.name}; available: {', '.join(choices)}")
    table = yaml.safe_load(path.read_text()) or {}
    entry = dict(table.get(env_id, {}))
    by_expert = entry.pop("by_expert", None) or {}
    return entry | by_expert.get(expert or entry.get("expert"), {})


def make_config(
    algo: str, env_id: str, overrides: dict[str, Any], config_name: str | None = None, config_file: str | None = None
) -> TrainConfig:
    """Defaults < zoo config for (algo, env) < ``config_file`` (a saved run's config.yml) < CLI overrides."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values.update(yaml.safe_load(Path(config_file).read_text()))
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"cannot read config file {config_file}: {err}".splitlines()[0]) from None
        algo, env_id = values.get("algo", algo), values.get("env_id", env_id)
    else:
        values.update(zoo_hyperparams(algo, env_id, config_name, overrides.get("expert")))
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.update(algo=algo, env_id=env_id)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(f"unknown config keys {unknown}; valid keys: {', '.join(sorted(known))}")
    if algo == "bc":
        values["n_iters"] = 0
    config = TrainConfig(**values)
    config.validate()
    return config
