"""One member trained by a data-parallel group of processes (cluster.workers_per_member > 1): what each
process of the group changes in the solo member (raygan.gan.solo), so that the group trains the member
the one loop (raygan.gan.loop) would train alone at the full batch.

- The group's processes are a torch.distributed process group set up by their launcher (Ray Train's
  TorchTrainer: gloo on CPUs, NCCL on GPUs; raygan.cluster.wide). Every process builds the same
  seeded member and resumes from the same checkpoint.
- Every process draws the step's whole batch from the member's own generator (indices, latents,
  DiffAugment's parameters, exactly as a solo member draws them) and keeps its shard, rows
  ``rank * B / W`` to ``(rank + 1) * B / W``: the group's generators stay equal, so every process's
  checkpoint state is the one the solo member would have.
- G and D are wrapped in DistributedDataParallel, which averages each update's gradients over the
  group: with every loss a batch mean over equal shards, the average is the full batch's gradient.
  Batch norm layers become synchronised ones (torch's SyncBatchNorm on CUDA; on CPUs, where torch's
  refuses to run, :class:`GroupBatchNorm`), so a layer normalises by the whole batch's statistics.
- With privacy on, D's DP-SGD update is not DistributedDataParallel's: each process clips the per-record
  gradients of its part of the step's Poisson batch and the group sums them; the noise, drawn from the
  member's generator, is the same on every process and is added once to that sum, as the member alone
  adds it (raygan.privacy.dpsgd). The group's update is the solo member's, to float rounding, so the
  accountant counts the same steps at the same noise and sample rate.
- Each step's losses are averaged over the group, so every process records, checks and logs the same
  numbers and takes the same decisions (divergence, checkpoint, end).

What cannot run this way is refused when the config loads (raygan.config.parallel).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the member's data-parallel group (torch.distributed is set up)."""
    rank: int
    world_size: int

    @classmethod
    def current(cls) -> "DataParallel":
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size())

    def shard(self, batch_size: int) -> slice:
        """The rows of a step's batch this process trains on (train.batch_size divides evenly: checked
        at load)."""
        per = batch_size // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def part(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's part of ``rows`` whose number varies from step to step (a DP member's Poisson
        batch): contiguous, the first parts one row longer; the parts cover the rows once."""
        return rows.tensor_split(self.world_size)[self.rank]

    def sum(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each of ``tensors`` summed over the group (one all-reduce of their concatenation)."""
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        return [part.view_as(t) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over the group (the step's losses: every process then holds the same)."""
        dist.all_reduce(t)
        return t / self.world_size

    def wrap(self, module: nn.Module, device: torch.device) -> DistributedDataParallel:
        """``module`` with synchronised batch norms (in place), in DistributedDataParallel. Buffers are
        not broadcast: every process computes the same ones (global batch statistics, equal weights)."""
        sync_batch_norms(module, device)
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                       forward_sync_buffers=False)


class _GroupSum(torch.autograd.Function):
    """The sum of a tensor over the group, differentiable: the gradient of a sum is the sum of every
    process's gradient (torch.distributed.nn's all_reduce, deprecated in torch 2.14, did the same)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def group_sum(x: torch.Tensor) -> torch.Tensor:
    return _GroupSum.apply(x)


class GroupBatchNorm(nn.Module):
    """Batch norm over the whole group's batch, for CPUs (torch's SyncBatchNorm runs on GPUs only).

    Its statistics are summed over the group by a differentiable all-reduce (:func:`group_sum`; two passes:
    the mean, then the squared deviations from it), so the backward pass carries every process's part
    as SyncBatchNorm's does. Holds a batch norm's parameters and buffers under their names, so a
    state dict is a batch norm's."""

    def __init__(self, bn: nn.Module):
        super().__init__()
        self.eps, self.momentum = bn.eps, bn.momentum
        self.weight, self.bias = bn.weight, bn.bias  # the same Parameters: optimizers still hold them
        self.register_buffer("running_mean", bn.running_mean)
        self.register_buffer("running_var", bn.running_var)
        self.register_buffer("num_batches_tracked", bn.num_batches_tracked)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False,
                                0.0, self.eps)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = group_sum(x.new_tensor([x.numel() // x.shape[1]], dtype=torch.float32))
        mean = group_sum(x.float().sum(dims)) / count
        var = group_sum(((x.float() - mean.view(shape)) ** 2).sum(dims)) / count
        if self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                n = float(count)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                self.running_var.lerp_((var.detach() * n / max(n - 1, 1)).to(self.running_var.dtype), factor)
        out = (x - mean.view(shape).to(x.dtype)) * torch.rsqrt(var.view(shape) + self.eps).to(x.dtype)
        if self.weight is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batch_norms(module: nn.Module, device: torch.device) -> int:
    """Every batch norm below ``module`` replaced, in place, by a synchronised one with the same
    parameters and buffers; how many."""
    replaced = 0
    for name, child in module.named_children():
        if isinstance(child, BATCH_NORMS):
            sync = nn.SyncBatchNorm.convert_sync_batchnorm(child) if device.type == "cuda" \
                else GroupBatchNorm(child)
            setattr(module, name, sync)
            replaced += 1
        else:
            replaced += sync_batch_norms(child, device)
    return replaced


__all__ = ["DataParallel", "GroupBatchNorm", "sync_batch_norms"]
