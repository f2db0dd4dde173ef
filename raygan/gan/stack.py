"""P modules of one architecture as stacked, member-first tensors (what a pack's layers read and its
optimizers step), and the context a packed forward reads: the stacks and each member's dropout
generator. Used by raygan.gan.pack_layers (the packed forward) and raygan.gan.pack (the stepper).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

__all__ = ["Stack", "Context", "stored_layout", "in_layout"]


# train.channels_last: convolution weights stored in the memory order their batched matrix product
# reads, so that its permute is a view, not a copy.
def stored_layout(module: nn.Module, name: str) -> Optional[tuple[int, ...]]:
    """For a pack stacked with channels_last: the permutation of the stacked parameter ``name`` (member
    first) that its batched matrix product reads, or None to keep it contiguous (pack_layers' _conv
    reads Conv2d weights as (P, k, k, C, out), _conv_transpose ConvTranspose2d weights as
    (P, C, k, k, out))."""
    prefix, _, leaf = name.rpartition(".")
    layer = module.get_submodule(prefix) if prefix else module
    if leaf != "weight":
        return None
    if isinstance(layer, nn.ConvTranspose2d):
        return 0, 1, 3, 4, 2
    if isinstance(layer, nn.Conv2d):
        return 0, 3, 4, 2, 1
    return None


def in_layout(t: torch.Tensor, perm: Optional[tuple[int, ...]]) -> torch.Tensor:
    """A copy of ``t`` (same shape and values) whose memory order is ``t.permute(perm)``'s."""
    if perm is None:
        return t
    strides = t.permute(perm).contiguous().permute(tuple(perm.index(d) for d in range(t.dim()))).stride()
    return torch.empty_strided(t.shape, strides, dtype=t.dtype, device=t.device).copy_(t)



class Stack:
    """P modules of one architecture: parameters (leaves) and buffers stacked member-first."""

    def __init__(self, modules: list[nn.Module], channels_last: bool = False):
        """``channels_last``: convolution weights stored in the memory order their batched matrix
        product reads (raygan.gan.levers.stored_layout), so its permute is a view, not a copy."""
        self.template = modules[0]
        self.params = {name: in_layout(torch.stack([dict(m.named_parameters())[name].detach() for m in modules]),
                                       stored_layout(self.template, name) if channels_last else None)
                       .requires_grad_() for name, _ in self.template.named_parameters()}
        self.buffers = {name: torch.stack([dict(m.named_buffers())[name] for m in modules])
                        for name, _ in self.template.named_buffers()}

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.params[name] if name in self.params else self.buffers[name]

    @torch.no_grad()
    def write_back(self, i: int, module: nn.Module) -> None:
        """Copy member ``i``'s parameters and buffers into its solo ``module``."""
        for name, tensor in module.state_dict(keep_vars=True).items():
            tensor.copy_(self[name][i])


class Context:
    """What a packed forward reads: the stacks and each member's dropout generator."""

    def __init__(self, stack: Stack, dropout_rngs: list[torch.Generator]):
        self.stack, self.dropout_rngs = stack, dropout_rngs
