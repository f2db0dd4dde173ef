"""The adversarial step, once for every family: one discriminator update and gan.g_steps_per_d_step
generator updates of P members at once (a member trained alone is P = 1).

The step reads member-first tensors: the real batch (P, B, ...), its classes (P, B) for a conditional
family, and the latents of every generator update (g_steps, P, B, z_dim), drawn beforehand from each
member's own generator in train_gan's order (raygan.gan.loop). What it calls for G and D, how it takes
per-member losses from logits, and what follows a generator update (the EMA) come in :class:`StepModels`:
a pack's (raygan.gan.pack: the stacked, vectorised model) or a member's own modules (raygan.gan.solo).

Per member: ``d_loss`` on the real and fake logits (fp32, whatever precision the forward passes ran in;
plus the R1 penalty when gan.r1_gamma > 0), an update of D; then for each generator update the fakes
(the first reuses this step's), ``g_loss`` on D's logits, an update of G and the EMA. Each update sums
the members' losses with a non-finite one masked out (``torch.where``), so a diverging member cannot
poison its pack mates' gradients; members do not interact, so each one's gradients are its own loss's.

With privacy on (a member alone or a data-parallel group: raygan.gan.solo), ``StepModels.private_d`` computes D's update
instead: DP-SGD on the real records of the Poisson batch, the fakes' ordinary gradient beside it
(raygan.privacy.dpsgd); the generator's updates are the same as without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import torch

from raygan.config import GANConfig
from raygan.gan.diffaugment import augment
from raygan.gan.fidelity import r1_penalty
from raygan.gan.levers import PLAIN, Levers
from raygan.gan.losses import LOSSES

if TYPE_CHECKING:  # built by raygan.gan.solo when privacy is on
    from raygan.privacy.dpsgd import PrivateD

# G(z (P, B, z_dim), y) -> fakes; D(x, y) -> logits (P, B); y is None or (P, B) class indices
Forward = Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]
# per_member(loss_fn, logits tuple of (P, B) fp32 tensors, *constants) -> (P,) losses
PerMember = Callable[..., torch.Tensor]


@dataclass
class StepModels:
    """What one step calls and updates for its P members."""
    G: Forward
    D: Forward
    g_params: list[torch.Tensor]
    d_params: list[torch.Tensor]
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    per_member: PerMember
    after_g_update: Optional[Callable[[], None]] = None  # gan.ema_decay > 0: move the EMA generator(s)
    private_d: Optional[PrivateD] = None  # privacy.epsilon set: D's DP-SGD update (a member alone)
    channels_last: bool = False  # images reach D as (..., H, W, C) (a pack's convolutional layout)
    data_parallel: bool = False  # G and D are in DistributedDataParallel (raygan.gan.parallel)


def update(opt: torch.optim.Optimizer, losses: torch.Tensor, params: list[torch.Tensor], *,
           data_parallel: bool = False) -> None:
    """One optimizer step on the members' summed losses (P,), a non-finite loss masked out. A parameter
    the losses do not reach (a progressive GAN's layers not yet grown) gets no gradient, and Adam
    leaves it (and its state) as it is. ``data_parallel``: the gradients come from backward() into
    ``params`` alone, whose accumulation hooks are where DistributedDataParallel averages them over
    the group (autograd.grad runs no such hook); the other model's parameters get none."""
    total = torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses)).sum()
    if data_parallel:
        for p in params:
            p.grad = None
        total.backward(inputs=params)
    else:
        for p, g in zip(params, torch.autograd.grad(total, params, allow_unused=True)):
            p.grad = g
    opt.step()


def seen(models: StepModels, x: torch.Tensor, aug: Optional[dict], call: int, gan: GANConfig) -> torch.Tensor:
    """What D sees of images ``x`` at D call ``call`` of the step: DiffAugment's transforms with that
    call's drawn parameters (raygan.gan.diffaugment), or ``x`` itself when gan.diffaugment is off."""
    if aug is None:
        return x
    params = {k: v[call] for k, v in aug.items()}
    if not models.channels_last:
        return augment(x, params, gan.diffaugment)
    return augment(x.movedim(-1, -3), params, gan.diffaugment).movedim(-3, -1)


def _d_update(models: StepModels, real: torch.Tensor, y: Optional[torch.Tensor], z: torch.Tensor, *,
              gan: GANConfig, levers: Levers, aug: Optional[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """D's update on the real batch and fakes of latents ``z`` (P, B, z_dim); (the fakes, (P,) d_loss)."""
    if gan.r1_gamma:  # R1 differentiates D's real logits in the real batch
        real.requires_grad_()
    with levers.autocast():
        fake = models.G(z, y)  # the fakes get the real batch's classes
        real_logits = models.D(seen(models, real, aug, 0, gan), y)
        fake_logits = models.D(seen(models, fake.detach(), aug, 1, gan), y)
    d_loss = models.per_member(LOSSES[gan.loss][0], (real_logits.float(), fake_logits.float()), gan.real_label)
    if gan.r1_gamma:  # (P,): each member's own penalty, added to its own d_loss
        d_loss = d_loss + r1_penalty(real_logits, real, gan.r1_gamma)
    update(models.opt_d, d_loss, models.d_params, data_parallel=models.data_parallel)
    return fake, d_loss


def adversarial_step(models: StepModels, real: torch.Tensor, y: Optional[torch.Tensor], z: torch.Tensor, *,
                     gan: GANConfig, levers: Levers = PLAIN, aug: Optional[dict] = None) -> torch.Tensor:
    """One step of P members on their real batch ``real`` (P, B, ...), classes ``y`` and latents ``z``
    (g_steps, P, B, z_dim); returns (P, 2): each member's d_loss and (last) g_loss. ``aug`` (gan.diffaugment
    on): DiffAugment's parameters, (2 + g_steps, P, B) each: real, fake, then each generator update."""
    if models.private_d is not None:  # DP-SGD: the real records clipped and noised, the fakes not
        with levers.autocast():
            fake = models.G(z[0], y)
        # privacy.d_steps > 1: the further D steps draw their batches and fakes (G's latents, z_dim wide)
        d_loss = models.private_d.update(real, fake.detach(), G=lambda latents: models.G(latents, y),
                                         z_dim=z.shape[-1])
    else:
        fake, d_loss = _d_update(models, real, y, z[0], gan=gan, levers=levers, aug=aug)
    g_loss_fn = LOSSES[gan.loss][1]
    for k in range(gan.g_steps_per_d_step):
        with levers.autocast():
            if k > 0:  # the first G update reuses this step's fakes, as DCGAN does
                fake = models.G(z[k], y)
            fake_logits = models.D(seen(models, fake, aug, 2 + k, gan), y)
        g_loss = models.per_member(g_loss_fn, (fake_logits.float(),))
        update(models.opt_g, g_loss, models.g_params, data_parallel=models.data_parallel)
        if models.after_g_update is not None:
            models.after_g_update()
    return torch.stack([d_loss.detach(), g_loss.detach()], dim=1)
