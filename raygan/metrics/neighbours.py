"""Exhaustive nearest-neighbour search in blocks: the one distance loop behind raygan's metrics.

The memorisation audit (mean squared difference, the nearest row per member segment), the boosting
feature distances (Euclidean, nearest or mean) and PRDC (k-th neighbour radii, ball counts) all look at
every (query, reference) pair. They do it here, chunk_size x chunk_size distances at a time on a torch
device, so memory holds the inputs plus one block and never the Q x M matrix.

Two metrics:
- "euclidean": torch.cdist blocks; the distance reported is the block's value.
- "mse": mean squared difference. Rows are ranked by |r|^2 - 2 q.r (one matrix product a block); that
  expansion loses precision when q and r are almost equal, so the winners' distances are recomputed
  from the difference and an exact copy measures 0.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Optional

import numpy as np
import torch

from raygan.gan.train import resolve_device

METRICS = ("euclidean", "mse")
REDUCTIONS = ("nearest", "mean")
Segments = Optional[list[tuple[int, int]]]


class Neighbours(NamedTuple):
    """Per query row and reference segment: distances (Q, S, k), the k nearest in ascending order
    ("mean": (Q, S, 1) in float64), and their reference rows (-1 where a segment has fewer rows)."""
    distances: torch.Tensor
    indices: torch.Tensor


def as_rows(x, dtype: torch.dtype) -> torch.Tensor:
    """Samples (a tensor or an array, any shape) as (N, D) rows of ``dtype``, detached."""
    x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return x.reshape(len(x), -1).to(dtype)


def _pair(queries, reference, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    q, r = as_rows(queries, dtype), as_rows(reference, dtype)
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} values per row, reference {r.shape[1]}")
    return q, r


def _blocks(q: torch.Tensor, reference: torch.Tensor, r_sq: Optional[torch.Tensor], lo: int, hi: int,
            *, chunk_size: int, diagonal: Optional[int] = None) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, scores of q against reference[start:start + chunk_size]) over [lo, hi).

    With ``r_sq`` (|r|^2 per row) the scores are |r|^2 - 2 q.r, else Euclidean distances. The block
    starting at ``diagonal`` pairs each query with itself (a set searched against itself): those
    entries are set to inf.
    """
    for start in range(lo, hi, chunk_size):
        stop = min(start + chunk_size, hi)
        if r_sq is None:
            scores = torch.cdist(q, reference[start:stop])
        else:
            scores = torch.addmm(r_sq[start:stop], q, reference[start:stop].T, alpha=-2.0)
        if start == diagonal:
            scores.fill_diagonal_(float("inf"))
        yield start, scores


