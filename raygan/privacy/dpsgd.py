"""DP-SGD on one member's discriminator: what raygan.gan.step calls for D's update when privacy is on.

Abadi et al., "Deep learning with differential privacy" (Algorithm 1), as Opacus runs it, applied to
the half of D's loss that reads private records:

- Poisson sampling (:class:`PoissonSampler`): every step each of the member's n records joins the real
  batch independently with probability q = train.batch_size / n, drawn from the member's own seeded
  generator (a resumed or rerun member draws the same batches); a batch may be empty.
- Per-record gradients of the real half of D's loss (torch.func: ``vmap`` of ``grad`` over the batch),
  each clipped to L2 norm C (privacy.max_grad_norm), summed, plus Gaussian noise N(0, sigma^2 C^2) per
  coordinate, divided by the expected batch size q n (Opacus's "mean" reduction under Poisson sampling).
- The fakes are not private: D's gradient on them is the ordinary gradient of the fake half of the loss
  (a mean over the train.batch_size fakes), added to the noised real half. They consume none of the
  clipping budget (Bie, Kamath and Zhang, "Private GANs, revisited", do the same).
- The generator's update reads D only through its forward pass, and its gradient is taken with respect
  to G's parameters alone: no per-record machinery runs there (torch.func keeps no hooks on D).

The loss the member records as d_loss is the fake half alone (D's loss on fakes, a function of the
private D's weights and public latents): the real half reads records outside the accountant, and the
divergence check that can drop a member from the released set reads the recorded losses.

Batch norm mixes the records of a batch, so D's batch norms become group norms first
(:func:`private_discriminator`, Opacus's ModuleValidator.fix; privacy.d_norm). Every step is one entry
in Opacus's accountant history form, (noise multiplier, sample rate, steps) (:func:`record_step`).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import torch
import torch.nn as nn
from torch.func import functional_call, grad, vmap

from raygan.gan.losses import D_TERMS

if TYPE_CHECKING:
    from raygan.gan.parallel import DataParallel


@dataclass(frozen=True)
class MemberPrivacy:
    """What one member's DP-SGD runs with; plain data, so that it travels to a Ray task and into the
    member's checkpoint identity (raygan.gan.member)."""
    noise_multiplier: float  # sigma, solved from the target before any training (raygan.privacy.accountant)
    max_grad_norm: float     # C
    sample_rate: float       # q = train.batch_size / records
    records: int             # n: the private records this member trains on
    d_steps: int = 1         # privacy.d_steps: DP-SGD steps of D per generator update, each counted

    @property
    def expected_batch(self) -> float:
        return self.sample_rate * self.records

    def to_dict(self) -> dict:
        """Its fields; d_steps only when it is not 1, so that members (and checkpoint identities) made
        before the option existed keep their record."""
        out = dataclasses.asdict(self)
        if self.d_steps == 1:
            del out["d_steps"]
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> "MemberPrivacy":
        return cls(**raw)


class PoissonSampler:
    """The real batch of a DP step: each of ``n`` records independently with probability
    ``sample_rate``, from ``generator`` (the member's own). The generator is the whole state (saved in
    the member's checkpoint), so ``state`` holds nothing else."""

    def __init__(self, n: int, sample_rate: float, generator: torch.Generator):
        self.n, self.sample_rate, self.generator = n, sample_rate, generator

    def next(self) -> torch.Tensor:
        draws = torch.rand(self.n, generator=self.generator, device=self.generator.device)
        return torch.nonzero(draws < self.sample_rate).flatten()

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict, device: torch.device) -> None:
        """Nothing to restore beyond the generator."""


def private_discriminator(D: nn.Module) -> nn.Module:
    """``D`` with every batch norm replaced by a group norm (Opacus's ModuleValidator.fix:
    GroupNorm(min(32, C), C)); ValueError if a module remains that mixes the records of a batch."""
    from opacus.validators import ModuleValidator

    D = ModuleValidator.fix(D)
    problems = ModuleValidator.validate(D, strict=False)
    if problems:
        raise ValueError(f"the discriminator cannot train with DP-SGD: {problems[0]}")
    return D


def clip_per_sample(per_sample: dict[str, torch.Tensor], max_grad_norm: float) -> dict[str, torch.Tensor]:
    """Each record's gradient (the leading dimension of every tensor) scaled to L2 norm at most
    ``max_grad_norm`` over all parameters together, as Opacus clips (factor C / (norm + 1e-6), at most 1)."""
    norms = torch.stack([g.flatten(1).norm(2, dim=1) for g in per_sample.values()], dim=1).norm(2, dim=1)
    factor = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
    return {k: g * factor.view(-1, *([1] * (g.dim() - 1))) for k, g in per_sample.items()}


def per_sample_grads(D: nn.Module, real: torch.Tensor, real_term: Callable) -> dict[str, torch.Tensor]:
    """Every record's gradient of its own real-half loss, per parameter (records first)."""
    params = {k: p.detach() for k, p in D.named_parameters()}
    buffers = dict(D.named_buffers())

    def loss_one(p: dict, x: torch.Tensor) -> torch.Tensor:
        return real_term(functional_call(D, (p, buffers), (x.unsqueeze(0),)).float()).sum()

    return vmap(grad(loss_one), in_dims=(None, 0), randomness="different")(params, real)


