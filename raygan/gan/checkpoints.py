"""raygan's torch files (checkpoints, generator files, cached classifiers): written as tensors and plain
data only, read with ``torch.load(weights_only=True)``, so that no file raygan reads can run code.

The format itself (``save_torch_file``, ``load_torch_file``: a file the safe loader refuses is a one-line
ConfigError naming the file and the fix, never an unsafe retry) is raygan.runs.torch_files'. Generator
files are rebuilt into modules here (``load_generator``); a generator inside a local run folder is checked
against the sha256 its manifest records before it is read (a URI run's files are checked as they are
fetched, raygan.runs.folder.RunFolder.fetch).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from raygan.config import ConfigError, GANConfig
from raygan.gan.models import ConditionedGenerator, build_gan
from raygan.runs.manifest import member_fix, verify_member_file
from raygan.runs.torch_files import (  # noqa: F401  (the format's functions, importable here as before)
    check_plain,
    load_torch_file,
    save_torch_file,
)

# GANConfig fields added after checkpoints existed, with the default that builds the earlier models: a
# file records them only when they differ, so a default config writes the bytes it always wrote and an
# earlier checkpoint still resumes (its identity matches); a missing key reads back as the default.
_ADDED_LATER = {"d_depth": 1, "ema_decay": 0.0, "r1_gamma": 0.0, "attention_resolution": None, "diffaugment": "",
                "pacgan": 1, "minibatch_std": 0}


def gan_record(gan: GANConfig) -> dict:
    """``gan`` as the plain dict raygan's torch files record (see _ADDED_LATER)."""
    return {k: v for k, v in dataclasses.asdict(gan).items()
            if not (k in _ADDED_LATER and v == _ADDED_LATER[k])}


def load_generator(checkpoint_path: Path, device: str | torch.device = "cpu",
                   condition: Optional[int] = None) -> nn.Module:
    """Rebuild a trained generator (eval mode) from a member checkpoint or generator file.

    A class-conditional generator needs ``condition`` (a class index k): it comes back as a
    :class:`ConditionedGenerator` whose forward(z) is G(z, [k] * B), so it samples like a per-class one.
    A file of a local run folder whose manifest records its sha256 must match it (else ConfigError).
    A checkpoint with a "G_ema" (gan.ema_decay > 0) gives its EMA weights, as the generator file does.
    """
    verify_member_file(Path(checkpoint_path))
    fix = member_fix(Path(checkpoint_path))
    ckpt = load_torch_file(checkpoint_path, map_location=device, fix=fix)
    n_classes = ckpt.get("n_classes")
    if n_classes is None and condition is not None:
        raise ValueError(f"{checkpoint_path} holds an unconditional generator; load it with "
                         f"condition=None (got condition={condition})")
    if n_classes is not None and condition is None:
        raise ValueError(f"{checkpoint_path} holds a class-conditional generator of {n_classes} "
                         "classes; pass condition=k (the class index to sample)")
    try:
        G, _ = build_gan(GANConfig(**ckpt["gan"]), tuple(ckpt["sample_shape"]), n_classes=n_classes)
        # a member checkpoint of a run with gan.ema_decay > 0 holds the EMA generator, which samples
        G.load_state_dict(ckpt["G_ema"] if "G_ema" in ckpt else ckpt["G"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise ConfigError(f"{checkpoint_path} does not hold a raygan generator ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:120] if str(err) else ''}); {fix}") from err
    if n_classes is not None:
        G = ConditionedGenerator(G, condition)
    return G.to(device).eval()


def save_generator(G: nn.Module, gan: GANConfig, sample_shape: tuple, path: Path) -> None:
    """The generator alone (what synthesis needs), written atomically; a conditional G's n_classes
    is recorded so that load_generator can rebuild it."""
    if isinstance(G, ConditionedGenerator):  # save the model, not its fixed-class view
        G = G.generator
    save_torch_file({"G": G.state_dict(), "gan": gan_record(gan), "sample_shape": sample_shape,
                     "n_classes": getattr(G, "n_classes", None)}, Path(path))
