"""The one GAN training loop: discriminator step, generator step(s), log, checkpoint.

`train_gan` is seeded (same seed, same weights), checkpoints atomically every
``train.checkpoint_every`` steps (tensors and plain data only, read back with weights_only=True:
raygan.gan.checkpoints, which also holds load_generator/save_generator), resumes from its last
checkpoint, draws minibatches by optional
per-sample data weights (with replacement; AdaGAN's weights enter only through sampling), records the
losses of every step and stops with :class:`GANDivergedError` when a loss becomes NaN or inf.

Conditional families (ccgan) train on (image, class index) pairs: the fakes of a step are drawn for the
real batch's labels, so the generated class frequencies follow the data's. Progressive families (pggan)
are told their (resolution, alpha) before every step by ``pg_schedule``, a pure function of the step,
so a resumed run grows exactly as an uninterrupted one.

Fidelity levers (raygan.gan.fidelity), off by default: with gan.ema_decay > 0 an EMA copy of G follows
every generator step, is saved as the checkpoint's "G_ema" (only then: a default checkpoint holds what it
always held) and is the generator a run returns and samples; with gan.r1_gamma > 0 the discriminator
loss (and the logged d_loss) includes the R1 penalty on the real batch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from raygan.config import GANConfig, TrainConfig
from raygan.gan.checkpoints import gan_record, load_generator, load_torch_file, save_generator, save_torch_file
from raygan.gan.fidelity import ema_buffers, ema_copy, ema_step, r1_penalty
from raygan.gan.levers import PLAIN, Levers, levers_for, solo_models
from raygan.gan.losses import LOSSES
from raygan.gan.models import CONDITIONAL, PROGRESSIVE, build_gan, pg_resolutions, pg_schedule
from raygan.gan.models.pggan import PGGenerator
from raygan.runs.manifest import member_fix

__all__ = ["GANDivergedError", "CheckpointMismatchError", "TrainResult", "train_gan", "resolve_device",
           "load_generator", "save_generator"]


class GANDivergedError(RuntimeError):
    """A loss became NaN or inf; the message names the step and what to change."""


class CheckpointMismatchError(RuntimeError):
    """A checkpoint on disk was made with different settings than the ones asked for."""


@dataclass
class TrainResult:
    generator: nn.Module        # in eval mode; with gan.ema_decay > 0 the EMA generator
    losses: np.ndarray          # (steps, 2): discriminator loss, generator loss per step
    steps: int
    seconds: float              # wall time of this call (not of earlier, resumed-from calls)
    resumed_from: int           # step the run resumed from (0 for a fresh start)
    checkpoint: Optional[Path]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible; use train.device=auto or cpu")
    return torch.device(name)


class BatchSampler:
    """Minibatch indices: shuffled epochs for uniform data, weighted draws with replacement otherwise.

    Weighted draws use replacement so that AdaGAN steps where fewer than batch_size points keep a
    non-zero weight still work (AdaGAN's published implementation, tolstikhin/adagan, fails there).
    """

    def __init__(self, n: int, batch_size: int, generator: torch.Generator,
                 weights: Optional[torch.Tensor] = None):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.weights = weights
        self.perm: Optional[torch.Tensor] = None
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.weights is not None:
            return torch.multinomial(self.weights, self.batch_size, replacement=True,
                                     generator=self.generator)
        if self.perm is None or self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator, device=self.generator.device)
            self.pos = 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state(self) -> dict:
        return {"perm": None if self.perm is None else self.perm.cpu(), "pos": self.pos}

    def load_state(self, state: dict, device: torch.device) -> None:
        self.perm = None if state["perm"] is None else state["perm"].to(device)
        self.pos = state["pos"]


def _atomic_save(obj: dict, path: Path) -> None:
    save_torch_file(obj, path)  # plain data and tensors only: read back with weights_only=True


def _identity(gan: GANConfig, train: TrainConfig, seed: int, n: int, weighted: bool,
              n_classes: Optional[int]) -> dict:
    """What a checkpoint must agree on to be resumed (steps may grow: training then continues, except
    for a progressive GAN, whose growing schedule is laid out over train.steps). The family-specific
    keys appear only for their families, so unconditional checkpoints keep their earlier identity."""
    identity = {"gan": gan_record(gan), "batch_size": train.batch_size, "seed": seed,
                "n_data": n, "weighted": weighted}
    if n_classes is not None:
        identity["n_classes"] = n_classes
    if gan.family in PROGRESSIVE:
        identity["schedule_steps"] = train.steps
    return identity


def _check_labels(gan: GANConfig, labels: Optional[torch.Tensor], n_classes: Optional[int],
                  n: int) -> Optional[torch.Tensor]:
    if gan.family not in CONDITIONAL:
        if labels is not None:
            raise ValueError(f"gan.family={gan.family} is unconditional and would ignore labels; use "
                             "gan.family=ccgan for a class-conditional GAN, or train one GAN per class")
        return None
    if labels is None or n_classes is None:
        raise ValueError(f"gan.family={gan.family} is class-conditional: train_gan needs labels (N,) "
                         "int64 class indices aligned with data, and n_classes")
    labels = torch.as_tensor(labels)
    if labels.shape != (n,) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices of shape ({n},) aligned with data, got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    labels = labels.long()
    if n and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, n_classes={n_classes}), got "
                         f"{int(labels.min())}..{int(labels.max())}")
    return labels


def _data_weights(data_weights, n: int, device: torch.device) -> Optional[torch.Tensor]:
    if data_weights is None:
        return None
    weights = torch.as_tensor(data_weights, dtype=torch.float32, device=device)
    if weights.shape != (n,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"data_weights must be {n} non-negative numbers with a positive sum")
    return weights


@dataclass
class _Training:
    """Everything a checkpoint holds, so that saving and resuming name the same things."""
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    rng: torch.Generator
    sampler: BatchSampler
    losses: torch.Tensor
    identity: dict
    device: torch.device
    # Generators that stand in for torch's default CPU and CUDA generators (what dropout draws from),
    # for a member that trains beside others (raygan.gan.pack); None: the default generators.
    cpu_rng: Optional[torch.Generator] = None
    cuda_rng: Optional[torch.Generator] = None
    G_ema: Optional[nn.Module] = None  # gan.ema_decay > 0: the weight average of G (raygan.gan.fidelity)

    def save(self, step: int, path: Path, *, shape: tuple, gan: GANConfig, n_classes) -> None:
        cuda = self.device.type == "cuda"
        ckpt = {
            "identity": self.identity, "step": step, "G": self.G.state_dict(), "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "torch_rng": self.cpu_rng.get_state() if self.cpu_rng is not None else torch.get_rng_state(),
            "cuda_rng": (self.cuda_rng.get_state() if self.cuda_rng is not None else torch.cuda.get_rng_state(self.device))
            if cuda else None,
            "sampler": self.sampler.state(), "losses": self.losses[:step].cpu(),
            "sample_shape": shape, "gan": gan_record(gan), "n_classes": n_classes,
        }
        if self.G_ema is not None:  # only then, so that a default checkpoint's bytes stay as they were
            ckpt["G_ema"] = self.G_ema.state_dict()
        _atomic_save(ckpt, Path(path))

    def resume(self, path: Optional[Path], steps: int) -> int:
        """Load the checkpoint at ``path`` if there is one; returns the step to continue from."""
        if path is None or not Path(path).exists():
            return 0
        ckpt = load_torch_file(path, map_location=self.device, fix=member_fix(Path(path)))
        if ckpt["identity"] != self.identity:
            raise CheckpointMismatchError(
                f"{path} was written with different settings ({ckpt['identity']}); "
                "use a new output.run name or delete the member folder to start over")
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        if self.G_ema is not None:  # the identity records ema_decay, so the checkpoint has its G_ema
            self.G_ema.load_state_dict(ckpt["G_ema"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        self.rng.set_state(ckpt["rng"].cpu())
        (self.cpu_rng.set_state if self.cpu_rng is not None else torch.set_rng_state)(ckpt["torch_rng"].cpu())
        if self.device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            if self.cuda_rng is not None:
                self.cuda_rng.set_state(ckpt["cuda_rng"].cpu())
            else:
                torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu(), self.device)
        self.sampler.load_state(ckpt["sampler"], self.device)
        start = min(ckpt["step"], steps)
        self.losses[:start] = ckpt["losses"][:start].to(self.device)
        return start


def _check_finite(losses: torch.Tensor, checked: int, done: int, gan: GANConfig, *,
                  max_abs_loss: float = float("inf")) -> None:
    """One host sync per interval, not per step; a diverged model is never checkpointed. Diverged:
    a loss NaN, inf or past ``max_abs_loss`` (train.max_abs_loss) in absolute value."""
    window = losses[checked:done]
    healthy = torch.isfinite(window) & (window.abs() <= max_abs_loss)
    if healthy.all():
        return
    bad = checked + int(torch.nonzero(~healthy.all(1))[0])
    d_bad, g_bad = losses[bad].tolist()
    why = "not finite" if not torch.isfinite(losses[bad]).all() else f"past train.max_abs_loss={max_abs_loss:g}"
    raise GANDivergedError(
        f"GAN training diverged at step {bad}: d_loss={d_bad}, g_loss={g_bad} ({why}). "
        f"Lower gan.lr_d / gan.lr_g (now {gan.lr_d} / {gan.lr_g}) or try another seed; "
        f"the last good checkpoint is kept.")


def _adversarial_step(state: _Training, real: torch.Tensor, y: tuple, *, gan: GANConfig,
                      batch: int, levers: Levers = PLAIN, models: Optional[tuple] = None) -> torch.Tensor:
    """One discriminator step and gan.g_steps_per_d_step generator steps; returns (d_loss, g_loss).
    ``models``: what the step calls for G and D (raygan.gan.levers.solo_models; default the modules);
    the losses are computed in fp32 from the logits whatever ``levers.autocast`` ran them in. d_loss
    includes the R1 penalty when gan.r1_gamma > 0; the EMA generator follows every G step."""
    d_loss_fn, g_loss_fn = LOSSES[gan.loss]
    G, D = models or (state.G, state.D)
    rng, z_dim = state.rng, state.G.z_dim
    if gan.r1_gamma:  # R1 differentiates D's real logits in the real batch
        real = real.detach().requires_grad_()
    with levers.autocast():
        fake = G(torch.randn(batch, z_dim, generator=rng, device=state.device), *y)
        real_logits, fake_logits = D(real, *y), D(fake.detach(), *y)
    d_loss = d_loss_fn(real_logits.float(), fake_logits.float(), gan.real_label)
    if gan.r1_gamma:
        d_loss = d_loss + r1_penalty(real_logits, real, gan.r1_gamma)
    state.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    state.opt_d.step()
    for k in range(gan.g_steps_per_d_step):
        with levers.autocast():
            if k > 0:  # the first G step reuses this iteration's fakes, as DCGAN does
                fake = G(torch.randn(batch, z_dim, generator=rng, device=state.device), *y)
            fake_logits = D(fake, *y)
        g_loss = g_loss_fn(fake_logits.float())
        state.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        state.opt_g.step()
        if state.G_ema is not None:
            ema_step(list(state.G_ema.parameters()), list(state.G.parameters()), gan.ema_decay)
            ema_buffers(state.G_ema, state.G)
    return torch.stack([d_loss.detach(), g_loss.detach()])


@dataclass
class _Member:
    """One GAN set up to train (or resume): its data on the device, its state, where it starts."""
    state: _Training
    data: torch.Tensor
    labels: Optional[torch.Tensor]
    n_classes: Optional[int]
    shape: tuple
    start: int
    checkpoint: Optional[Path]


def _prepare(data: torch.Tensor, *, gan: GANConfig, train: TrainConfig, seed: int,
             checkpoint_path: Optional[Path], data_weights: Optional[torch.Tensor], device: torch.device,
             labels: Optional[torch.Tensor], n_classes: Optional[int], own_rngs: bool = False) -> _Member:
    """Seeded models, optimizers, sampler and losses of one GAN, resumed from ``checkpoint_path`` if
    it exists. ``own_rngs``: dropout gets generators of its own, in the state the default ones would
    have here (for a member trained beside others)."""
    data = data.to(device)  # the whole class lives on the training device; batches are index lookups
    n, shape = data.shape[0], tuple(data.shape[1:])
    labels = _check_labels(gan, labels, n_classes, n)
    if labels is None:
        n_classes = None
    else:
        labels, n_classes = labels.to(device), int(n_classes)
    torch.manual_seed(seed)
    G, D = build_gan(gan, shape, n_classes=n_classes)
    G, D = G.to(device), D.to(device)
    own = {}
    if own_rngs:
        own["cpu_rng"] = torch.Generator()
        own["cpu_rng"].set_state(torch.get_rng_state())
        if device.type == "cuda":
            own["cuda_rng"] = torch.Generator(device=device).manual_seed(seed)
    betas = (gan.beta1, gan.beta2)
    rng = torch.Generator(device=device).manual_seed(seed)
    weights = _data_weights(data_weights, n, device)
    state = _Training(G=G, D=D, opt_g=torch.optim.Adam(G.parameters(), lr=gan.lr_g, betas=betas),
                      opt_d=torch.optim.Adam(D.parameters(), lr=gan.lr_d, betas=betas), rng=rng,
                      sampler=BatchSampler(n, train.batch_size, rng, weights),
                      losses=torch.zeros(train.steps, 2, device=device),
                      identity=_identity(gan, train, seed, n, weights is not None, n_classes), device=device,
                      G_ema=ema_copy(G) if gan.ema_decay else None, **own)
    start = state.resume(checkpoint_path, train.steps)
    return _Member(state, data, labels, n_classes, shape, start,
                   Path(checkpoint_path) if checkpoint_path else None)


def _result(member: _Member, train: TrainConfig, seconds: float) -> TrainResult:
    G, D, G_ema = member.state.G, member.state.D, member.state.G_ema
    if isinstance(G, PGGenerator):  # a trained progressive GAN samples at its full size
        for model in (G, D) + ((G_ema,) if G_ema is not None else ()):
            model.set_progress(member.shape[-1], 1.0)
    G.eval()
    if G_ema is not None:
        G_ema.eval()
    return TrainResult(generator=G if G_ema is None else G_ema, losses=member.state.losses.cpu().numpy(),
                       steps=train.steps, seconds=seconds, resumed_from=member.start,
                       checkpoint=member.checkpoint)


def _train_alone(member: _Member, *, gan: GANConfig, train: TrainConfig,
                 on_log: Optional[Callable[[int, float, float], None]], levers: Levers = PLAIN) -> TrainResult:
    """train_gan's loop over steps start..train.steps, then its result."""
    state, data, labels, shape = member.state, member.data, member.labels, member.shape
    checkpoint_path, start, device = member.checkpoint, member.start, state.device
    G, D, losses, batch = state.G, state.D, state.losses, train.batch_size
    growing = pg_resolutions(gan.pg_start_size, shape[-1]) if gan.family in PROGRESSIVE else None
    G.train()
    D.train()
    models = solo_models(G, D, levers)
    t0 = time.perf_counter()
    checked = start
    y: tuple = ()  # extra model inputs: (labels,) for a conditional GAN
    for step in range(start, train.steps):
        if growing is not None:
            resolution, alpha = pg_schedule(step, train.steps, growing, gan.pg_fade_fraction)
            G.set_progress(resolution, alpha)
            D.set_progress(resolution, alpha)
        idx = state.sampler.next()
        real = data[idx]
        if labels is not None:
            y = (labels[idx],)  # the fakes get the real batch's classes
        losses[step] = _adversarial_step(state, real, y, gan=gan, batch=batch, levers=levers, models=models)
        done = step + 1
        log_now = done % train.log_every == 0 or done == train.steps
        save_now = checkpoint_path is not None and (done % train.checkpoint_every == 0
                                                    or done == train.steps)
        if log_now or save_now:
            _check_finite(losses, checked, done, gan, max_abs_loss=train.max_abs_loss)
            checked = done
        if log_now and on_log is not None:
            mean = losses[max(0, done - train.log_every):done].mean(0).tolist()
            on_log(done, mean[0], mean[1])
        if save_now:
            state.save(done, checkpoint_path, shape=shape, gan=gan, n_classes=member.n_classes)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return _result(member, train, time.perf_counter() - t0)


def train_gan(data: torch.Tensor, *, gan: GANConfig, train: TrainConfig, seed: int,
              checkpoint_path: Optional[Path] = None, data_weights: Optional[torch.Tensor] = None,
              device: Optional[torch.device] = None,
              on_log: Optional[Callable[[int, float, float], None]] = None,
              labels: Optional[torch.Tensor] = None, n_classes: Optional[int] = None) -> TrainResult:
    """Train one GAN on ``data`` (N, *sample_shape) for ``train.steps`` discriminator steps.

    ``on_log(step, mean_d_loss, mean_g_loss)`` is called every ``train.log_every`` steps.
    ``labels`` (N,) int64 class indices in [0, n_classes) and ``n_classes`` are required by the
    class-conditional families (gan.family=ccgan) and refused by the others.
    """
    device = device or resolve_device(train.device)
    levers = levers_for(gan, train, device, packed=False)  # a lever that cannot run: before any work
    member = _prepare(data, gan=gan, train=train, seed=seed, checkpoint_path=checkpoint_path,
                      data_weights=data_weights, device=device, labels=labels, n_classes=n_classes)
    return _train_alone(member, gan=gan, train=train, on_log=on_log, levers=levers)