def _k_smallest(blocks, offset: Optional[torch.Tensor], k: int, n: int, like: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k smallest scores (+ the per-row ``offset``) of each row over all blocks, with columns."""
    best = torch.full((n, k), float("inf"), dtype=like.dtype, device=like.device)
    arg = torch.full((n, k), -1, dtype=torch.int64, device=like.device)
    for start, scores in blocks:
        if k == 1:  # min, not topk: it returns the first of tied columns, so ties keep the lowest row
            val, idx = scores.min(1, keepdim=True)
        else:
            val, idx = scores.topk(min(k, scores.shape[1]), dim=1, largest=False)
        if offset is not None:
            # |q|^2 is constant along a row, so it is added after the selection: added before, it
            # could round two distinct scores into a tie and change the winner.
            val = val + offset[:, None]
        # A stable sort puts the earlier blocks' rows first among equal distances.
        merged, order = torch.cat([best, val], 1).sort(dim=1, stable=True)
        best, arg = merged[:, :k], torch.cat([arg, idx + start], 1).gather(1, order[:, :k])
    return best, arg


def _mse(q: torch.Tensor, reference: torch.Tensor, arg: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of each query to the reference rows ``arg`` (inf where -1)."""
    out = torch.full(arg.shape, float("inf"), dtype=q.dtype, device=q.device)
    for j in range(arg.shape[1]):
        found = arg[:, j] >= 0
        out[found, j] = ((q[found] - reference[arg[found, j]]) ** 2).mean(1)
    return out


def _check(metric: str, reduction: str, k: int, segments: Segments, exclude_self: bool) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected 'nearest' or 'mean'")
    if reduction == "mean" and metric != "euclidean":
        raise ValueError("the mean reduction is of Euclidean distances (metric='euclidean')")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if exclude_self and segments is not None:
        raise ValueError("exclude_self searches a set against the whole of itself: no segments")


@torch.no_grad()
def search(queries, reference, *, k: int = 1, reduction: str = "nearest", metric: str = "euclidean",
           dtype: torch.dtype = torch.float32, chunk_size: int = 2048,
           device: str | torch.device = "cpu", segments: Segments = None,
           exclude_self: bool = False) -> Neighbours:
    """Every query row against every reference row (flattened), chunk_size x chunk_size at a time.

    ``reduction="nearest"``: the k nearest reference rows; "mean": the mean Euclidean distance to all
    of them (summed in float64). ``segments``: [start, stop) row ranges of ``reference`` searched
    separately (an ensemble's members; default: all of it); an empty one gives inf and -1.
    ``exclude_self``: queries and reference are the same set, and a row is not its own neighbour.
    Blocks are computed in ``dtype`` on ``device``; results come back on the CPU.
    """
    _check(metric, reduction, k, segments, exclude_self)
    q_all, r_all = _pair(queries, reference, dtype)
    segs = [(0, len(r_all))] if segments is None else list(segments)
    width = 1 if reduction == "mean" else k
    dist = torch.full((len(q_all), len(segs), width), float("inf"),
                      dtype=torch.float64 if reduction == "mean" else dtype)
    index = torch.full((len(q_all), len(segs), width), -1, dtype=torch.int64)
    dev = resolve_device(device)
    r = r_all.to(dev)
    r_sq = (r * r).sum(1) if metric == "mse" else None
    for qs in range(0, len(q_all), chunk_size):
        q = q_all[qs:qs + chunk_size].to(dev)
        q_sq = (q * q).sum(1) if r_sq is not None else None
        rows = slice(qs, qs + len(q))
        for s, (lo, hi) in enumerate(segs):
            blocks = _blocks(q, r, r_sq, lo, hi, chunk_size=chunk_size,
                             diagonal=qs if exclude_self else None)
            if reduction == "mean":
                total = torch.zeros(len(q), dtype=torch.float64, device=dev)
                for _, block in blocks:
                    total += block.sum(1, dtype=torch.float64)
                dist[rows, s, 0] = total.cpu() / (hi - lo)
                continue
            best, arg = _k_smallest(blocks, q_sq, k, len(q), q)
            dist[rows, s] = (_mse(q, r, arg) if metric == "mse" else best).cpu()
            index[rows, s] = arg.cpu()
    return Neighbours(dist, index)


@torch.no_grad()
def distance_blocks(queries, reference, *, chunk_size: int = 2048, dtype: torch.dtype = torch.float64,
                    device: str | torch.device = "cpu") -> Iterator[tuple[int, int, torch.Tensor]]:
    """(query start, reference start, Euclidean distances) for every chunk_size x chunk_size block,
    for measures that need the distances themselves, not just the nearest (PRDC's ball counts)."""
    q_all, r_all = _pair(queries, reference, dtype)
    dev = resolve_device(device)
    r = r_all.to(dev)
    for qs in range(0, len(q_all), chunk_size):
        q = q_all[qs:qs + chunk_size].to(dev)
        for rs, block in _blocks(q, r, None, 0, len(r), chunk_size=chunk_size):
            yield qs, rs, block


__all__ = ["search", "distance_blocks", "as_rows", "Neighbours", "METRICS", "REDUCTIONS"]
