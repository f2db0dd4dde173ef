"""Training one GAN member alone: `train_gan`, the one training loop (raygan.gan.loop) over a stepper
of one member on its own modules (raygan.gan.solo).

`train_gan` is seeded (same seed, same weights), checkpoints atomically every
``train.checkpoint_every`` steps (tensors and plain data only, read back with weights_only=True:
raygan.gan.member and raygan.gan.checkpoints, which also holds load_generator/save_generator), resumes
from its last checkpoint, draws minibatches by optional per-sample data weights (with replacement;
AdaGAN's weights enter only through sampling), records the losses of every step and stops with
:class:`GANDivergedError` when a loss becomes NaN or inf.

Conditional families (ccgan, biggan) train on (image, class index) pairs: the fakes of a step are drawn
for the real batch's labels, so the generated class frequencies follow the data's. Progressive families
(pggan) grow by a pure function of the step (raygan.gan.solo).

Fidelity levers (raygan.gan.fidelity), off by default: with gan.ema_decay > 0 an EMA copy of G follows
every generator step, is saved as the checkpoint's "G_ema" (only then: a default checkpoint holds what it
always held) and is the generator a run returns and samples; with gan.r1_gamma > 0 the discriminator
loss (and the logged d_loss) includes the R1 penalty on the real batch.

Privacy (``privacy``, a raygan.privacy.dpsgd.MemberPrivacy): D trains with DP-SGD on Poisson batches;
the result's ``privacy`` holds the member's settings and accountant history (raygan.privacy).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from raygan.config import GANConfig, TrainConfig
from raygan.gan.checkpoints import load_generator, save_generator
from raygan.gan.levers import levers_for
from raygan.gan.loop import train_loop
from raygan.gan.member import (
    BatchSampler,
    CheckpointMismatchError,
    GANDivergedError,
    TrainResult,
    prepare_member,
    resolve_device,
)
from raygan.gan.parallel import DataParallel
from raygan.gan.solo import SoloStepper
from raygan.privacy.dpsgd import MemberPrivacy

__all__ = ["GANDivergedError", "CheckpointMismatchError", "TrainResult", "BatchSampler", "train_gan",
           "resolve_device", "load_generator", "save_generator"]


def train_gan(data: torch.Tensor, *, gan: GANConfig, train: TrainConfig, seed: int,
              checkpoint_path: Optional[Path] = None, data_weights: Optional[torch.Tensor] = None,
              device: Optional[torch.device] = None,
              on_log: Optional[Callable[[int, float, float], None]] = None,
              labels: Optional[torch.Tensor] = None, n_classes: Optional[int] = None,
              privacy: Optional[MemberPrivacy] = None, group: Optional[DataParallel] = None) -> TrainResult:
    """Train one GAN on ``data`` (N, *sample_shape) for ``train.steps`` discriminator steps.

    ``on_log(step, mean_d_loss, mean_g_loss)`` is called every ``train.log_every`` steps.
    ``labels`` (N,) int64 class indices in [0, n_classes) and ``n_classes`` are required by the
    class-conditional families (gan.family=ccgan) and refused by the others. ``group``: this process
    is one of the member's data-parallel group (raygan.gan.parallel; cluster.workers_per_member > 1).
    """
    device = device or resolve_device(train.device)
    levers = levers_for(gan, train, device, packed=False)  # a lever that cannot run: before any work
    member = prepare_member(data, gan=gan, train=train, seed=seed, checkpoint_path=checkpoint_path,
                            data_weights=data_weights, device=device, labels=labels, n_classes=n_classes,
                            privacy=privacy)
    results: list = [None]
    log = None if on_log is None else (lambda _, step, d, g: on_log(step, d, g))
    train_loop(SoloStepper(member, 0, gan=gan, train=train, levers=levers, group=group), member.start, gan=gan,
               train=train, on_log=log, results=results)
    if isinstance(results[0], GANDivergedError):
        raise results[0]
    return results[0]
