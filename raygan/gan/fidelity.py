"""Fidelity levers of the training step (``gan.ema_decay``, ``gan.r1_gamma``): the generator's weight
average and the discriminator's R1 penalty, for the solo loop (raygan.gan.train) and the pack
(raygan.gan.pack) alike. Both are off by default, and off means none of this runs.

- EMA (Karras et al.; Yazici et al., "The unusual effectiveness of averaging in GAN training"): a copy
  of G from the same initial weights whose parameters move ``ema = decay * ema + (1 - decay) * param``
  (``lerp_``) after every generator step; its buffers (batch-norm running statistics, any others) are
  G's. Sampling uses it. It is generic over named parameters and buffers, so a parametrised module
  (spectral norm's ``parametrizations.weight.original`` and its power-iteration buffers) is averaged
  like any other.
- R1 (Mescheder, Geiger and Nowozin, "Which training methods for GANs do actually converge?", 2018,
  eq. 9): ``gamma / 2 * E_real ||grad_x D(x)||^2``, every discriminator step (no lazy regularisation),
  the gradient taken with create_graph=True so that D's update differentiates through it.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

__all__ = ["ema_copy", "ema_step", "ema_buffers", "r1_penalty"]


def ema_copy(G: nn.Module) -> nn.Module:
    """The EMA generator at its start: a copy of ``G`` (same weights, buffers and mode), outside autograd."""
    ema = copy.deepcopy(G)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_step(ema: list[torch.Tensor], params: list[torch.Tensor], decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * param`` for each pair, in place: lerp_ towards the weights by
    1 - decay (elementwise, so one call on member-stacked tensors is every member's own update)."""
    for e, p in zip(ema, params):
        e.lerp_(p.detach(), 1.0 - decay)


@torch.no_grad()
def ema_buffers(ema: nn.Module, G: nn.Module) -> None:
    """The EMA generator's buffers are G's (running statistics are not averaged, they are G's own)."""
    buffers = dict(G.named_buffers())
    for name, b in ema.named_buffers():
        b.copy_(buffers[name])


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """``gamma / 2 * mean over the batch of ||grad_x D(x)||^2`` in fp32, differentiable in D's weights.

    ``real`` (requires_grad) is the batch the logits were computed from: the solo batch (B, ...) with
    logits (B,), a scalar penalty; or a pack's member-first batch (P, B, ...) with logits (P, B), a (P,)
    penalty, one per member: members do not interact, so the gradient of the summed logits with respect
    to a member's rows is that member's own.
    """
    grad, = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
    lead = real_logits.dim()  # the batch dimensions: (B,) solo, (P, B) packed
    sq = grad.float().square().flatten(lead).sum(-1)  # (B,) or (P, B)
    return 0.5 * gamma * sq.mean(-1)