def dp_gradients(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, loss: str, real_label: float,
                 privacy: MemberPrivacy, generator: torch.Generator,
                 group: Optional[DataParallel] = None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """D's gradient on a Poisson batch ``real`` (B_t, ...; B_t may be 0) and the fakes ``fake``
    (B, ...): (sum of the records' clipped gradients + noise) / (q n) + the fake half's ordinary
    gradient, one tensor per parameter of D in ``D.parameters()`` order; and the fake half's loss.
    ``group`` (a data-parallel member): ``real`` and ``fake`` are this process's parts; the clipped
    sums are summed and the fake halves' gradients averaged over the group before the noise (the
    same on every process) is added, so every process gets the whole batch's gradient."""
    real_term, fake_term = D_TERMS[loss]
    named = dict(D.named_parameters())
    if real.shape[0]:
        per_sample = per_sample_grads(D, real, functools.partial(real_term, real_label=real_label))
        summed = {k: g.sum(0) for k, g in clip_per_sample(per_sample, privacy.max_grad_norm).items()}
    else:  # an empty Poisson batch: the noise alone stands for the records
        summed = {k: torch.zeros_like(p) for k, p in named.items()}
    std = privacy.noise_multiplier * privacy.max_grad_norm
    fake_loss = fake_term(D(fake).float()).mean()
    fake_grads = torch.autograd.grad(fake_loss, list(named.values()))
    if group is not None:
        keys = list(named)
        together = group.sum([summed[k] for k in keys] + list(fake_grads))
        summed = dict(zip(keys, together[:len(keys)]))
        fake_grads = [g / group.world_size for g in together[len(keys):]]
    grads = []
    for (k, p), g_fake in zip(named.items(), fake_grads):
        noise = torch.normal(0.0, std, size=p.shape, generator=generator, device=p.device) if std else 0.0
        grads.append((summed[k] + noise) / privacy.expected_batch + g_fake)
    return grads, fake_loss.detach()


def record_step(history: list, privacy: MemberPrivacy) -> None:
    """One DP step in Opacus's accountant history form [[noise multiplier, sample rate, steps], ...];
    a step with the same setting as the last entry adds to it (as Opacus's accountants do)."""
    if history and history[-1][0] == privacy.noise_multiplier and history[-1][1] == privacy.sample_rate:
        history[-1][2] += 1
    else:
        history.append([privacy.noise_multiplier, privacy.sample_rate, 1])


class PrivateD:
    """D's update of one member trained alone with privacy on: what raygan.gan.step.StepModels carries
    as ``private_d``. ``history`` is the member's own accountant history (its checkpoint's); ``data``
    the member's records, from which the extra steps of privacy.d_steps > 1 draw their batches."""

    def __init__(self, D: nn.Module, opt: torch.optim.Optimizer, privacy: MemberPrivacy,
                 generator: torch.Generator, history: list, *, loss: str, real_label: float,
                 data: Optional[torch.Tensor] = None, batch: Optional[int] = None,
                 group: Optional[DataParallel] = None):
        self.D, self.opt, self.privacy, self.generator, self.history = D, opt, privacy, generator, history
        self.loss, self.real_label, self.data, self.batch, self.group = loss, real_label, data, batch, group
        if group is not None and batch is None:
            raise ValueError("a data-parallel DP member needs the step's whole batch size (batch=)")
        if privacy.d_steps > 1 and data is None:
            raise ValueError("privacy.d_steps > 1 needs the member's records (data=) for its extra batches")
        self.sampler = PoissonSampler(privacy.records, privacy.sample_rate, generator)

    def _step(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        grads, fake_loss = dp_gradients(self.D, real, fake, loss=self.loss, real_label=self.real_label,
                                        privacy=self.privacy, generator=self.generator, group=self.group)
        for p, g in zip(self.D.parameters(), grads):
            p.grad = g
        self.opt.step()
        record_step(self.history, self.privacy)
        return fake_loss

    def update(self, real: torch.Tensor, fake: torch.Tensor,
               G: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, z_dim: int = 0) -> torch.Tensor:
        """privacy.d_steps DP-SGD steps of D: the first on member-first ``real`` (1, B_t, ...) and
        ``fake`` (1, B, ...), the step's own draws; each further one on a fresh Poisson batch and B
        fresh fakes of ``G`` (member-first latents (1, B, z_dim) -> images), drawn from the member's generator after
        the step's draws (Bie, Kamath and Zhang's several D steps per G step). Every step is one entry
        of the accountant's history. Returns (1,): the mean fake half of D's loss over the steps (what
        the member records as d_loss)."""
        losses = [self._step(real[0], fake[0])]
        for _ in range(self.privacy.d_steps - 1):
            idx = self.sampler.next()
            # the whole step's latents, as the member alone draws them; a group's process keeps its part
            z = torch.randn(self.batch or fake.shape[1], z_dim, generator=self.generator, device=fake.device)
            if self.group is not None:
                idx, z = self.group.part(idx), z[self.group.shard(self.batch)]
            with torch.no_grad():
                extra = G(z.unsqueeze(0))[0]
            losses.append(self._step(self.data[idx], extra))
        return torch.stack(losses).mean().unsqueeze(0)


__all__ = ["MemberPrivacy", "PoissonSampler", "PrivateD", "clip_per_sample", "dp_gradients", "per_sample_grads",
           "private_discriminator", "record_step"]
