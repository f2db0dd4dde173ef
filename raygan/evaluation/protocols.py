"""Downstream protocols: a classifier trained on synthetic (or mixed) data, tested on real data.

TSTR (train synthetic, test real; seed 000, 001, 004), TRTR (the real-data reference line), TRTS
(a real-trained classifier scored on synthetic samples; seed 001 Section 3.2, seed 004), mixed
training at a synthetic/real ratio (seed 002 Figure 2, optionally per class as seed 003), and
filtering by a real-trained classifier (keep a sample if argmax = label and confidence >= rho; seed
001), on a fixed set or on every epoch's fresh on-the-fly set (``FilteredEpochs``). Every protocol
repeats with R classifier seeds and reports mean +- std; each run keeps its test confusion matrix
(seed 004). The classifier itself is fitted by raygan.classifiers.fit, which picks the epoch on the
real validation split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from raygan import seeds
from raygan.classifiers.fit import ClassifierRun, Split, accuracy, predict


@dataclass
class ProtocolResult:
    protocol: str
    runs: list[ClassifierRun] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        test = np.array([r.test_acc for r in self.runs])
        if not len(test):
            return {"protocol": self.protocol, "repeats": 0, **self.extra}
        best = np.array([r.best_test_acc for r in self.runs])
        val = np.array([r.val_acc for r in self.runs])  # what choices between settings are made on
        return {"protocol": self.protocol, "repeats": len(self.runs),
                "val_acc_mean": float(val.mean()), "val_acc_std": float(val.std()),
                "test_acc_mean": float(test.mean()), "test_acc_std": float(test.std()),
                "best_test_acc_mean": float(best.mean()), "best_test_acc_std": float(best.std()),
                **self.extra}


def repeat(protocol: str, fn: Callable[[int], ClassifierRun], repeats: int, seed: int,
           **extra) -> ProtocolResult:
    """R independent classifier trainings (seeds seed, seed+1, ...): mean +- std over them."""
    return ProtocolResult(protocol, [fn(seeds.offset(seed, r)) for r in range(repeats)], dict(extra))


def mix_picks(real_y: torch.Tensor, synthetic_y: torch.Tensor, ratio: float | dict, seed: int) -> np.ndarray:
    """Positions of the synthetic rows mix_real_synthetic adds to the real ones, in order (from the
    labels alone: a reader of the shards picks the same rows without the images)."""
    rng = np.random.default_rng(seed)
    picks = []
    for k in torch.unique(real_y).tolist():
        r = ratio.get(k, 0.0) if isinstance(ratio, dict) else ratio
        n_real = int((real_y == k).sum())
        pool = torch.nonzero(synthetic_y == k).flatten().numpy()
        want = int(round(r * n_real))
        if want == 0:
            continue
        if len(pool) == 0:
            raise ValueError(f"no synthetic samples of class {k} to mix at ratio {r}")
        picks.append(rng.choice(pool, size=want, replace=want > len(pool)))
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


def mix_real_synthetic(real: Split, synthetic: Split, ratio: float | dict, seed: int) -> Split:
    """Real training data plus ratio x as many synthetic samples (per class when ratio is a dict
    {class index: ratio}, seed 003); seed 002's mixing ratio = synthetic / real."""
    pick = torch.from_numpy(mix_picks(real[1], synthetic[1], ratio, seed))
    return torch.cat([real[0], synthetic[0][pick]]), torch.cat([real[1], synthetic[1][pick]])


def filter_by_classifier(model, x: torch.Tensor, y: torch.Tensor, rho: float = 0.9,
                         device: str = "cpu") -> torch.Tensor:
    """Seed 001: keep a synthetic sample if the real-trained classifier's argmax is its label and its
    confidence is at least rho. Returns the boolean mask."""
    probs = predict(model, x, device=device)
    conf, pred = probs.max(1)
    return (pred == y) & (conf >= rho)


def trts(model, synthetic: Split, device: str = "cpu") -> float:
    """TRTS: accuracy of a real-trained classifier on synthetic samples."""
    return accuracy(model, *synthetic, device=device)


@dataclass
class FilteredEpochs:
    """Seed 001's filter on on-the-fly data: every epoch's fresh set, kept where the reference
    classifier agrees with confidence >= rho (a module-level class, so Ray pickles it by reference)."""
    epoch_data: Callable[[int], Split]
    model: torch.nn.Module
    rho: float
    kept_fraction: Optional[float] = None  # of the latest epoch

    def __call__(self, epoch: int) -> Split:
        x, y = self.epoch_data(epoch)
        keep = filter_by_classifier(self.model, x, y, rho=self.rho)
        self.kept_fraction = float(keep.float().mean()) if len(y) else 0.0
        return x[keep], y[keep]
