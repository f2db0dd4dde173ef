"""Packed members: P GANs of one configuration trained as one vectorised model (`train_pack`).

The idea is model ensembling by batching (torch.func's "model ensembling" recipe): P independent
networks of one architecture evaluated as one network whose weights carry a leading member dimension,
so that a small GAN pays PyTorch's per-operation overhead once per pack instead of once per member.
This module owns the pack as a stepper of the one training loop (raygan.gan.loop: the same loop, step,
checkpoints and divergence handling as a member trained alone); raygan.gan.pack_layers owns the packed
models. Why grouped layers and not vmap, and where a step's time goes: docs/benchmarks.md, "pack".

Every member keeps what train_gan gives it: its initial weights (``torch.manual_seed(seed)`` then
``build_gan``), its own generator for latents and minibatch indices (the same BatchSampler, so the same
index stream), its data, data weights and labels, its losses, its Adam state, and its checkpoint in
the one format (raygan.gan.member), so that a member trained in a pack resumes alone and the other way
round. One Adam (foreach=False, the solo path's) steps the stacked parameters: Adam is elementwise, so
that is per-member Adam; nothing pack-wide (no statistic, no gradient norm) enters.

Exactness: a packed member's forward and backward are its solo modules' up to float rounding at every
size a family supports (tests/unit/test_pack_sizes.py: 8, 32 and 64 px, gray and RGB); training then
amplifies rounding as it amplifies any other (a solo member in channels_last memory parts from itself
in contiguous memory just as fast), so packed and solo runs of one seed agree for a few steps, and
packed and solo ensembles agree in distribution (docs/benchmarks.md, "pack").

Randomness: latents and indices come from each member's own generator, as alone. Dropout (fc) draws
each member's masks from a generator of its own that stands in for torch's default generator (what a
member alone draws from): it starts in the state the default generator has after the member's seeded
build and is saved as the checkpoint's torch_rng (cuda_rng on a GPU).

Resume: members resume from their own checkpoints; members that resume from the same step train as
one pack, those at other steps in packs of their own (one after another), finished ones not at all.

Speed levers (train.precision, channels_last, compile, cuda_graphs; raygan.gan.levers) change how the
step computes, not what it draws: the pack draws every member's indices and latents first, then runs
the step on them (under autocast, the compiled forward); with CUDA graphs it captures that once and
replays it (raygan.gan.cuda_graphs). EMA: the members' EMA generators are stacked like their weights,
and one lerp_ per stacked tensor after every generator update moves them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from raygan.config import GANConfig, TrainConfig
from raygan.gan.cuda_graphs import GraphedStep, make_capturable
from raygan.gan.diffaugment import draw
from raygan.gan.fidelity import ema_buffers, ema_step
from raygan.gan.levers import PLAIN, Levers, compiled, levers_for
from raygan.gan.loop import MemberLog, train_loop
from raygan.gan.member import GANDivergedError, Member, TrainResult, member_result, prepare_member, resolve_device
from raygan.gan.models import CONDITIONAL, UNPACKABLE
from raygan.gan.pack_layers import packed_forward, sample_layout, with_ghosts
from raygan.gan.solo import SoloStepper
from raygan.gan.stack import Context, Stack
from raygan.gan.step import StepModels, adversarial_step

# on_log(member index, step, mean d_loss, mean g_loss): train_gan's on_log with the member in front.
PackLog = MemberLog


@dataclass
class PackMember:
    """One member of a pack: train_gan's per-member arguments."""
    data: torch.Tensor                          # (N_i, *sample_shape); sizes may differ
    seed: int
    checkpoint_path: Optional[Path] = None
    data_weights: Optional[torch.Tensor] = None
    labels: Optional[torch.Tensor] = None       # conditional families: (N_i,) class indices
    n_classes: Optional[int] = None


def _stacked_adam(opts: list[torch.optim.Optimizer], stack: Stack, lr: float,
                  betas: tuple) -> torch.optim.Adam:
    """One Adam over the stacked parameters, its state stacked from the members' (resumed) ones."""
    params = list(stack.params.values())
    opt = torch.optim.Adam(params, lr=lr, betas=betas, foreach=False)
    member_params = [o.param_groups[0]["params"] for o in opts]
    for j, p in enumerate(params):
        states = [o.state.get(ps[j]) for o, ps in zip(opts, member_params)]
        if not states[0]:
            continue
        # the step count is one for the pack (its members resume from the same step)
        opt.state[p] = {k: v.clone() if k == "step" else torch.stack([s[k] for s in states])
                        for k, v in states[0].items()}
    return opt


