"""The speed levers' rules that the configuration alone decides (train.precision, train.channels_last,
train.compile, train.cuda_graphs against gan.family, gan.r1_gamma and where the member trains).

The config's checks run them when a config loads, so a combination that cannot run is refused before
any work; raygan.gan.levers runs them again with the device a member trains on, then asks the device
itself (bfloat16 support, a compiler for torch.compile), which needs torch and stays there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from raygan.config.families import CHANNELS_LAST, FAMILIES
from raygan.config.fields import ConfigError

if TYPE_CHECKING:  # the schema imports the checks, which import this module
    from raygan.config.schema import GANConfig, TrainConfig


def check_lever_config(gan: GANConfig, train: TrainConfig, *, packed: bool = True,
                       device_type: Optional[str] = None) -> None:
    """ConfigError (one line: the problem and the fix) for a lever that ``gan`` and ``train`` rule
    out. ``packed=False``: the member trains alone (train_gan), where no step is captured.
    ``device_type`` ("cuda", "cpu") where the device is known, else train.device decides (auto may
    find a GPU)."""
    family = FAMILIES[gan.family]
    if train.channels_last and not family.channels_last:
        if not family.convolutional:
            raise ConfigError(f"train.channels_last lays out convolutions, and gan.family={gan.family} "
                              "has none; set train.channels_last=false")
        raise ConfigError(f"train.channels_last is not supported with gan.family={gan.family} (raygan "
                          f"lays out {', '.join(sorted(CHANNELS_LAST))}'s convolutions); set "
                          "train.channels_last=false")
    # R1 differentiates D's gradient (create_graph=True): torch.compile's AOT autograd has no double
    # backward, and a captured step with one is untested here; refuse both rather than fail mid-run.
    if gan.r1_gamma and train.compile:
        raise ConfigError("gan.r1_gamma > 0 needs a double backward, which train.compile cannot run; set "
                          "train.compile=false (or gan.r1_gamma=0)")
    if gan.r1_gamma and train.cuda_graphs:
        raise ConfigError("gan.r1_gamma > 0 (a double backward) is not supported with train.cuda_graphs; "
                          "set train.cuda_graphs=false (or gan.r1_gamma=0)")
    if train.compile and family.progressive:
        raise ConfigError(f"train.compile cannot run gan.family={gan.family}: its fade-in changes the graph "
                          "every step (a recompilation each step); set train.compile=false")
    if not train.cuda_graphs:
        return
    if not family.packable:
        raise ConfigError(f"train.cuda_graphs captures a pack's step, and gan.family={gan.family} is never "
                          f"packed ({family.unpackable_because}); set train.cuda_graphs=false")
    if not packed:
        raise ConfigError("train.cuda_graphs captures a pack's step, and this member trains alone "
                          "(train_gan: recursive rounds, or cluster.members_per_task=1); set "
                          "train.cuda_graphs=false or train it in a pack")
    if (device_type or train.device) == "cpu":
        raise ConfigError("train.cuda_graphs needs a CUDA device, and this member trains on the CPU; "
                          "set train.cuda_graphs=false (or train on a GPU)")


__all__ = ["check_lever_config"]
