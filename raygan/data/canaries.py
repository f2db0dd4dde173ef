"""Planted canaries (data.canaries): the positive control of the audit's membership-inference attacks
(raygan.audit.attacks, issue 26).

An attack that finds nothing proves nothing unless it would have found a record that was leaked. So a
run can plant records whose membership the attack must detect when a member memorises them, against
controls drawn the same way and never trained on. Per class, from a seeded permutation of its
training images (raygan.seeds.canaries), data.canaries images of each kind:

- duplicated: a training image appended data.canary_copies - 1 more times (copies are what GANs
  memorise first); their non-members are the audit's ordinary non-members (held-out images);
- outlier: a training image inverted (x -> -x on the [-1, 1] scale: an unusual image of the class),
  appended once; its controls are other training images inverted alike, which no member sees.

Planted rows are appended after the class's own rows, so ``original_rows`` tells them apart. They
are training records like any other: the privacy accountant counts them (a duplicated canary is
data.canary_copies records, covered by group privacy only), and so does everything that reads the
training split. A run with canaries audits the pipeline; release a run without them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from raygan import seeds
from raygan.config import ConfigError, DataConfig

KINDS = ("duplicated", "outlier")


@dataclass
class ClassCanaries:
    """One class's canaries (images on the [-1, 1] scale, as in the training split)."""
    duplicated: torch.Tensor        # (m, ...) each in the training split data.canary_copies times
    outliers: torch.Tensor          # (m, ...) each in the training split once
    outlier_controls: torch.Tensor  # (m, ...) made alike, never in the training split
    copies: int                     # data.canary_copies
    original_rows: int              # the class's training rows before planting
    duplicated_rows: torch.Tensor   # (m,) the duplicated images' rows among the original ones


def plant(dataset, cfg: DataConfig):
    """``dataset`` (a RealDataset) with data.canaries canaries of each kind appended to every class's
    training split and recorded in its ``canaries``; ConfigError when a class has too few images."""
    m, copies = cfg.canaries, cfg.canary_copies
    train, planted = {}, {}
    for k, name in enumerate(dataset.classes):
        x = dataset.train[name]
        n = int(x.shape[0])
        if n < 3 * m + 2:
            raise ConfigError(f"data.canaries={m}: class {name!r} has {n} training images and planting "
                              f"needs {3 * m + 2} (each kind takes {m}, the outlier controls {m}); set "
                              f"data.canaries <= {max(0, (n - 2) // 3)}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seeds.canaries(cfg.split_seed, k)))
        dup_rows, out_rows, control_rows = torch.sort(perm[:m]).values, perm[m:2 * m], perm[2 * m:3 * m]
        dup, outliers = x[dup_rows], -x[out_rows]
        train[name] = torch.cat([x, dup.repeat_interleave(copies - 1, dim=0), outliers])
        planted[name] = ClassCanaries(duplicated=dup, outliers=outliers, outlier_controls=-x[control_rows],
                                      copies=copies, original_rows=n, duplicated_rows=dup_rows)
    return dataclasses.replace(dataset, train=train, canaries=planted)


__all__ = ["KINDS", "ClassCanaries", "plant"]
