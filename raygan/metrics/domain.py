"""The domain feature space: a SimpleCNN trained on the real training split, used offline.

Inception features need ImageNet weights and 299 px inputs; a classifier trained on the run's own real
data needs neither and knows the domain (digits, pathology patches). Its penultimate layer (64 units)
is the feature space of the domain Frechet distance, PRDC and the audit's feature-space nearest
neighbours. It is never called "FID": the numbers are not comparable with Inception FIDs.

The classifier is trained once per run folder and cached at ``eval/domain_classifier.pt`` together
with the settings it was trained with; a rerun with the same data settings loads it.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from raygan.data import RealDataset
from raygan.evaluation.classifiers import SimpleCNN
from raygan.runs import atomic_write_bytes

DOMAIN_EPOCHS = 8


def _train_split(dataset: RealDataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i, name in enumerate(dataset.classes):
        xs.append(dataset.train[name])
        ys.append(torch.full((len(dataset.train[name]),), i, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)


def _key(dataset: RealDataset, epochs: int, seed: int) -> str:
    sizes = json.dumps({"name": dataset.name, "classes": dataset.classes, "sizes": dataset.train_sizes(),
                        "shape": list(dataset.sample_shape), "epochs": epochs, "seed": seed},
                       sort_keys=True)
    first = torch.cat([v[:4].flatten() for v in dataset.train.values()]).numpy().tobytes()
    return hashlib.sha256(sizes.encode() + first).hexdigest()[:16]


def train_domain_classifier(dataset: RealDataset, *, cache: Optional[Path] = None,
                            epochs: int = DOMAIN_EPOCHS, seed: int = 0,
                            device: str = "cpu") -> nn.Module:
    """SimpleCNN trained on the real training split (all classes); eval mode. Cached at ``cache``."""
    if dataset.kind != "image":
        raise ValueError(f"the domain feature space needs images; {dataset.name} holds {dataset.kind}")
    from raygan.evaluation.protocols import train_classifier

    shape = dataset.sample_shape
    key = _key(dataset, epochs, seed)
    model = SimpleCNN(in_channels=shape[0], image_size=(shape[1], shape[2]),
                      n_outputs=len(dataset.classes))
    if cache is not None and Path(cache).exists():
        saved = torch.load(cache, map_location="cpu", weights_only=False)
        if saved.get("key") == key:
            model.load_state_dict(saved["state"])
            return model.to(device).eval()
    x, y = _train_split(dataset)
    run = train_classifier(x, y, val=dataset.val, test=dataset.test, n_classes=len(dataset.classes),
                           arch="simplecnn", epochs=epochs, seed=seed, device=device)
    model = run.model.to(device).eval()
    if cache is not None:
        buf = io.BytesIO()
        torch.save({"key": key, "state": {k: v.cpu() for k, v in model.state_dict().items()},
                    "val_acc": run.val_acc, "test_acc": run.test_acc}, buf)
        atomic_write_bytes(Path(cache), buf.getvalue())
    return model


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024,
          device: str | torch.device = "cpu") -> torch.Tensor:
    """Penultimate-layer features (N, 64) of a SimpleCNN for images x (N, C, H, W); on the CPU."""
    model = model.to(device).eval()
    head = model.head[:3]  # Flatten, Linear(->64), ReLU; dropout and the logits layer are left out
    out = [head(model.features(x[i:i + batch_size].to(device))).cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 64)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024,
            device: str | torch.device = "cpu") -> torch.Tensor:
    """Softmax probabilities (N, K) of the domain classifier."""
    model = model.to(device).eval()
    out = [torch.softmax(model(x[i:i + batch_size].to(device)), 1).cpu()
           for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)
