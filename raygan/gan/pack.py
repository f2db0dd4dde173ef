"""Packed members: P GANs of one configuration trained as one vectorised model (`train_pack`).

The idea is model ensembling by batching: P independent networks of one architecture evaluated as one
network whose weights carry a leading member dimension (torch.func's "model ensembling" recipe,
stack_module_state + vmap), so that a small GAN pays PyTorch's per-operation overhead once per pack
instead of once per member. This module owns the packed training loop, its checkpoints and its
divergence handling; raygan.gan.pack_layers owns the packed models.

Every member keeps what train_gan gives it: its initial weights (``torch.manual_seed(seed)`` then
``build_gan``), its own generator for latents and minibatch indices (the same BatchSampler, so the same
index stream), its data, data weights and labels, its losses, its Adam state, and its checkpoint in
train_gan's format (same keys, same identity), so that a member trained in a pack resumes alone under
train_gan and the other way round. One Adam (foreach=False, train_gan's path) steps the stacked
parameters: Adam is elementwise, so that is per-member Adam; nothing pack-wide (no statistic, no
gradient norm) enters. The members' losses are summed for one backward pass; members do not interact,
so each member's gradients are its own loss's.

Design, measured on one thread of a shared 2-core CPU, the demo member (configs/demo.yaml: DCGAN-8,
width 32, z_dim 32, batch 32), member-steps/s against the same members trained one after another by
train_gan: torch.func (stack_module_state + functional_call + vmap) makes every convolution one oneDNN
grouped convolution of P groups, 13-17 ms forward + backward per layer at P = 30 against 13-24 ms for
30 solo calls, and whole packs ran 2.7x (P = 10) and 1.7x (P = 30); vmap over unfold / matmul
convolutions was no better (5-12 ms a layer: unfold's backward, strided copies). Grouped layers,
batched matrix products over channels-last activations (pack_layers), take 4-6 ms a layer, and whole
packs run 3.9-4.1x (P = 10) and 5.0-5.6x (P = 30) (3 alternating repeats of 100 steps, medians; wall
and process CPU time agree). So the pack uses grouped layers. At P = 30 the step's time goes to
copies (im2col windows, batch norm's channels-last round trip, weight permutes, about a quarter),
batched matrix products (a sixth), elementwise activations and their backward, and Adam (a tenth);
drawing latents and indices per member, from each member's generator, is about 1%.

Randomness: latents and indices come from each member's own generator, as in train_gan. Dropout (fc)
draws each member's masks from a generator of its own that stands in for torch's default generator
(what train_gan's dropout draws from): it starts in the state the default generator has after the
member's seeded build and is saved as the checkpoint's torch_rng (cuda_rng on a GPU), so fc members
match their solo runs like the other families (up to float rounding, not only statistically) and
resume exactly.

Divergence: every step a member's non-finite loss is masked out of the summed loss (``torch.where``);
at each check (train_gan's: log and checkpoint steps, one host sync) a member whose losses went NaN,
inf or past train.max_abs_loss leaves the pack: it is never updated again, its last good checkpoint
stays, and its result is the GANDivergedError train_gan raises (raygan.ensemble.members retries it).
Per member the arithmetic does not depend on the pack's other members or size (see pack_layers), so
the others finish exactly as a pack without it would (on CPU).

Resume: members resume from their own checkpoints; members that resume from the same step train as
one pack, those at other steps in packs of their own (one after another), finished ones not at all.

Speed levers (train.precision, channels_last, compile, cuda_graphs; raygan.gan.levers) change how
the step computes, not what it draws: _draws takes every member's indices and latents first, _compute
runs the step on them (under autocast, the compiled forward), and with CUDA graphs the pack captures
_compute once and replays it. With the levers off the step is the one raygan always ran, bit for bit.

Fidelity levers (gan.ema_decay, gan.r1_gamma; raygan.gan.fidelity): the members' EMA generators are
stacked like their weights and one lerp_ per stacked tensor after every generator update moves them
(elementwise, so each member's own average); write_back puts each member's average into its EMA copy
with its G's buffers (write_back runs between steps, after a generator update, where train_gan copies
them). R1: the gradient of the members' summed real logits with respect to the member-first real batch
is each member's own, so each member's penalty joins its own d_loss (and the logged d_loss).

The progressive family (pggan) is not packed: its growing schedule changes which layers run (another
module graph at every resolution), so its packs hold one member, trained by train_gan's own loop.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from raygan.config import GANConfig, TrainConfig
from raygan.gan.fidelity import ema_buffers, ema_step, r1_penalty
from raygan.gan.levers import PLAIN, GraphedStep, Levers, compiled, levers_for, make_capturable
from raygan.gan.losses import LOSSES
from raygan.gan.models import CONDITIONAL, UNPACKABLE
from raygan.gan.pack_layers import Context, Stack, packed_forward, sample_layout, with_ghosts
from raygan.gan.train import (
    GANDivergedError,
    TrainResult,
    _check_finite,
    _Member,
    _prepare,
    _result,
    _train_alone,
    resolve_device,
)

logger = logging.getLogger(__name__)

# on_log(member index, step, mean d_loss, mean g_loss): train_gan's on_log with the member in front.
PackLog = Callable[[int, int, float, float], None]


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


class _Pack:
    """The members of one pack as stacked models, optimizers, data and losses."""

    def __init__(self, members: list[_Member], index: list[int], gan: GANConfig, device: torch.device,
                 levers: Levers = PLAIN):
        self.members, self.index, self.gan, self.levers = members, index, gan, levers
        states = [m.state for m in members]
        self.G = Stack([s.G for s in states], channels_last=levers.channels_last)
        self.D = Stack([s.D for s in states], channels_last=levers.channels_last)
        rngs = [s.cuda_rng if device.type == "cuda" else s.cpu_rng for s in states]
        self.g_ctx, self.d_ctx = Context(self.G, rngs), Context(self.D, rngs)
        betas = (gan.beta1, gan.beta2)
        self.opt_g = _stacked_adam([s.opt_g for s in states], self.G, gan.lr_g, betas)
        self.opt_d = _stacked_adam([s.opt_d for s in states], self.D, gan.lr_d, betas)
        # gan.ema_decay > 0: the members' EMA weights, stacked in the layout of the stacked weights
        self.ema = None if states[0].G_ema is None else [
            torch.empty_like(p, requires_grad=False).copy_(
                torch.stack([dict(s.G_ema.named_parameters())[name] for s in states]))
            for name, p in self.G.params.items()]
        self.graphed: Optional[GraphedStep] = None  # train.cuda_graphs: this pack's captured step
        if levers.cuda_graphs:
            make_capturable(self.opt_g)
            make_capturable(self.opt_d)
        self.pool = torch.cat([sample_layout(gan.family, m.data) for m in members])
        sizes = [m.data.shape[0] for m in members]
        self.offsets = torch.tensor([sum(sizes[:i]) for i in range(len(sizes))], device=device)[:, None]
        self.labels = torch.cat([m.labels for m in members]) if gan.family in CONDITIONAL else None
        self.losses = torch.stack([s.losses for s in states])  # (P, steps, 2)
        self.device = device

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
            _unstack_adam(self.opt_g, self.G, i, m.state.opt_g)
            _unstack_adam(self.opt_d, self.D, i, m.state.opt_d)
            m.state.losses.copy_(self.losses[i])

    def without(self, out: list[int]) -> Optional["_Pack"]:
        """This pack less the members at positions ``out`` (restacked), or None if none is left."""
        self.write_back()
        keep = [i for i in range(len(self.members)) if i not in out]
        if not keep:
            return None
        return _Pack([self.members[i] for i in keep], [self.index[i] for i in keep], self.gan, self.device,
                     self.levers)


def _update(opt: torch.optim.Optimizer, losses: torch.Tensor, params: list[torch.Tensor]) -> None:
    """One optimizer step on the members' summed losses, a non-finite loss masked out."""
    total = torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses)).sum()
    for p, g in zip(params, torch.autograd.grad(total, params)):
        p.grad = g
    opt.step()


