"""Run configuration: dataclasses filled from the defaults, a named zoo config, a saved config.yml and CLI flags.

Defaults are the reference article's settings. ``zoo_configs/`` (package data, RL Zoo style, keyed by env id)
holds the default expert per env (``experts.yml``), named configs such as ``dagger-strong.yml`` and PPO's
fine-tuning settings. A run writes its resolved config as ``config.yml``; ``--config-file`` replays it.
Each field's ``help`` is the one description of the setting: the CLI's ``--help`` and the docs read it.

This module imports no env, model or trainer, so every other module (and a fast ``--help``) may use it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sb3_il.errors import UserError
from sb3_il.inputs import read_yaml

ALGOS = ("bc", "dagger")
#: Most episodes one evaluation runs: it steps them in chunks, but each is still minutes of simulation.
MAX_EVAL_EPISODES = 10_000
ARTICLE = "article"


@dataclass(frozen=True)
class EnvSpec:
    """An env as a run builds it: a registered gymnasium id and the wrappers applied to it, in order (names
    from :data:`sb3_il.envs.WRAPPERS`). A value, passed whole to every process that builds the env
    (:func:`sb3_il.envs.make_env`); ``str()`` only names it (in messages and cache keys)."""

    id: str
    wrappers: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "|".join([self.id, *self.wrappers])


def package_version() -> str:
    """sb3-il's installed version (recorded with a run's data)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sb3-il")
    except PackageNotFoundError:
        return "unknown"


def setting(default: Any = dataclasses.MISSING, help: str = "", flag: str | None = None, **kwargs: Any) -> Any:
    """A config field with its help text (and, for a bool, the CLI flag that flips it from its default)."""
    metadata = {"help": help} | ({"flag": flag} if flag else {})
    return field(default=default, metadata=metadata, **kwargs)


