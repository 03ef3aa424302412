"""Env construction with errors a user can act on (unknown ids, MuJoCo XML that no longer parses)."""

from __future__ import annotations

import os
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from sb3_il.config import EnvSpec, TrainConfig
from sb3_il.errors import UserError, first_line


def _time_feature(env: gym.Env) -> gym.Env:
    from sb3_contrib.common.wrappers import TimeFeatureWrapper

    return TimeFeatureWrapper(env)


#: Env wrappers an expert's config.yml may name (RL Zoo's ``env_wrapper``), by import path. A downloaded file
#: chooses among these; any other path would be code it chose, so it is refused.
WRAPPERS: dict[str, Callable[[gym.Env], gym.Env]] = {"sb3_contrib.common.wrappers.TimeFeatureWrapper": _time_feature}


def wrapper_names(recorded: object, whose: str = "--env-wrapper") -> list[str]:
    """The wrappers a Zoo ``env_wrapper`` entry names (a path, a ``{path: kwargs}`` map, or a list of them);
    ``whose`` says where the entry came from (the expert's config.yml, a run's, the user's flag)."""
    entries = recorded if isinstance(recorded, list) else [] if recorded is None else [recorded]
    names = []
    for entry in entries:
        name, kwargs = next(iter(entry.items())) if isinstance(entry, dict) and len(entry) == 1 else (entry, None)
        if not isinstance(name, str) or name not in WRAPPERS or kwargs:
            fix = "pass --env-wrapper with the ones it needs, or another expert" if "expert" in whose else "drop it"
            raise UserError(
                f"{whose} {entry!r:.80} is not a wrapper sb3-il applies ({', '.join(WRAPPERS)}, without arguments); "
                + fix
            )
        names.append(name)
    return names


def make_env(spec: EnvSpec | str, render_mode: str | None = None) -> gym.Env:
    """``gym.make`` that turns registry and MuJoCo failures into one-line :class:`UserError` s.

    ``spec`` is a registered id, or an :class:`~sb3_il.config.EnvSpec` whose wrappers are applied in order
    from :data:`WRAPPERS`.
    """
    spec = spec if isinstance(spec, EnvSpec) else EnvSpec(spec)
    env = _make(spec.id, render_mode)
    for name in wrapper_names(list(spec.wrappers), f"{spec}'s wrapper"):
        env = WRAPPERS[name](env)
    return env


def _make(env_id: str, render_mode: str | None) -> gym.Env:
    # gymnasium reads ``module:Env`` as "import module first": an id must never choose code to import.
    if ":" in env_id or env_id not in gym.registry:
        raise UserError(f"unknown env {env_id!r}; use a registered gymnasium id such as Hopper-v4 or CartPole-v1")
    try:
        return gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as err:
        raise UserError(
            f"unknown env {env_id!r} ({first_line(err)}); use a gymnasium id such as Hopper-v4 or CartPole-v1"
        ) from None
    except ValueError as err:
        if "XML" in str(err):
            raise UserError(
                f"{env_id} does not build under the installed mujoco ({first_line(err)}); "
                "its XML predates mujoco 3, use another env (e.g. Hopper-v4, Ant-v4)"
            ) from None
        raise
    except ImportError as err:
        raise UserError(f"{env_id} needs an extra dependency: {err}; pip install 'gymnasium[mujoco]'") from None


def check_env_fits(config: TrainConfig, whose: str = "--env-wrapper") -> None:
    """The checks of ``config`` that need its env built, before anything is trained or written."""
    wrapper_names(config.env_wrapper, whose)
    env = make_env(config.env)
    env.close()
    if not config.expert and not (config.algo == "bc" and config.demos):  # BC on data needs no expert model
        raise UserError(
            f"no default expert for {config.env_id} in zoo_configs/experts.yml; "
            "pass --expert ORG/ALGO-ENV (a Hub repo such as sb3/sac-Hopper-v3) or a local model zip"
        )
    if config.jacobian_weight > 0 and not isinstance(env.action_space, gym.spaces.Box):
        raise UserError(f"--jacobian-weight needs continuous (Box) actions, {config.env_id} has {env.action_space}")
    # The buffer allocates lazily, so an impossible size would only fail once filled: check it up front.
    row = 4 * (int(np.prod(env.observation_space.shape)) + max(1, int(np.prod(env.action_space.shape))))
    needed = min(config.buffer_size, config.label_budget) * row
    if needed > available_memory():
        raise UserError(
            f"--buffer-size {config.buffer_size} needs {needed / 2**30:.1f} GiB for {config.env_id}'s labels, more "
            "than this machine has; lower it"
        )


def available_memory() -> int:
    """Bytes of physical memory (the buffer must fit in it)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
