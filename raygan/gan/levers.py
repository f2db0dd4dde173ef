"""GPU speed levers of the training step (``train.precision``, ``train.channels_last``,
``train.compile``, ``train.cuda_graphs``): their checks, and how the pack and the solo loop apply them.

Every lever is off by default, and off means the step is the one raygan always ran, bit for bit: the
autocast context is a null context, the logits' ``.float()`` returns the tensor itself, the models are
called as they are. Each lever changes only how a step computes, never what it draws: latents,
minibatch indices and dropout masks come from the members' own generators in train_gan's order, so a
member keeps its seed's numbers up to the lever's rounding.

- precision=bf16: the forward passes run under ``torch.autocast`` with bfloat16, so matrix products
  and convolutions take bf16 inputs (tensor cores on a GPU); weights, gradients, Adam state and
  checkpoints stay fp32 and the losses are computed from fp32 logits. bf16 keeps fp32's exponent range,
  so no loss scaling is needed (Micikevicius et al., "Mixed Precision Training", need it for fp16).
- channels_last: the pack's convolution weights are stored in the layout its batched matrix products
  read (``(P, k, k, C, out)`` in memory, the same ``(P, out, C, k, k)`` tensor to every other reader),
  which removes a weight permute-and-copy per convolution and step; a member alone converts its
  modules to ``torch.channels_last``. Pack activations are channels-last already.
- compile: ``torch.compile`` of the packed forward (the solo loop: of G and D); the platform is checked
  first (a C++ compiler on CPU, Triton on CUDA) so that a missing one is a ConfigError, not a stack trace
  from inside the first step. The first step pays the compilation.
- cuda_graphs: the pack's whole step (both forward and backward passes, both Adam updates) captured
  once in a CUDA graph and replayed: latents and indices are drawn outside the graph, as now, and
  copied into its static inputs. Adam runs capturable (its step count on the GPU).
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn

from raygan.config import ConfigError, GANConfig, TrainConfig
from raygan.config.levers import check_lever_config

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def _compile_problem(device: torch.device) -> Optional[str]:
    """Why torch.compile cannot run here, or None."""
    from torch._dynamo.eval_frame import is_dynamo_supported

    if not is_dynamo_supported():
        return "torch.compile does not support this Python / platform"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "torch.compile on CUDA needs Triton, which is not installed"
    compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        return "torch.compile on CPU needs a C++ compiler (g++ or clang++), and none is on PATH"
    return None


def check_levers(gan: GANConfig, train: TrainConfig, device: Optional[torch.device] = None, *,
                 packed: bool = True) -> None:
    """ConfigError (one line: the problem and the fix) for a lever this family or device cannot run:
    the configuration's rules (raygan.config.levers, which the config's checks ran at load), then
    with ``device`` what the device itself decides (bfloat16 support, a compiler for torch.compile).
    ``packed=False``: the member trains alone (train_gan), where no step is captured."""
    check_lever_config(gan, train, packed=packed, device_type=None if device is None else device.type)
    if device is None:
        return
    if train.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"train.precision=bf16: {torch.cuda.get_device_name(device)} has no bfloat16 "
                          "support; set train.precision=fp32")
    if train.compile and (why := _compile_problem(device)) is not None:
        raise ConfigError(f"train.compile=true but {why}; set train.compile=false")


@dataclass(frozen=True)
class Levers:
    """The levers one training call runs with (``levers_for``); PLAIN is every lever off."""
    device_type: str = "cpu"
    dtype: Optional[torch.dtype] = None     # autocast dtype; None: fp32, no autocast
    channels_last: bool = False
    compile: bool = False
    cuda_graphs: bool = False

    def autocast(self):
        """The forward passes' autocast context; a CUDA graph needs autocast's cast cache off (its
        cached casts would outlive the capture)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=not self.cuda_graphs)


PLAIN = Levers()


def levers_for(gan: GANConfig, train: TrainConfig, device: torch.device, *, packed: bool = True) -> Levers:
    """The checked levers of ``train`` on ``device`` (ConfigError before any work if one cannot run)."""
    check_levers(gan, train, device, packed=packed)
    return Levers(device_type=device.type, dtype=PRECISIONS[train.precision],
                  channels_last=train.channels_last, compile=train.compile, cuda_graphs=train.cuda_graphs)


@functools.lru_cache(maxsize=None)
def compiled(fn: Callable) -> Callable:
    """``fn`` through torch.compile, once per process: every pack of one shape reuses the compiled
    code (its guards check shapes and dtypes, not which tensors)."""
    return torch.compile(fn, dynamic=False)


def solo_models(G: nn.Module, D: nn.Module, levers: Levers) -> tuple[Callable, Callable]:
    """A member trained alone: its modules in the levers' memory format (in place, the same parameter
    objects, so its optimizers and checkpoints still see them), and what the step calls for G and D."""
    if levers.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    if levers.compile:
        return torch.compile(G, dynamic=False), torch.compile(D, dynamic=False)
    return G, D