def _unstack_adam(opt: torch.optim.Adam, stack: Stack, i: int, member_opt: torch.optim.Optimizer) -> None:
    for p, q in zip(stack.params.values(), member_opt.param_groups[0]["params"]):
        if opt.state.get(p):
            member_opt.state[q] = {k: (v if k == "step" else v[i]).clone() for k, v in opt.state[p].items()}


def _per_member(P: int):
    """Each member's loss from its logits (P, B): vmapped over the members, on sizes padded with zero
    members (pack_layers.with_ghosts) so that no member's numbers depend on the pack's size."""
    def losses(loss_fn, logits: tuple, *constants) -> torch.Tensor:
        fn = torch.vmap(loss_fn, in_dims=(0,) * len(logits) + (None,) * len(constants))
        return fn(*(with_ghosts(t) for t in logits), *constants)[:P]
    return losses


class PackStepper:
    """The members of one pack as stacked models, optimizers, data and losses: a stepper of
    raygan.gan.loop."""

    def __init__(self, members: list[Member], index: list[int], gan: GANConfig, device: torch.device,
                 levers: Levers = PLAIN, *, batch_size: int):
        self.members, self.index, self.gan, self.levers = members, index, gan, levers
        states = [m.state for m in members]
        self.G = Stack([s.G for s in states], channels_last=levers.channels_last)
        self.D = Stack([s.D for s in states], channels_last=levers.channels_last)
        rngs = [s.cuda_rng if device.type == "cuda" else s.cpu_rng for s in states]
        self.g_ctx, self.d_ctx = Context(self.G, rngs), Context(self.D, rngs)
        betas = (gan.beta1, gan.beta2)
        opt_g = _stacked_adam([s.opt_g for s in states], self.G, gan.lr_g, betas)
        opt_d = _stacked_adam([s.opt_d for s in states], self.D, gan.lr_d, betas)
        # gan.ema_decay > 0: the members' EMA weights, stacked in the layout of the stacked weights
        self.ema = None if states[0].G_ema is None else [
            torch.empty_like(p, requires_grad=False).copy_(
                torch.stack([dict(s.G_ema.named_parameters())[name] for s in states]))
            for name, p in self.G.params.items()]
        forward = compiled(packed_forward) if levers.compile else packed_forward
        g_params = list(self.G.params.values())
        self.models = StepModels(
            G=lambda z, y: forward(self.g_ctx, z, y), D=lambda x, y: forward(self.d_ctx, x, y),
            g_params=g_params, d_params=list(self.D.params.values()), opt_g=opt_g, opt_d=opt_d,
            per_member=_per_member(len(members)),
            after_g_update=None if self.ema is None else lambda: ema_step(self.ema, g_params, gan.ema_decay),
            channels_last=gan.family in ("dcgan", "ccgan"))  # sample_layout's images
        self.graphed: Optional[GraphedStep] = None  # train.cuda_graphs: this pack's captured step
        if levers.cuda_graphs:
            make_capturable(opt_g)
            make_capturable(opt_d)
        self.pool = torch.cat([sample_layout(gan.family, m.data) for m in members])
        sizes = [m.data.shape[0] for m in members]
        self.offsets = torch.tensor([sum(sizes[:i]) for i in range(len(sizes))], device=device)[:, None]
        self.labels = torch.cat([m.labels for m in members]) if gan.family in CONDITIONAL else None
        self.losses = torch.stack([s.losses for s in states])  # (P, steps, 2)
        self.device, self.batch = device, batch_size

    def write_back(self) -> None:
        """Every member's weights, buffers, Adam state and losses into its own solo objects."""
        for i, m in enumerate(self.members):
            self.G.write_back(i, m.state.G)
            self.D.write_back(i, m.state.D)
            if self.ema is not None:
                with torch.no_grad():
                    for e, (name, _) in zip(self.ema, self.G.params.items()):
                        m.state.G_ema.get_parameter(name).copy_(e[i])
                ema_buffers(m.state.G_ema, m.state.G)
            _unstack_adam(self.models.opt_g, self.G, i, m.state.opt_g)
            _unstack_adam(self.models.opt_d, self.D, i, m.state.opt_d)
            m.state.losses.copy_(self.losses[i])

    def without(self, out: list[int]) -> Optional["PackStepper"]:
        """This pack less the members at positions ``out`` (restacked), or None if none is left."""
        self.write_back()
        keep = [i for i in range(len(self.members)) if i not in out]
        if not keep:
            return None
        return PackStepper([self.members[i] for i in keep], [self.index[i] for i in keep], self.gan,
                           self.device, self.levers, batch_size=self.batch)

    def draws(self) -> tuple[torch.Tensor, torch.Tensor, Optional[dict]]:
        """Every member's minibatch indices into the pool (P, B), latents of every G update of this
        step (g_steps, P, B, z_dim) and (gan.diffaugment) its augmentations' parameters, from its own
        generator in a solo member's order: indices, latents, augmentations (nothing else draws from
        that generator in between, so drawing them up front is exact)."""
        states, device, z_dim = [m.state for m in self.members], self.device, self.G.template.z_dim
        idx = torch.stack([s.sampler.next() for s in states]) + self.offsets
        z = torch.stack([torch.stack([torch.randn(self.batch, z_dim, generator=s.rng, device=device)
                                      for s in states]) for _ in range(self.gan.g_steps_per_d_step)])
        size = self.members[0].data.shape[-2:]
        augs = [draw(self.gan.diffaugment, s.rng, calls=2 + self.gan.g_steps_per_d_step, batch=self.batch,
                     size=tuple(size), device=device) for s in states]
        aug = None if augs[0] is None else {k: torch.stack([a[k] for a in augs], dim=1) for k in augs[0]}
        return idx, z, aug

    def compute(self, idx: torch.Tensor, z: torch.Tensor, aug: Optional[dict] = None) -> torch.Tensor:
        """The one adversarial step of every member on drawn indices and latents; (P, 2)."""
        y = None if self.labels is None else self.labels[idx]  # the fakes get the real batch's classes
        return adversarial_step(self.models, self.pool[idx], y, z, gan=self.gan, levers=self.levers, aug=aug)

    def step(self, step: int) -> torch.Tensor:
        """With train.cuda_graphs the pack's captured step (a pack made anew, when a member leaves,
        captures its own; gan.diffaugment is refused with it)."""
        idx, z, aug = self.draws()
        if not self.levers.cuda_graphs:
            return self.compute(idx, z, aug)
        if self.graphed is None:
            dropout = self.g_ctx.dropout_rngs if self.gan.family == "fc" else []
            self.graphed = GraphedStep(self.compute, dropout, self.device)
        return self.graphed(idx, z)