def _draws(pack: _Pack, *, gan: GANConfig, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every member's minibatch indices into the pool (P, B) and latents of every G step of this
    iteration (g_steps, P, B, z_dim), from its own generator in train_gan's order: indices, then the
    latents (nothing else draws from that generator in between, so drawing them up front is exact)."""
    states, device, z_dim = [m.state for m in pack.members], pack.device, pack.G.template.z_dim
    idx = torch.stack([s.sampler.next() for s in states]) + pack.offsets
    z = torch.stack([torch.stack([torch.randn(batch, z_dim, generator=s.rng, device=device) for s in states])
                     for _ in range(gan.g_steps_per_d_step)])
    return idx, z


def _compute(pack: _Pack, idx: torch.Tensor, z: torch.Tensor, *, gan: GANConfig) -> torch.Tensor:
    """train_gan's step for every member at once on drawn indices and latents; returns (P, 2): d_loss,
    g_loss per member. The forward passes run under the levers' autocast (and compiled forward), the
    losses on fp32 logits; d_loss includes the R1 penalty when gan.r1_gamma > 0, and the stacked EMA
    weights follow every G update."""
    d_loss_fn, g_loss_fn = LOSSES[gan.loss]
    d_losses = torch.vmap(d_loss_fn, in_dims=(0, 0, None))
    g_losses = torch.vmap(g_loss_fn)
    levers, P = pack.levers, len(pack.members)
    forward = compiled(packed_forward) if levers.compile else packed_forward
    real = pack.pool[idx]
    if gan.r1_gamma:  # R1 differentiates D's real logits in the real batch
        real.requires_grad_()
    y = None if pack.labels is None else pack.labels[idx]  # the fakes get the real batch's classes
    with levers.autocast():
        fake = forward(pack.g_ctx, z[0], y)
        real_logits, fake_logits = forward(pack.d_ctx, real, y), forward(pack.d_ctx, fake.detach(), y)
    d_loss = d_losses(with_ghosts(real_logits.float()), with_ghosts(fake_logits.float()), gan.real_label)[:P]
    if gan.r1_gamma:  # (P,): each member's own penalty, added to its own d_loss
        d_loss = d_loss + r1_penalty(real_logits, real, gan.r1_gamma)
    _update(pack.opt_d, d_loss, list(pack.D.params.values()))
    for k in range(gan.g_steps_per_d_step):
        with levers.autocast():
            if k > 0:  # the first G step reuses this iteration's fakes, as train_gan does
                fake = forward(pack.g_ctx, z[k], y)
            fake_logits = forward(pack.d_ctx, fake, y)
        g_loss = g_losses(with_ghosts(fake_logits.float()))[:P]
        _update(pack.opt_g, g_loss, list(pack.G.params.values()))
        if pack.ema is not None:
            ema_step(pack.ema, list(pack.G.params.values()), gan.ema_decay)
    return torch.stack([d_loss.detach(), g_loss.detach()], dim=1)


def _adversarial_step(pack: _Pack, *, gan: GANConfig, batch: int) -> torch.Tensor:
    """One step of every member (P, 2); with train.cuda_graphs the pack's captured step (a pack made
    anew, when a member leaves, captures its own)."""
    idx, z = _draws(pack, gan=gan, batch=batch)
    if not pack.levers.cuda_graphs:
        return _compute(pack, idx, z, gan=gan)
    if pack.graphed is None:
        dropout = pack.g_ctx.dropout_rngs if gan.family == "fc" else []
        pack.graphed = GraphedStep(lambda i, w: _compute(pack, i, w, gan=gan), dropout, pack.device)
    return pack.graphed(idx, z)


def _check(pack: _Pack, checked: int, done: int, results: list, *,
           bound: float = float("inf")) -> Optional[_Pack]:
    """train_gan's divergence check per member (one host sync): a member whose losses went NaN, inf
    or past ``bound`` (train.max_abs_loss) leaves the pack."""
    window = pack.losses[:, checked:done]
    healthy = (torch.isfinite(window) & (window.abs() <= bound)).flatten(1).all(1).tolist()
    out = [i for i, ok in enumerate(healthy) if not ok]
    for i in out:
        try:
            _check_finite(pack.losses[i], checked, done, pack.gan, max_abs_loss=bound)
        except GANDivergedError as err:
            results[pack.index[i]] = err
            logger.warning(f"packed member {pack.index[i]} (seed {pack.members[i].state.identity['seed']}) "
                           f"left its pack: {err}")
    return pack.without(out) if out else pack


def _train_group(pack: _Pack, start: int, *, gan: GANConfig, train: TrainConfig,
                 on_log: Optional[PackLog], results: list) -> None:
    """Train one pack whose members all resume from ``start``; fills ``results`` by member index."""
    t0 = time.perf_counter()
    checked, saving = start, any(m.checkpoint is not None for m in pack.members)
    for step in range(start, train.steps):
        pack.losses[:, step] = _adversarial_step(pack, gan=gan, batch=train.batch_size)
        done = step + 1
        log_now = done % train.log_every == 0 or done == train.steps
        save_now = saving and (done % train.checkpoint_every == 0 or done == train.steps)
        if log_now or save_now:
            pack = _check(pack, checked, done, results, bound=train.max_abs_loss)
            checked = done
            if pack is None:
                return
        if log_now and on_log is not None:
            means = pack.losses[:, max(0, done - train.log_every):done].mean(1).tolist()
            for i, (d, g) in zip(pack.index, means):
                on_log(i, done, d, g)
        if save_now:
            pack.write_back()
            for m in pack.members:
                if m.checkpoint is not None:
                    m.state.save(done, m.checkpoint, shape=m.shape, gan=gan, n_classes=m.n_classes)
    pack.write_back()
    if pack.device.type == "cuda":
        torch.cuda.synchronize(pack.device)
    seconds = time.perf_counter() - t0
    for i, m in zip(pack.index, pack.members):
        results[i] = _result(m, train, seconds)


def train_pack(members: list[PackMember], *, gan: GANConfig, train: TrainConfig,
               device: Optional[torch.device] = None,
               on_log: Optional[PackLog] = None) -> list[Union[TrainResult, GANDivergedError]]:
    """Train ``members`` (one configuration, their own data and seeds) as one packed model.

    Returns, in the order of ``members``, each one's TrainResult (its generator in eval mode with its
    own weights and batch-norm statistics; ``seconds`` is its pack's wall time, shared by the members
    that trained together) or, for a member whose losses went NaN or inf, the GANDivergedError
    train_gan would have raised. ``on_log(member index, step, mean_d_loss, mean_g_loss)`` is called
    every ``train.log_every`` steps for every member still training.
    """
    if gan.family in UNPACKABLE and len(members) > 1:
        raise ValueError(f"gan.family={gan.family} cannot be packed (see raygan.gan.models.UNPACKABLE); "
                         f"train its {len(members)} members one by one with train_gan (packs of 1)")
    device = device or resolve_device(train.device)
    levers = levers_for(gan, train, device)  # a lever that cannot run: before any work
    own_rngs = gan.family not in UNPACKABLE
    prepared = [_prepare(m.data, gan=gan, train=train, seed=m.seed, checkpoint_path=m.checkpoint_path,
                         data_weights=m.data_weights, device=device, labels=m.labels,
                         n_classes=m.n_classes, own_rngs=own_rngs) for m in members]
    kinds = {(m.shape, m.n_classes) for m in prepared}
    if len(kinds) > 1:
        raise ValueError("a pack's members share one architecture: their samples' shapes (and "
                         f"n_classes) must agree, got {sorted(kinds, key=str)}")
    results: list = [None] * len(members)
    for start in sorted({m.start for m in prepared}):
        index = [i for i, m in enumerate(prepared) if m.start == start]
        if start >= train.steps:  # finished before: nothing to train
            for i in index:
                results[i] = _result(prepared[i], train, 0.0)
        elif not own_rngs:
            results[index[0]] = _train_solo(index[0], prepared[index[0]], gan, train, on_log, levers)
        else:
            group = [prepared[i] for i in index]
            for m in group:
                m.state.G.train()
                m.state.D.train()
            _train_group(_Pack(group, index, gan, device, levers), start, gan=gan, train=train, on_log=on_log,
                         results=results)
    return results


def _train_solo(index: int, member: _Member, gan: GANConfig, train: TrainConfig,
                on_log: Optional[PackLog], levers: Levers = PLAIN) -> Union[TrainResult, GANDivergedError]:
    """A pack of one unpackable member: train_gan's own loop."""
    log = None if on_log is None else (lambda step, d, g: on_log(index, step, d, g))
    try:
        return _train_alone(member, gan=gan, train=train, on_log=log, levers=levers)
    except GANDivergedError as err:
        return err
