"""One member on its own modules, as a stepper of raygan.gan.loop (a pack of one that needs no stacking).

Every family trains this way when a member trains alone (`train_gan`, cluster.members_per_task=1), and
the families that cannot pack (pggan: its graph grows as it trains; biggan: spectral norm, conditional
batch norm and attention have no grouped form) always do. The member's G and D are called on its
batch as they are (through the speed levers' memory format and compilation: raygan.gan.levers), with
a member dimension of one added around them, so raygan.gan.step's one adversarial step runs on them
unchanged. A progressive member is told its (resolution, alpha) before every step by ``pg_schedule``,
a pure function of the step, so a resumed run grows exactly as an uninterrupted one.

With privacy on, the member's sampler draws Poisson batches (raygan.privacy.dpsgd.PoissonSampler, from
the member's own generator) and the step's D update is DP-SGD (``StepModels.private_d``).

With ``group`` (a raygan.gan.parallel.DataParallel: cluster.workers_per_member > 1) this process is one
of the member's data-parallel group: it draws the step's whole batch as the member alone would and
trains on its shard of it, its G and D in DistributedDataParallel with synchronised batch norms, and
records the group's mean losses (raygan.gan.parallel). With privacy on as well, it takes its part of
the step's Poisson batch, and D's DP-SGD update is summed over the group (raygan.privacy.dpsgd).
"""
from __future__ import annotations

from typing import Optional

import torch

from raygan.config import GANConfig, TrainConfig
from raygan.gan.diffaugment import draw
from raygan.gan.fidelity import ema_buffers, ema_step
from raygan.gan.levers import PLAIN, Levers, solo_models
from raygan.gan.member import Member
from raygan.gan.models import PROGRESSIVE, pg_resolutions, pg_schedule
from raygan.gan.parallel import DataParallel
from raygan.gan.step import StepModels, adversarial_step
from raygan.privacy.dpsgd import PrivateD


def _own(model):
    """``model`` (samples first) called on a member-first batch of one member."""
    def forward(x: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        return model(x[0], *(() if y is None else (y[0],))).unsqueeze(0)
    return forward


def _one(loss_fn, logits: tuple, *constants) -> torch.Tensor:
    return loss_fn(*(t[0] for t in logits), *constants).unsqueeze(0)


class SoloStepper:
    """One member (index ``index`` in the caller's list) trained on its own G and D."""

    def __init__(self, member: Member, index: int, *, gan: GANConfig, train: TrainConfig,
                 levers: Levers = PLAIN, group: Optional[DataParallel] = None):
        self.members, self.index, self.device = [member], [index], member.state.device
        self.gan, self.levers, self.batch, self.group = gan, levers, train.batch_size, group
        self.shard = slice(None) if group is None else group.shard(train.batch_size)
        state = member.state
        self.losses = state.losses.unsqueeze(0)  # a view: the member's own record
        self.growing = (pg_resolutions(gan.pg_start_size, member.shape[-1]) if gan.family in PROGRESSIVE
                        else None)
        self.steps = train.steps
        state.G.train()
        state.D.train()
        G, D = (state.G, state.D) if group is None else \
            (group.wrap(state.G, self.device), group.wrap(state.D, self.device))
        G, D = solo_models(G, D, levers)
        after = None
        if state.G_ema is not None:
            ema, params = list(state.G_ema.parameters()), list(state.G.parameters())

            def after():
                ema_step(ema, params, gan.ema_decay)
                ema_buffers(state.G_ema, state.G)
        private = None if state.privacy is None else PrivateD(
            state.D, state.opt_d, state.privacy, state.rng, state.privacy_history, loss=gan.loss,
            real_label=gan.real_label, data=member.data, batch=train.batch_size, group=group)
        self.models = StepModels(G=_own(G), D=_own(D), g_params=list(state.G.parameters()),
                                 d_params=list(state.D.parameters()), opt_g=state.opt_g, opt_d=state.opt_d,
                                 per_member=_one, after_g_update=after, private_d=private,
                                 data_parallel=group is not None)

    def step(self, step: int) -> torch.Tensor:
        member, state = self.members[0], self.members[0].state
        if self.growing is not None:
            resolution, alpha = pg_schedule(step, self.steps, self.growing, self.gan.pg_fade_fraction)
            state.G.set_progress(resolution, alpha)
            state.D.set_progress(resolution, alpha)
        # The member's generator draws the indices (privacy: Poisson), then the latents, then DiffAugment's
        # parameters, for the whole batch; a data-parallel process then keeps its shard of each.
        idx = state.sampler.next()
        z = torch.stack([torch.randn(self.batch, state.G.z_dim, generator=state.rng, device=self.device)
                         for _ in range(self.gan.g_steps_per_d_step)])
        aug = draw(self.gan.diffaugment, state.rng, calls=2 + self.gan.g_steps_per_d_step, batch=self.batch,
                   size=tuple(member.data.shape[-2:]), device=self.device)  # after the latents, as a pack draws
        # a Poisson batch (privacy) varies in size: a group's process takes its part of the rows drawn
        idx = idx[self.shard] if self.group is None or state.privacy is None else self.group.part(idx)
        z, shard = z[:, self.shard].unsqueeze(1), self.shard
        real = member.data[idx].unsqueeze(0)
        y = None if member.labels is None else member.labels[idx].unsqueeze(0)
        aug = None if aug is None else {k: v[:, shard].unsqueeze(1) for k, v in aug.items()}
        losses = adversarial_step(self.models, real, y, z, gan=self.gan, levers=self.levers, aug=aug)
        return losses if self.group is None else self.group.mean(losses)

    def write_back(self) -> None:
        """The member's modules are its state: nothing to copy."""

    def without(self, out: list[int]) -> None:
        return None
