"""The supervised fit at the heart of BC and every DAgger iteration: losses and a hand-written backward pass.

Box actions regress the action mean (MSE, optionally bounded or with a Sobolev term on the expert's
Jacobian); Discrete actions classify (cross-entropy). At the article's network size the loop is bound by
per-op overhead, not arithmetic, so gradients come from :func:`backprop` rather than autograd.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from torch.nn import functional as F

from sb3_il.buffer import ReplayBuffer
from sb3_il.config import TrainConfig
from sb3_il.policy import Learner, activate, activation_backward, actor_layers

Layers = list[tuple[th.nn.Parameter, th.nn.Parameter, str | None]]
Target = th.Tensor | tuple[th.Tensor, th.Tensor]


def fit(
    learner: Learner, optimizer: th.optim.Optimizer, buffer: ReplayBuffer, config: TrainConfig, generator: th.Generator
) -> float:
    """``config.grad_steps`` minibatch steps on ``buffer``; returns the mean loss.

    All minibatch indices are drawn up front. ``lr_schedule="cosine"`` anneals the learning rate to 0 over
    each fit (restarting every iteration), so each iteration ends on settled weights instead of wherever
    the last noisy high-lr step left them.
    """
    grad_steps, batch_size = config.grad_steps, config.batch_size
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    layers = actor_layers(learner.policy)
    all_obs, all_acts, all_jacobians = buffer.sample(grad_steps * batch_size, generator)
    if learner.normalizer is not None:
        all_obs = learner.normalizer.torch(all_obs)
    jacobians: Any = None
    if config.jacobian_weight > 0:
        if learner.normalizer is not None:  # the actor sees normalized obs: d/d normalized = d/d raw / scale
            all_jacobians = all_jacobians / learner.normalizer.scale
        jacobians = all_jacobians.split(batch_size)
    targets: Any = all_acts.split(batch_size)
    if config.bounded_loss and learner.action_bounds is not None:  # the ranges depend on the labels alone
        lower, upper = label_ranges(all_acts, *learner.action_bounds)
        targets = zip(lower.split(batch_size), upper.split(batch_size), strict=True)
    total = th.zeros(())
    for step, (obs, target) in enumerate(zip(all_obs.split(batch_size), targets, strict=True)):
        if config.lr_schedule == "cosine":
            for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
                group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * step / grad_steps))
        if jacobians is None:
            total += backprop(layers, obs, target, learner.discrete)
        else:
            total += sobolev_backprop(layers, obs, target, jacobians[step], config.jacobian_weight)
        optimizer.step()
    for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
        group["lr"] = peak
    return float(total) / grad_steps


def label_ranges(
    acts: th.Tensor, low: np.ndarray | th.Tensor, high: np.ndarray | th.Tensor
) -> tuple[th.Tensor, th.Tensor]:
    """(lower, upper): per action entry, the outputs the env turns into the labelled action. That is the
    label alone, or everything past the bound when the label sits on it (the env clips)."""
    low_t, high_t = (th.as_tensor(bound, dtype=acts.dtype) for bound in (low, high))
    return th.where(acts <= low_t, -math.inf, acts), th.where(acts >= high_t, math.inf, acts)


def residual(out: th.Tensor, target: Target) -> th.Tensor:
    """Box outputs minus their labels; for a (lower, upper) pair from :func:`label_ranges`, the distance to the
    range (0 inside it)."""
    return out - (out.clamp(*target) if isinstance(target, tuple) else target)


@th.no_grad()
def backprop(layers: Layers, obs: th.Tensor, target: Target, discrete: bool) -> th.Tensor:
    """The actor's loss on a batch, with its gradients written to each layer's ``.grad``.

    A hand-written backward pass for the MLP of :func:`sb3_il.policy.actor_layers`: autograd's bookkeeping
    costs more than the arithmetic at this size. Checked against autograd in tests/test_bc.py.
    """
    inputs, x = [], obs
    for weight, bias, activation in layers:
        inputs.append(x)
        x = activate(F.linear(x, weight, bias), activation)
    if discrete:
        log_probs = F.log_softmax(x, dim=1)
        loss = F.nll_loss(log_probs, target)
        grad = (log_probs.exp() - F.one_hot(target, x.shape[1])) / len(x)
    else:
        diff = residual(x, target)
        loss = diff.square().mean()
        grad = diff * (2.0 / diff.numel())
    for i in range(len(layers) - 1, -1, -1):
        weight, bias, _ = layers[i]
        weight.grad, bias.grad = grad.t() @ inputs[i], grad.sum(0)
        if i > 0:  # layer i's input is layer i-1's activation output
            grad = activation_backward(grad @ weight, inputs[i], layers[i - 1][2])
    return loss


def sobolev_backprop(layers: Layers, obs: th.Tensor, target: Target, jacobian: th.Tensor, weight: float) -> th.Tensor:
    """:func:`backprop`'s Box loss plus ``weight`` × the MSE between the actor's d action / d obs and the
    expert's ``jacobian`` (Sobolev training), with gradients written to each layer's ``.grad``.

    The actor's Jacobian is multiplied from the output side, where it has as many rows as actions. The loss
    differentiates through it, so this one uses autograd.
    """
    x, outputs = obs, []
    for weight_, bias, activation in layers:
        weight_.grad = bias.grad = None
        x = activate(F.linear(x, weight_, bias), activation)
        outputs.append(x)
    jac = None
    for (weight_, _, activation), out in zip(reversed(layers), reversed(outputs), strict=True):
        slope = activation_backward(th.ones_like(out), out, activation).unsqueeze(1)  # (batch, 1, width)
        jac = slope.transpose(1, 2) * weight_ if jac is None else (jac * slope) @ weight_
    loss = residual(x, target).square().mean() + weight * (jac - jacobian).square().mean()
    loss.backward()
    return loss.detach()