@dataclass
class TrainConfig:
    """Everything that determines a BC or DAgger run."""

    algo: str = setting("dagger", "bc (one fit on expert demonstrations) or dagger")
    env_id: str = setting("Hopper-v4", "gymnasium env id, e.g. Ant-v4")
    expert: str | None = setting(
        None, "the expert: a Hub repo (ORG/ALGO-ENV, e.g. sb3/sac-Hopper-v3) or a local SB3 zip; default per env"
    )
    seed: int = setting(0, "seed of everything random in the run (evaluation seeds are fixed apart)")
    n_demo_steps: int = setting(
        1000, "expert transitions to train on first: whole episodes are collected, this many count as labels"
    )
    n_iters: int = setting(10, "DAgger iterations after the fit on the demonstrations (bc: 0)")
    steps_per_iter: int = setting(1000, "learner steps each DAgger iteration collects and has the expert label")
    candidates_per_label: int = setting(
        1,
        "visit this many times --steps-per-iter learner states per iteration and label only the least covered "
        "(k-center): env steps are cheap, labels are the budget; 1: label every visited state",
    )
    reset_each_iter: bool = setting(
        True,
        "each iteration's collection starts a fresh episode; --continue-episodes goes on with the one cut off",
        flag="--continue-episodes",
    )
    grad_steps: int = setting(1000, "gradient steps per fit (one fit per iteration)")
    batch_size: int = setting(100, "minibatch size")
    lr: float = setting(5e-3, "Adam learning rate")
    lr_schedule: str = setting("constant", "constant, or cosine: annealed to 0 within every fit")
    bounded_loss: bool = setting(
        False, "no loss for an output past an action bound when the label sits on it (the env clips both)"
    )
    jacobian_weight: float = setting(
        0.0, "Sobolev loss: weight of the MSE on the expert's d action / d observation (Box actions); 0: off"
    )
    jacobian_rows: int = setting(0, "rows of each minibatch the Sobolev term sees (0: all); its cost scales with them")
    buffer_size: int = setting(1_000_000, "capacity of the aggregated dataset (FIFO beyond it)")
    beta_schedule: str = setting(
        "0", "probability of executing the expert's action while collecting: 0, linear:N or exp:P"
    )
    noise: float = setting(
        0.0, "perturb executed actions while collecting (Gaussian std as a fraction of half the range); labels clean"
    )
    net_arch: list[int] = setting(help="hidden layer sizes of the MLP", default_factory=lambda: [64, 64])
    ensemble: int = setting(
        1, "independent actors fitted on the same labels, acting with their mean (saved as one wider MLP)"
    )
    select_last: int = setting(0, "keep the best of the last N iterates (see --select-by); 0 or 1: the last")
    select_by: str = setting(
        "loss",
        "how --select-last judges an iterate: loss, its imitation loss on the states it visited, which the next "
        "iteration labels anyway (reward-free; the last iterate's collection is labelled for it, within the budget), "
        "or return, on --select-episodes validation episodes (reads the env's reward)",
    )
    select_episodes: int = setting(20, "validation episodes per candidate iterate (--select-by return)")
    adapt: bool = setting(
        False,
        "the strong recipe: set the net width, learning rate, ensemble, bounded loss and Sobolev term from what the "
        "run observes about the expert (sb3_il/recipe.py); config.yml records the resolved values",
        flag="--adapt",
    )
    normalize: bool = setting(
        True, "standardize observations with the data's statistics (saved as vec_normalize.pkl)", flag="--no-normalize"
    )
    eval_episodes: int = setting(5, "evaluation episodes after each iteration (0: the final evaluation only)")
    final_eval_episodes: int = setting(20, "evaluation episodes of the final policy and of the expert")
    background_eval: bool = setting(
        True, "evaluate in a second process while training goes on (same numbers)", flag="--no-background-eval"
    )
    demos: str | None = setting(
        None, "train on demonstrations: a run's demos/ folder, hf://datasets/USER/NAME[@rev] or minari:DATASET_ID"
    )
    env_wrapper: list[str] = setting(
        help="env wrappers the expert was trained with (default: what its config.yml records, as the RL Zoo applies "
        "them); the learner sees the wrapped env too",
        default_factory=list,
    )

    def validate(self) -> None:
        """Reject settings that would crash later or silently train nothing (no env needed)."""
        check_fields(self)
        if self.algo not in ALGOS:
            raise UserError(f"unknown algo {self.algo!r}; use one of {', '.join(ALGOS)}")
        if self.algo == "dagger" and self.n_iters <= 0:
            raise UserError(f"--n-iters must be a positive integer for dagger, got {self.n_iters}")
        positive = ("n_demo_steps", "steps_per_iter", "candidates_per_label", "ensemble", "grad_steps", "batch_size")
        for name in (*positive, "buffer_size", "final_eval_episodes", "select_episodes"):
            _check_range(name, getattr(self, name), 1)
        for name in ("seed", "select_last", "eval_episodes", "n_iters"):
            _check_range(name, getattr(self, name), 0)
        if not 0 <= self.noise <= 1:
            raise UserError(f"--noise must be in [0, 1], got {self.noise}")
        if self.select_by not in ("loss", "return"):
            raise UserError(f"--select-by must be loss or return, got {self.select_by!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"--lr-schedule must be constant or cosine, got {self.lr_schedule!r}")
        if not self.jacobian_weight >= 0:
            raise UserError(f"--jacobian-weight must be 0 (off) or more, got {self.jacobian_weight}")
        if self.jacobian_rows < 0:
            raise UserError(f"--jacobian-rows must be 0 (all) or more, got {self.jacobian_rows}")
        if not 0 < self.lr <= 1:
            raise UserError(f"--lr must be > 0 and at most 1, got {self.lr}")
        if not self.net_arch or any(n <= 0 for n in self.net_arch):
            raise UserError(f"--net-arch must be positive layer sizes, got {self.net_arch}")
        if self.candidates_per_label > 1 and str(self.beta_schedule) != "0":
            raise UserError(
                "--candidates-per-label > 1 needs --beta-schedule 0: each state where the expert acts is a query "
                "beyond the label budget"
            )
        parse_beta_schedule(self.beta_schedule)
        check_env_id(self.env_id)

    @property
    def env(self) -> EnvSpec:
        """The env as :func:`sb3_il.envs.make_env` builds it: the id and its wrappers."""
        return EnvSpec(self.env_id, tuple(self.env_wrapper))

    @property
    def run_name(self) -> str:
        return f"{self.algo}-{self.env_id}-s{self.seed}"

    @property
    def selects_by_loss(self) -> bool:
        return self.select_last > 1 and self.select_by == "loss"

    @property
    def label_budget(self) -> int:
        """Expert labels the run asks for: demonstrations, each iteration's, and the last iterate's scoring."""
        return self.n_demo_steps + (self.n_iters + self.selects_by_loss) * self.steps_per_iter

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FinetuneConfig:
    """A PPO fine-tuning run of an imitation policy (``sb3_il.finetune``)."""

    env_id: str | None = setting(None, "gymnasium env id (default: the run's)")
    env_wrapper: list[str] = setting(
        help="env wrappers the policy acts under (default: the run's, as its config.yml records them)",
        default_factory=list,
    )
    timesteps: int = setting(200_000, "PPO timesteps")
    seed: int = setting(0, "PPO seed")
    mode: str = setting(
        "prepared", "prepared (warm-up, calibrated noise, anchor), naive (PPO.load + learn) or scratch (fresh PPO)"
    )
    init_log_std: float | None = setting(
        None,
        "exploration log-std at the start (default: calibrated, the largest whose sampled episodes lose at most "
        "10% of the expert's return, up to the env's max_log_std in zoo_configs/ppo.yml)",
    )
    vf_warmup_rollouts: int = setting(10, "critic-only rollouts before PPO updates the actor (0: off)")
    vf_warmup_epochs: int = setting(10, "critic passes over each warm-up rollout")
    anchor_coef: float | None = setting(
        None, "pull toward the anchor policy after each update, in PPO epochs (0: off; default: 3 fragile, else 1)"
    )
    target_kl: float | None = setting(
        None, "stop an update's epochs once the mean KL passes 1.5x this (0: no limit; default: 0.003 if fragile)"
    )
    anchor_fraction: float = setting(2.0, "the pull decays to 0 over this multiple of --timesteps")
    ratchet_episodes: int = setting(
        5, "the current policy becomes the anchor when its last N training episodes beat it (0: fixed anchor)"
    )
    final_log_std: float | None = setting(
        -2.5, "the exploration log-std's ceiling falls linearly to this by the end (at or above the start: off)"
    )
    eval_every: int = setting(10_000, "timesteps between evaluations")
    eval_episodes: int = setting(50, "deterministic episodes per evaluation, on fixed seeds")
    ppo: dict[str, Any] | None = setting(None, "PPO settings over zoo_configs/ppo.yml's for the env")

    def validate(self) -> None:
        check_fields(self)
        if self.env_id is None:
            raise UserError("pass --env ENV_ID: the source does not name its env")
        check_env_id(self.env_id)
        if self.mode not in FINETUNE_MODES:
            raise UserError(f"--mode must be one of {', '.join(FINETUNE_MODES)}, got {self.mode!r}")
        for name in ("timesteps", "eval_every", "eval_episodes"):
            _check_range(name, getattr(self, name), 1)
        for name in ("seed", "vf_warmup_rollouts", "vf_warmup_epochs", "ratchet_episodes"):
            _check_range(name, getattr(self, name), 0)
        for name in ("anchor_coef", "target_kl"):
            if getattr(self, name) is not None:
                _check_range(name, getattr(self, name), 0)
        if not self.anchor_fraction > 0:
            raise UserError(f"--anchor-fraction must be > 0, got {self.anchor_fraction}")
        if self.init_log_std is not None and not -20 <= self.init_log_std <= 2:
            raise UserError(f"--init-log-std must be in [-20, 2], got {self.init_log_std}")

    @property
    def env(self) -> EnvSpec:
        return EnvSpec(str(self.env_id), tuple(self.env_wrapper))


FINETUNE_MODES = ("prepared", "naive", "scratch")


def _check_range(name: str, value: float, low: float) -> None:
    if not value >= low:
        what = "a positive integer" if low == 1 else f"{low} or more"
        raise UserError(f"--{name.replace('_', '-')} must be {what}, got {value}")


def check_fields(config: Any) -> None:
    """Each field holds a value of its declared type (finite numbers): config files are user input."""
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), str(f.type)
        if value is None and "None" in kind:
            continue
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "list[int]": isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
            "dict[str, Any]": isinstance(value, dict),
        }[kind.split(" |")[0]]
        if not ok:
            raise UserError(f"{f.name} must be {kind.split(' |')[0]}, got {value!r}")


