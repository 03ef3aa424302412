"""The learner: the article's MLP built as a plain SB3 ``PPO`` model, so its zip is a normal PPO zip.

Why PPO and not a custom module: ``PPO.load`` then needs no ``custom_objects`` or import of this package,
``model.predict(..., deterministic=True)`` returns exactly what we trained (the Gaussian mean, clipped to
the action bounds, or the argmax for discrete actions), and ``model.learn`` continues with RL.
Only the actor (``mlp_extractor.policy_net`` + ``action_net``) is trained by imitation; the value head is
left for RL fine-tuning to fit.

Observation standardization travels as ``vec_normalize.pkl`` (frozen ``VecNormalize`` statistics), the
convention RL Zoo users already load with ``VecNormalize.load``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from torch import nn
from torch.nn import functional as F

from sb3_il.files import atomic_write
from sb3_il.trust import load_model, read_vec_normalize

#: Anything that maps a batch of raw observations to env actions: experts, learners, loaded policies.
ActFn = Callable[[np.ndarray], np.ndarray]

POLICY_FILE = "policy.zip"
VEC_NORMALIZE_FILE = "vec_normalize.pkl"


class ObsNormalizer:
    """Frozen ``VecNormalize``-equivalent statistics (same formula, clip and epsilon)."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, clip_obs: float = 10.0, epsilon: float = 1e-8) -> None:
        self.mean, self.var, self.clip_obs, self.epsilon = (
            mean.astype(np.float64),
            var.astype(np.float64),
            clip_obs,
            epsilon,
        )
        self._mean_t = th.as_tensor(self.mean, dtype=th.float32)
        #: d normalized obs / d raw obs (inside the clip range), float32.
        self.scale = th.as_tensor(1.0 / np.sqrt(self.var + epsilon), dtype=th.float32)

    @classmethod
    def from_data(cls, obs: th.Tensor) -> ObsNormalizer:
        obs64 = obs.double()
        return cls(obs64.mean(0).numpy(), obs64.var(0, unbiased=False).numpy())

    def numpy(self, obs: np.ndarray) -> np.ndarray:
        """Exactly ``VecNormalize.normalize_obs``, so our actions match the saved artifact's bit for bit."""
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip_obs, self.clip_obs).astype(
            np.float32
        )

    def torch(self, obs: th.Tensor) -> th.Tensor:
        """Float32 version for the training loop."""
        return th.clamp((obs - self._mean_t) * self.scale, -self.clip_obs, self.clip_obs)

    def to_vec_normalize(self, venv: VecEnv) -> VecNormalize:
        vec_normalize = VecNormalize(
            venv, training=False, norm_obs=True, norm_reward=False, clip_obs=self.clip_obs, epsilon=self.epsilon
        )
        vec_normalize.obs_rms = RunningMeanStd(shape=self.mean.shape)
        vec_normalize.obs_rms.mean, vec_normalize.obs_rms.var = self.mean.copy(), self.var.copy()
        return vec_normalize


def use_one_thread() -> None:
    """One torch thread in this process: the MLPs here are latency-bound, so more threads only add
    synchronisation, and they would fight the evaluation worker (or the other parallel cells) for cores."""
    th.set_num_threads(1)


def make_learner(env: gym.Env, net_arch: list[int], seed: int) -> PPO:
    """A PPO model whose actor is the article's MLP (hidden ``net_arch``, ReLU, linear output)."""
    policy_kwargs = dict(net_arch=dict(pi=list(net_arch), vf=list(net_arch)), activation_fn=nn.ReLU)
    return PPO("MlpPolicy", env, policy_kwargs=policy_kwargs, seed=seed, device="cpu", verbose=0)


#: Activation modules the actor may use, by the name :func:`actor_layers` gives them.
ACTIVATIONS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Tanh: "tanh"}


def actor_layers(policy: ActorCriticPolicy) -> list[tuple[nn.Parameter, nn.Parameter, str | None]]:
    """The actor (``mlp_extractor.policy_net`` then ``action_net``) as (weight, bias, activation) layers.

    The tensors are the policy's own parameters. Walking them with ``F.linear`` computes exactly what the
    modules compute, without ~5 µs of module dispatch per layer: most of the cost at this network size.
    """
    layers: list[tuple[nn.Parameter, nn.Parameter, str | None]] = []
    for module in [*policy.mlp_extractor.policy_net, policy.action_net]:
        if isinstance(module, nn.Linear):
            layers.append((module.weight, module.bias, None))
        elif type(module) in ACTIVATIONS and layers and layers[-1][2] is None:
            layers[-1] = (*layers[-1][:2], ACTIVATIONS[type(module)])
        else:
            raise TypeError(f"the actor must be Linear layers with ReLU/Tanh activations, not {module!r}")
    return layers


def activate(x: th.Tensor, activation: str | None) -> th.Tensor:
    """The activation, in place on ``x`` (a layer's fresh output; autograd saves the result for both)."""
    if activation == "relu":
        return x.relu_()
    return x.tanh_() if activation == "tanh" else x


