"""The one GAN training loop: step, check, log, checkpoint, over a member *stepper*.

A stepper trains P members that resume from the same step: a pack (raygan.gan.pack: P members of one
configuration as one vectorised model) or one member on its own modules (raygan.gan.solo: any family,
and the only way for the ones that cannot pack). Either way the loop is the same:

- every step, ``stepper.step`` runs raygan.gan.step.adversarial_step on the members' draws and returns
  their losses (P, 2), which the loop records;
- at each log or checkpoint step (one host sync) every member's losses since the last check are
  checked: a member whose losses went NaN, inf or past train.max_abs_loss stops with the
  GANDivergedError train_gan raises, is never updated again and keeps its last good checkpoint; the
  others go on without it (``stepper.without``);
- ``on_log(member index, step, mean d_loss, mean g_loss)`` every train.log_every steps;
- every train.checkpoint_every steps each member's numbers are written back into its own state and
  saved in the one checkpoint format (raygan.gan.member).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional, Protocol

import torch

from raygan.config import GANConfig, TrainConfig
from raygan.gan.member import GANDivergedError, Member, check_finite, member_result

logger = logging.getLogger(__name__)

# on_log(member index, step, mean d_loss, mean g_loss)
MemberLog = Callable[[int, int, float, float], None]


class Stepper(Protocol):
    """P members that train together, from the same step."""
    members: list[Member]
    index: list[int]        # each member's position in the caller's list (results, on_log)
    losses: torch.Tensor    # (P, train.steps, 2): the members' recorded losses (views of their own)
    device: torch.device

    def step(self, step: int) -> torch.Tensor:
        """One adversarial step of every member; (P, 2) losses."""

    def write_back(self) -> None:
        """Every member's current numbers into its own MemberState (before a checkpoint, at the end)."""

    def without(self, out: list[int]) -> Optional["Stepper"]:
        """This stepper less the members at positions ``out``, or None when none is left."""


def _check(stepper: Stepper, checked: int, done: int, results: list, *, gan: GANConfig,
           bound: float) -> Optional[Stepper]:
    """The divergence check of every member over steps checked..done (one host sync)."""
    window = stepper.losses[:, checked:done]
    healthy = (torch.isfinite(window) & (window.abs() <= bound)).flatten(1).all(1).tolist()
    out = [i for i, ok in enumerate(healthy) if not ok]
    for i in out:
        try:
            check_finite(stepper.losses[i], checked, done, gan, max_abs_loss=bound)
        except GANDivergedError as err:
            results[stepper.index[i]] = err
            if len(stepper.members) > 1:
                logger.warning(f"packed member {stepper.index[i]} (seed "
                               f"{stepper.members[i].state.identity['seed']}) left its pack: {err}")
    return stepper.without(out) if out else stepper


def train_loop(stepper: Stepper, start: int, *, gan: GANConfig, train: TrainConfig,
               on_log: Optional[MemberLog], results: list) -> None:
    """Train ``stepper``'s members from ``start`` to train.steps; fills ``results`` by member index with
    each one's TrainResult or GANDivergedError."""
    t0 = time.perf_counter()
    checked, saving = start, any(m.checkpoint is not None for m in stepper.members)
    for step in range(start, train.steps):
        stepper.losses[:, step] = stepper.step(step)
        done = step + 1
        log_now = done % train.log_every == 0 or done == train.steps
        save_now = saving and (done % train.checkpoint_every == 0 or done == train.steps)
        if log_now or save_now:
            stepper = _check(stepper, checked, done, results, gan=gan, bound=train.max_abs_loss)
            checked = done
            if stepper is None:
                return
        if log_now and on_log is not None:
            means = stepper.losses[:, max(0, done - train.log_every):done].mean(1).tolist()
            for i, (d, g) in zip(stepper.index, means):
                on_log(i, done, d, g)
        if save_now:
            stepper.write_back()
            for m in stepper.members:
                if m.checkpoint is not None:
                    m.state.save(done, m.checkpoint, shape=m.shape, gan=gan, n_classes=m.n_classes)
    stepper.write_back()
    if stepper.device.type == "cuda":
        torch.cuda.synchronize(stepper.device)
    seconds = time.perf_counter() - t0
    for i, m in zip(stepper.index, stepper.members):
        results[i] = member_result(m, train, seconds)