def train_pack(members: list[PackMember], *, gan: GANConfig, train: TrainConfig,
               device: Optional[torch.device] = None,
               on_log: Optional[PackLog] = None) -> list[Union[TrainResult, GANDivergedError]]:
    """Train ``members`` (one configuration, their own data and seeds) as one packed model.

    Returns, in the order of ``members``, each one's TrainResult (its generator in eval mode with its
    own weights and batch-norm statistics; ``seconds`` is its pack's wall time, shared by the members
    that trained together) or, for a member whose losses went NaN or inf, the GANDivergedError
    train_gan would have raised. ``on_log(member index, step, mean_d_loss, mean_g_loss)`` is called
    every ``train.log_every`` steps for every member still training. A family that cannot pack
    (UNPACKABLE) takes one member, trained on its own modules.
    """
    if gan.family in UNPACKABLE and len(members) > 1:
        raise ValueError(f"gan.family={gan.family} cannot be packed (see raygan.gan.models.UNPACKABLE); "
                         f"train its {len(members)} members one by one with train_gan (packs of 1)")
    device = device or resolve_device(train.device)
    packable = gan.family not in UNPACKABLE
    levers = levers_for(gan, train, device)  # a lever that cannot run: before any work
    prepared = [prepare_member(m.data, gan=gan, train=train, seed=m.seed, checkpoint_path=m.checkpoint_path,
                               data_weights=m.data_weights, device=device, labels=m.labels,
                               n_classes=m.n_classes, own_rngs=packable) for m in members]
    kinds = {(m.shape, m.n_classes) for m in prepared}
    if len(kinds) > 1:
        raise ValueError("a pack's members share one architecture: their samples' shapes (and "
                         f"n_classes) must agree, got {sorted(kinds, key=str)}")
    results: list = [None] * len(members)
    for start in sorted({m.start for m in prepared}):
        index = [i for i, m in enumerate(prepared) if m.start == start]
        if start >= train.steps:  # finished before: nothing to train
            for i in index:
                results[i] = member_result(prepared[i], train, 0.0)
            continue
        if packable:
            group = [prepared[i] for i in index]
            for m in group:
                m.state.G.train()
                m.state.D.train()
            stepper = PackStepper(group, index, gan, device, levers, batch_size=train.batch_size)
        else:
            stepper = SoloStepper(prepared[index[0]], index[0], gan=gan, train=train, levers=levers)
        train_loop(stepper, start, gan=gan, train=train, on_log=on_log, results=results)
    return results
