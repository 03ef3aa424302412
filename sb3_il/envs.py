"""Env construction with errors a user can act on (unknown ids, MuJoCo XML that no longer parses)."""

from __future__ import annotations

import gymnasium as gym

from sb3_il.config import UserError


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """``gym.make`` that turns registry and MuJoCo failures into one-line :class:`UserError` s."""
    try:
        return gym.make(env_id, render_mode=render_mode)
    except gym.error.Error as err:
        raise UserError(
            f"unknown env {env_id!r} ({err}); use a gymnasium id such as Hopper-v4 or CartPole-v1"
        ) from None
    except ValueError as err:
        if "XML" in str(err):
            raise UserError(
                f"{env_id} does not build under the installed mujoco ({str(err).splitlines()[0]}); "
                "its XML predates mujoco 3, use another env (e.g. Hopper-v4, Ant-v4)"
            ) from None
        raise
    except ImportError as err:
        raise UserError(f"{env_id} needs an extra dependency: {err}; pip install 'gymnasium[mujoco]'") from None
