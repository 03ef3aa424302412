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


class Adam:
    """``torch.optim.Adam(fused=True)``'s update (bias-corrected, no weight decay) on one flat parameter tensor.

    It calls the fused kernel that ``torch.optim.Adam`` itself calls, once per step: around it,
    ``Adam.step`` spends 40-90 µs in Python at this network size, more than the whole forward and backward
    pass. The moments persist across fits, as the optimizer's state did. tests/test_bc.py checks the
    update against ``torch.optim.Adam``'s.
    """

    def __init__(self, size: int, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg, self.exp_avg_sq, self.steps = th.zeros(size), th.zeros(size), th.zeros(())

    def step(self, params: th.Tensor, grad: th.Tensor, lr: float) -> None:
        self.steps += 1  # the kernel reads the count, as torch.optim.Adam increments it first
        th._fused_adam_([params], [grad], [self.exp_avg], [self.exp_avg_sq], [], [self.steps], lr=lr,
                        beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps, amsgrad=False,
                        maximize=False)  # fmt: skip


class FlatActor:
    """The actor's layers as views into one flat tensor (and its gradient as views into another), so the
    backward pass writes gradients in place and :class:`Adam` updates one tensor. Built from the policy at
    the start of a fit and written back at its end."""

    def __init__(self, policy: Any) -> None:
        self.modules = actor_layers(policy)
        self.params = th.cat([t.detach().reshape(-1) for w, b, _ in self.modules for t in (w, b)])
        self.grad = th.zeros_like(self.params)
        self.layers, self.grads = self.views(self.params), self.views(self.grad)
        self.transposed = [weight.t() for weight, _, _ in self.layers]  # views too: made once, not every step

    def views(self, flat: th.Tensor) -> Layers:
        """(weight, bias, activation) views of ``flat`` in the layout of the policy's layers."""
        views, start = [], 0
        for weight, bias, activation in self.modules:
            end = start + weight.numel()
            views.append((flat[start:end].view_as(weight), flat[end : end + bias.numel()], activation))
            start = end + bias.numel()
        return views

    @th.no_grad()
    def store(self) -> None:
        for (weight, bias, _), (w, b, _) in zip(self.modules, self.layers, strict=True):
            weight.copy_(w)
            bias.copy_(b)


def fit(learner: Learner, optimizer: Adam, buffer: ReplayBuffer, config: TrainConfig, generator: th.Generator) -> float:
    """``config.grad_steps`` minibatch steps on ``buffer``; returns the mean loss.

    All minibatch indices are drawn up front. ``lr_schedule="cosine"`` anneals the learning rate to 0 over
    each fit (restarting every iteration), so each iteration ends on settled weights instead of wherever
    the last noisy high-lr step left them.
    """
    grad_steps = config.grad_steps
    actor = FlatActor(learner.policy)
    obs, targets, jacobians = batches(learner, buffer, config, generator)
    lrs = [optimizer.lr] * grad_steps
    if config.lr_schedule == "cosine":
        lrs = [optimizer.lr * 0.5 * (1 + math.cos(math.pi * step / grad_steps)) for step in range(grad_steps)]
    if jacobians is not None:
        total = th.zeros(())
        for step, (x, target, jacobian) in enumerate(zip(obs, targets, jacobians, strict=True)):
            total += sobolev_step(actor, x, target, jacobian, config.jacobian_weight)
            optimizer.step(actor.params, actor.grad, lrs[step])
        mean_loss = float(total) / grad_steps
    else:
        loss_sum = th.zeros_like(targets[0][0] if isinstance(targets[0], tuple) else targets[0], dtype=th.float32)
        for step, (x, target) in enumerate(zip(obs, targets, strict=True)):
            backprop(actor, x, target, loss_sum, learner.discrete)
            optimizer.step(actor.params, actor.grad, lrs[step])
        mean_loss = float(loss_sum.sum()) / (grad_steps * loss_divisor(targets[0], learner.discrete))
    actor.store()
    return mean_loss


def batches(
    learner: Learner, buffer: ReplayBuffer, config: TrainConfig, generator: th.Generator
) -> tuple[list[th.Tensor], list[Target], list[th.Tensor] | None]:
    """A fit's minibatches, drawn up front: observations (normalized), targets (one-hot rows for discrete
    actions, label ranges with ``bounded_loss``) and, for the Sobolev loss, the expert's Jacobians."""
    size = config.batch_size
    all_obs, all_acts, all_jacobians = buffer.sample(config.grad_steps * size, generator)
    if learner.normalizer is not None:
        all_obs = learner.normalizer.torch(all_obs)
    targets: list[Target] = list(all_acts.split(size))
    if learner.discrete:
        targets = list(F.one_hot(all_acts, learner.policy.action_space.n).to(all_obs.dtype).split(size))
    elif config.bounded_loss and learner.action_bounds is not None:  # the ranges depend on the labels alone
        lower, upper = label_ranges(all_acts, *learner.action_bounds)
        targets = list(zip(lower.split(size), upper.split(size), strict=True))
    if config.jacobian_weight <= 0:
        return list(all_obs.split(size)), targets, None
    rows = config.jacobian_rows or size  # the Sobolev term sees each batch's first rows: rescale only those
    jacobians = all_jacobians.unflatten(0, (-1, size))[:, :rows]
    if learner.normalizer is not None:  # the actor sees normalized obs: d/d normalized = d/d raw / scale
        jacobians = jacobians / learner.normalizer.scale
    return list(all_obs.split(size)), targets, list(jacobians.unbind(0))


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


def backprop(actor: FlatActor, obs: th.Tensor, target: Target, loss_sum: th.Tensor, discrete: bool = False) -> None:
    """Add the batch's loss terms to ``loss_sum`` and write the gradient of its mean loss into ``actor.grad``.

    A hand-written backward pass for the MLP of :func:`sb3_il.policy.actor_layers`: autograd's bookkeeping
    costs more than the arithmetic at this size, and every op here counts (in place where it can be, the
    loss summed by one op per step). Discrete targets are one-hot rows (cross-entropy); Box ones labels or
    (lower, upper) ranges (MSE). Inputs must not require grad. Checked against autograd in tests/test_bc.py.
    """
    inputs, x = [], obs
    for (_, bias, activation), weight_t in zip(actor.layers, actor.transposed, strict=True):
        inputs.append(x)
        x = activate(th.addmm(bias, x, weight_t), activation)
    if discrete:
        log_probs = th.log_softmax(x, dim=1)
        loss_sum.addcmul_(log_probs, target, value=-1.0)
        grad = log_probs.exp_().sub_(target).div_(len(x))
    else:
        grad = residual(x, target)
        loss_sum.addcmul_(grad, grad)
        grad.mul_(2.0 / grad.numel())
    for i in range(len(actor.layers) - 1, -1, -1):
        weight_grad, bias_grad, _ = actor.grads[i]
        th.mm(grad.t(), inputs[i], out=weight_grad)
        th.sum(grad, 0, out=bias_grad)
        if i > 0:  # layer i's input is layer i-1's activation output
            grad = activation_backward(grad @ actor.layers[i][0], inputs[i], actor.layers[i - 1][2])


def loss_divisor(target: Target, discrete: bool) -> int:
    """What :func:`backprop`'s summed loss terms of one batch are divided by for the batch's mean loss."""
    first = target[0] if isinstance(target, tuple) else target
    return len(first) if discrete else first.numel()


def sobolev_step(actor: FlatActor, obs: th.Tensor, target: Target, jacobian: th.Tensor, weight: float) -> th.Tensor:
    """:func:`sobolev_loss` on a batch, its gradient (by autograd) written into ``actor.grad``."""
    params = actor.params.detach().requires_grad_(True)
    loss = sobolev_loss(actor.views(params), obs, target, jacobian, weight)
    actor.grad.copy_(th.autograd.grad(loss, params)[0])
    return loss.detach()


def sobolev_loss(layers: Layers, obs: th.Tensor, target: Target, jacobian: th.Tensor, weight: float) -> th.Tensor:
    """The Box loss plus ``weight`` × the MSE between the actor's d action / d obs and the expert's
    ``jacobian`` (Sobolev training), differentiable in the layers.

    The actor's Jacobian is multiplied from the output side, where it has as many rows as actions. The loss
    differentiates through it, so this one uses autograd. ``jacobian`` may cover only the batch's first rows:
    the term costs a (width × width) product per row and action, the rest of the loss a fraction of that.
    """
    x, outputs = obs, []
    for weight_, bias, activation in layers:
        x = activate(F.linear(x, weight_, bias), activation)
        outputs.append(x)
    jac, rows = None, len(jacobian)
    for (weight_, _, activation), out in zip(reversed(layers), reversed(outputs), strict=True):
        slope = activation_backward(th.ones_like(out[:rows]), out[:rows], activation).unsqueeze(1)  # (rows, 1, width)
        jac = slope.transpose(1, 2) * weight_ if jac is None else (jac * slope) @ weight_
    return residual(x, target).square().mean() + weight * (jac - jacobian).square().mean()
