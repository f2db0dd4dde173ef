"""The domain feature space: a SimpleCNN trained on the real training split, used offline.

Inception features need ImageNet weights and 299 px inputs; a classifier trained on the run's own real
data needs neither and knows the domain (digits, pathology patches). Its penultimate layer (64 units)
is the feature space of the domain Frechet distance, PRDC and the audit's feature-space nearest
neighbours. It is never called "FID": the numbers are not comparable with Inception FIDs.

The classifier is trained once per run folder and cached at ``eval/domain_classifier.pt`` together
with the settings it was trained with; a rerun with the same data settings loads it. Every user in a
run (the quality metrics, the audit, the report's t-SNE) gets it through ``run_domain_classifier``:
whichever asks first trains it, the others load it, a task on another node of a URI run folder after
fetching the stored copy. The cache is read
with torch.load(weights_only=True) (raygan.gan.checkpoints): one holding any other Python object is
refused with its path, never used or overwritten.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from raygan.classifiers.fit import batched, softmax_of, train_classifier
from raygan.classifiers.networks import SimpleCNN
from raygan.data import RealDataset
from raygan.gan.checkpoints import load_torch_file, save_torch_file

DOMAIN_EPOCHS = 8
CACHE = "eval/domain_classifier.pt"  # in the run folder


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
    shape = dataset.sample_shape
    key = _key(dataset, epochs, seed)
    model = SimpleCNN(in_channels=shape[0], image_size=(shape[1], shape[2]),
                      n_outputs=len(dataset.classes))
    if cache is not None and Path(cache).exists():
        # Read safely or refused: a cache holding a pickle is never run, used or silently replaced.
        saved = load_torch_file(Path(cache), fix="delete it (it is retrained from the real data on the next "
                                "run) or rerun with a new output.run")
        if saved.get("key") == key:
            model.load_state_dict(saved["state"])
            return model.to(device).eval()
    x, y = dataset.train_split()
    run = train_classifier(x, y, val=dataset.val, test=dataset.test, n_classes=len(dataset.classes),
                           arch="simplecnn", epochs=epochs, seed=seed, device=device)
    model = run.model.to(device).eval()
    if cache is not None:
        save_torch_file({"key": key, "state": {k: v.cpu() for k, v in model.state_dict().items()},
                         "val_acc": float(run.val_acc), "test_acc": float(run.test_acc)}, Path(cache))
    return model


def run_domain_classifier(dataset: RealDataset, run_path: str | Path, *, device: str = "cpu") -> nn.Module:
    """The run's domain classifier: loaded from the run folder's cache, else trained once and cached
    there. A URI run folder's stored copy is fetched into this node's mirror first (a no-op for a local
    run), so the evaluation, the audit and the report never train it a second time."""
    from raygan.runs import RunFolder

    RunFolder(Path(run_path)).pull(CACHE, delete=False)
    return train_domain_classifier(dataset, cache=Path(run_path) / CACHE, device=device)


def _features(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    # Flatten, Linear(->64), ReLU of the head; dropout and the logits layer are left out
    return model.head[:3](model.features(xb))


def embed(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024,
          device: str | torch.device = "cpu") -> torch.Tensor:
    """Penultimate-layer features (N, 64) of a SimpleCNN for images x (N, C, H, W); on the CPU."""
    return batched(model, x, apply=_features, batch_size=batch_size, device=device, empty=(0, 64))


def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1024,
            device: str | torch.device = "cpu") -> torch.Tensor:
    """Softmax probabilities (N, K) of the domain classifier."""
    return batched(model, x, apply=softmax_of, batch_size=batch_size, device=device, empty=(0, 0))