def activation_backward(grad: th.Tensor, h: th.Tensor, activation: str | None) -> th.Tensor:
    """Gradient through :func:`activate`, from its output ``h`` (ReLU: sign(h), 1 where h > 0, as h ≥ 0; tanh:
    1 - h²). ``sign`` rather than ``h > 0``: a float mask multiplies in a third of the time of a bool one."""
    if activation == "relu":
        return grad * th.sign(h)
    return grad * (1 - h * h) if activation == "tanh" else grad


def actor_output(policy: ActorCriticPolicy, obs: th.Tensor) -> th.Tensor:
    """Action means (Box) or logits (Discrete) for already-normalized flat observations; differentiable.

    Bit-identical to the modules ``policy.predict`` runs (whose features extractor is a ``Flatten``,
    a no-op on flat obs).
    """
    x = obs
    for weight, bias, activation in actor_layers(policy):
        x = activate(F.linear(x, weight, bias), activation)
    return x


@th.no_grad()
def pack_ensemble(policy: ActorCriticPolicy, members: list[ActorCriticPolicy]) -> None:
    """Write into ``policy``'s actor the mean of the ``members``' actors, whose hidden layers are each
    ``len(members)`` times narrower: the first layer stacks theirs, hidden layers are block-diagonal (no
    member sees another's units), and the output layer averages. Exact, so the ensemble saves and loads as
    one ordinary MLP policy, and RL fine-tuning may mix the blocks afterwards."""
    layers, per_member = actor_layers(policy), [actor_layers(member) for member in members]
    for i, (weight, bias, _) in enumerate(layers):
        weights = [member[i][0] for member in per_member]
        biases = [member[i][1] for member in per_member]
        if i == len(layers) - 1:
            weight.copy_(th.cat(weights, dim=1) / len(members))
            bias.copy_(th.stack(biases).mean(0))
        else:
            weight.copy_(th.cat(weights) if i == 0 else th.block_diag(*weights))
            bias.copy_(th.cat(biases))


def actor_parameters(policy: ActorCriticPolicy) -> list[nn.Parameter]:
    return [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]


class Learner:
    """The policy being trained plus its observation statistics; callable as ``obs batch -> actions``.

    Holds only the policy module (not the PPO model with its env), so a snapshot pickles cheaply for
    evaluation in a background process.
    """

    def __init__(self, policy: ActorCriticPolicy, normalizer: ObsNormalizer | None = None) -> None:
        self.policy = policy
        self.normalizer = normalizer
        space = policy.action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        self._low = None if self.discrete else space.low
        self._high = None if self.discrete else space.high

    @property
    def action_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of a Box action space, where the env clips; None for discrete actions."""
        return None if self.discrete else (self._low, self._high)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """What ``model.predict(deterministic=True)`` returns, without its per-call checks (hot path)."""
        if self.normalizer is not None:  # on the raw (float64) obs, exactly as VecNormalize does
            obs = self.normalizer.numpy(obs)
        with th.no_grad():
            out = actor_output(self.policy, th.as_tensor(obs, dtype=th.float32)).numpy()
        return out.argmax(axis=1) if self.discrete else np.clip(out, self._low, self._high)


def save_policy(model: PPO, normalizer: ObsNormalizer | None, folder: Path) -> None:
    """Write ``policy.zip`` (and ``vec_normalize.pkl``) atomically into ``folder``."""
    atomic_write(Path(folder) / POLICY_FILE, model.save)
    if normalizer is not None:
        atomic_write(Path(folder) / VEC_NORMALIZE_FILE, normalizer.to_vec_normalize(_spaces_venv(model)).save)


class _SpacesOnly(gym.Env):
    """A stand-in env carrying only spaces: VecNormalize needs a venv, but its pickle drops it."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space


def _spaces_venv(model: PPO) -> VecEnv:
    return DummyVecEnv([lambda: _SpacesOnly(model.observation_space, model.action_space)])


def load_run_model(folder: Path, trust_remote_code: bool = False) -> tuple[PPO, VecNormalize | None]:
    """Load a run's policy the way users do, ``PPO.load`` plus the frozen ``VecNormalize`` if there is one,
    with nothing in the files run as code (:mod:`sb3_il.trust`)."""
    folder = Path(folder)
    model = load_model(PPO, folder / POLICY_FILE, trust_remote_code=trust_remote_code)
    if not (folder / VEC_NORMALIZE_FILE).exists():
        return model, None
    vec_normalize = read_vec_normalize(folder / VEC_NORMALIZE_FILE, trust_remote_code)
    vec_normalize.set_venv(_spaces_venv(model))
    vec_normalize.training = False
    return model, vec_normalize


def predict_fn(
    model: PPO, vec_normalize: VecNormalize | None, deterministic: bool = True
) -> Callable[[np.ndarray], np.ndarray]:
    """A loaded (or training) PPO model as ``raw obs batch -> actions``, as users run it."""

    def act(obs: np.ndarray) -> np.ndarray:
        policy_obs = vec_normalize.normalize_obs(obs) if vec_normalize is not None else obs
        return model.predict(policy_obs, deterministic=deterministic)[0]

    return act
