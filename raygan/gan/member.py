"""One GAN member's training state: seeded models, optimizers, minibatch sampler, losses and the
checkpoint that holds all of them (saved atomically, tensors and plain data only, read back with
weights_only=True), set up fresh or resumed (`prepare_member`); and what a finished member returns.

A member is set up the same way whether it then trains alone or in a pack (raygan.gan.pack): the pack
stacks these states and writes its members' numbers back into them before every checkpoint, so a
member's checkpoint has one format and resumes under either.

With privacy on (``privacy``: a member alone, raygan.privacy.dpsgd) the member's D has group norms for
batch norms, its real batches are Poisson samples, its identity holds its DP settings and its
checkpoint its accountant history, so that a resumed member counts every step it took.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from raygan.config import GANConfig, TrainConfig
from raygan.gan.checkpoints import gan_record, load_torch_file, save_torch_file
from raygan.gan.fidelity import ema_copy
from raygan.gan.models import CONDITIONAL, PROGRESSIVE, build_gan
from raygan.gan.models.pggan import PGGenerator
from raygan.privacy.dpsgd import MemberPrivacy, PoissonSampler, private_discriminator
from raygan.runs.manifest import member_fix

__all__ = ["GANDivergedError", "CheckpointMismatchError", "TrainResult", "BatchSampler", "MemberState",
           "Member", "resolve_device", "prepare_member", "member_result", "check_finite"]


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
    privacy: Optional[dict] = None  # privacy on: its MemberPrivacy and accountant history


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


def _identity(gan: GANConfig, train: TrainConfig, seed: int, n: int, weighted: bool,
              n_classes: Optional[int], privacy: Optional[MemberPrivacy]) -> dict:
    """What a checkpoint must agree on to be resumed (steps may grow: training then continues, except
    for a progressive GAN, whose growing schedule is laid out over train.steps). The family-specific
    keys appear only for their families, so unconditional checkpoints keep their earlier identity."""
    identity = {"gan": gan_record(gan), "batch_size": train.batch_size, "seed": seed,
                "n_data": n, "weighted": weighted}
    if n_classes is not None:
        identity["n_classes"] = n_classes
    if gan.family in PROGRESSIVE:
        identity["schedule_steps"] = train.steps
    if privacy is not None:  # its noise is solved for train.steps: a member may not grow past them
        identity.update(privacy=privacy.to_dict(), schedule_steps=train.steps)
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
class MemberState:
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
    privacy: Optional[MemberPrivacy] = None  # privacy on: D trains with DP-SGD (raygan.privacy.dpsgd)
    # [[noise multiplier, sample rate, steps], ...]: the member's DP steps, Opacus's accountant history
    privacy_history: list = field(default_factory=list)

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
        if self.privacy is not None:  # likewise
            ckpt["privacy_history"] = [list(h) for h in self.privacy_history]
        save_torch_file(ckpt, Path(path))  # tensors and plain data: read back with weights_only=True

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
        if self.privacy is not None:  # the identity holds the DP settings, so the checkpoint has its history
            self.privacy_history[:] = [list(h) for h in ckpt["privacy_history"]]
        start = min(ckpt["step"], steps)
        self.losses[:start] = ckpt["losses"][:start].to(self.device)
        return start


def check_finite(losses: torch.Tensor, checked: int, done: int, gan: GANConfig, *,
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


@dataclass
class Member:
    """One GAN set up to train (or resume): its data on the device, its state, where it starts."""
    state: MemberState
    data: torch.Tensor
    labels: Optional[torch.Tensor]
    n_classes: Optional[int]
    shape: tuple
    start: int
    checkpoint: Optional[Path]


def prepare_member(data: torch.Tensor, *, gan: GANConfig, train: TrainConfig, seed: int,
             checkpoint_path: Optional[Path], data_weights: Optional[torch.Tensor], device: torch.device,
             labels: Optional[torch.Tensor], n_classes: Optional[int], own_rngs: bool = False,
             privacy: Optional[MemberPrivacy] = None) -> Member:
    """Seeded models, optimizers, sampler and losses of one GAN, resumed from ``checkpoint_path`` if
    it exists. ``own_rngs``: dropout gets generators of its own, in the state the default ones would
    have here (for a member trained beside others). ``privacy``: D trains with DP-SGD."""
    data = data.to(device)  # the whole class lives on the training device; batches are index lookups
    n, shape = data.shape[0], tuple(data.shape[1:])
    labels = _check_labels(gan, labels, n_classes, n)
    if labels is None:
        n_classes = None
    else:
        labels, n_classes = labels.to(device), int(n_classes)
    torch.manual_seed(seed)
    G, D = build_gan(gan, shape, n_classes=n_classes)
    if privacy is not None:
        if data_weights is not None or privacy.records != n:
            raise ValueError(f"a DP member trains on its {privacy.records} records uniformly, got {n} "
                             f"records{' with data weights' if data_weights is not None else ''}")
        D = private_discriminator(D)
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
    state = MemberState(G=G, D=D, opt_g=torch.optim.Adam(G.parameters(), lr=gan.lr_g, betas=betas),
                      opt_d=torch.optim.Adam(D.parameters(), lr=gan.lr_d, betas=betas), rng=rng,
                      sampler=BatchSampler(n, train.batch_size, rng, weights) if privacy is None
                      else PoissonSampler(n, privacy.sample_rate, rng),
                      losses=torch.zeros(train.steps, 2, device=device),
                      identity=_identity(gan, train, seed, n, weights is not None, n_classes, privacy),
                      device=device, G_ema=ema_copy(G) if gan.ema_decay else None, privacy=privacy, **own)
    start = state.resume(checkpoint_path, train.steps)
    return Member(state, data, labels, n_classes, shape, start,
                   Path(checkpoint_path) if checkpoint_path else None)


def member_result(member: Member, train: TrainConfig, seconds: float) -> TrainResult:
    G, D, G_ema = member.state.G, member.state.D, member.state.G_ema
    if isinstance(G, PGGenerator):  # a trained progressive GAN samples at its full size
        for model in (G, D) + ((G_ema,) if G_ema is not None else ()):
            model.set_progress(member.shape[-1], 1.0)
    G.eval()
    if G_ema is not None:
        G_ema.eval()
    privacy = None if member.state.privacy is None else {
        **member.state.privacy.to_dict(), "history": [list(h) for h in member.state.privacy_history]}
    return TrainResult(generator=G if G_ema is None else G_ema, losses=member.state.losses.cpu().numpy(),
                       steps=train.steps, seconds=seconds, resumed_from=member.start,
                       checkpoint=member.checkpoint, privacy=privacy)