def check_env_id(env_id: str) -> None:
    """A registered gymnasium id (a registry lookup, no env built: :func:`sb3_il.envs.check_env_fits` builds it)."""
    import gymnasium

    if env_id not in gymnasium.registry:
        raise UserError(f"unknown env {env_id!r}; use a gymnasium id such as Hopper-v4 or CartPole-v1")


def parse_beta_schedule(spec: str) -> Callable[[int], float]:
    """β(iteration) = probability of executing the expert's action while DAgger collects (iteration ≥ 1)."""
    kind, _, arg = str(spec).partition(":")
    try:
        if kind == "0" and not arg:
            return lambda it: 0.0
        if kind == "linear" and int(arg) > 0:
            return lambda it: max(0.0, 1.0 - it / int(arg))
        if kind == "exp" and 0 <= float(arg) <= 1:
            return lambda it: float(arg) ** it
    except ValueError:
        pass
    raise UserError(f"bad --beta-schedule {spec!r}; use 0, linear:N (N > 0) or exp:P (0 <= P <= 1)")


def zoo_file(name: str) -> Any:
    """A YAML file of the packaged ``zoo_configs`` (safe loader: data only)."""
    return yaml.safe_load(resources.files("sb3_il.zoo_configs").joinpath(name).read_text()) or {}


def config_names(algo: str) -> list[str]:
    stems = [p.name[: -len(".yml")] for p in resources.files("sb3_il.zoo_configs").iterdir() if p.name.endswith(".yml")]
    return [ARTICLE] + sorted(s.split("-", 1)[1] for s in stems if s.startswith(f"{algo}-"))


def default_expert(env_id: str) -> str | None:
    return zoo_file("experts.yml").get(env_id)


def zoo_hyperparams(algo: str, env_id: str, config_name: str | None = None) -> dict:
    """The entry for ``env_id`` in ``zoo_configs/{algo}-{config_name}.yml`` (the article's config: none).

    A file's ``default`` entry applies to every env; an env's own entry is layered on it. Nothing is keyed by
    expert: what depends on the expert follows from what a run observes (``adapt``, :mod:`sb3_il.recipe`).
    """
    if config_name in (None, ARTICLE):
        return {}
    if config_name not in config_names(algo):
        raise UserError(f"no config {algo}-{config_name}.yml; available: {', '.join(config_names(algo))}")
    table = zoo_file(f"{algo}-{config_name}.yml")
    return dict(table.get("default", {})) | dict(table.get(env_id, {}))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A saved run's ``config.yml`` as a mapping, or a one-line error (it is user input)."""
    values = read_yaml(Path(path), "pass a run's config.yml")
    if not isinstance(values, dict):
        raise UserError(f"config file {path} must be a mapping of settings (a run's config.yml), not {values!r:.40}")
    return values


def make_config(
    algo: str | None,
    env_id: str | None,
    overrides: dict[str, Any],
    config_name: str | None = None,
    config_file: str | None = None,
) -> TrainConfig:
    """Defaults < zoo config for (algo, env) < ``config_file`` (a saved run's config.yml) < CLI overrides.

    ``algo`` and ``env_id`` may be None with a config file (it names them); given, they must agree with it.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(read_config_file(config_file))
        for flag, name, given in (("--algo", "algo", algo), ("--env", "env_id", env_id)):
            if given is not None and values.get(name, given) != given:
                raise UserError(f"{flag} {given} conflicts with the config file's {name} {values[name]}; drop {flag}")
        if config_name is not None:
            raise UserError("--config and --config-file both choose settings; pass one")
        algo, env_id = values.get("algo", algo), values.get("env_id", env_id)
    if config_file is not None and env_id is None:
        raise UserError(f"config file {config_file} names no env_id; add `env_id: ENV` to it or pass --env ENV_ID")
    if algo is None or env_id is None:
        raise UserError("pass --env ENV_ID (e.g. --env Hopper-v4) or --config-file runs/<run>/config.yml")
    if config_file is None:
        values["expert"] = default_expert(env_id)
        values.update(zoo_hyperparams(algo, env_id, config_name))
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


def with_label_budget(config: TrainConfig, budget: int) -> TrainConfig:
    """The same recipe asking the expert for ``budget`` labels: DAgger spends what the demonstrations leave on
    as many iterations of the recipe's size as fit (the last iterate's scoring collection included); BC fits
    on ``budget`` demonstration steps. ``config.yml`` records the result, so a replay asks for as many."""
    if budget < 1:
        raise UserError(f"--label-budget must be a positive integer, got {budget}")
    if config.algo == "bc":
        return dataclasses.replace(config, n_demo_steps=budget)
    n_iters = dagger_iterations(config, budget)
    if n_iters < 1:
        scoring = config.steps_per_iter if config.selects_by_loss else 0
        least = config.n_demo_steps + scoring + config.steps_per_iter
        raise UserError(f"--label-budget {budget} leaves no DAgger iteration after {config.n_demo_steps} "
                        f"demonstration labels; pass at least {least}, or lower --n-demo-steps")  # fmt: skip
    return dataclasses.replace(config, n_iters=n_iters)


def dagger_iterations(config: TrainConfig, budget: int) -> int:
    """How many of ``config``'s DAgger iterations ``budget`` labels pay for, after the demonstrations and the
    last iterate's scoring collection (< 1: not one)."""
    scoring = config.steps_per_iter if config.selects_by_loss else 0
    return (budget - config.n_demo_steps - scoring) // config.steps_per_iter


def ppo_hyperparams(env_id: str) -> dict[str, Any]:
    """PPO's settings for fine-tuning on ``env_id``: ``zoo_configs/ppo.yml``'s default, then the env's entry."""
    table = zoo_file("ppo.yml")
    return dict(table["default"]) | dict(table.get(env_id, {}))
