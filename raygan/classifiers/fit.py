"""The one way to fit a classifier: ``train_classifier`` (a fresh network of raygan.classifiers.networks,
trained with Adam on a split, scored on the validation and test splits after every epoch) and
``fit_classifier``, the same with the config's eval.* settings and a dataset's splits.

The epoch is chosen on the real *validation* split and the test accuracy at that epoch is the
reported figure; seed 000's figure (best test accuracy over epochs, test used as validation) is kept
beside it as ``best_test_acc``. Also the batched forward pass every classifier user shares
(``batched``, ``predict``, ``accuracy``, ``confusion_matrix``): the boosting classifier, the domain
classifier of raygan.metrics.domain and the evaluation's protocols.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from raygan.classifiers.augment import augment as apply_augmentation
from raygan.classifiers.networks import build_classifier
from raygan.config import Config
from raygan.data import RealDataset

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ClassifierRun:
    history: list[dict]            # per epoch: epoch, train_loss, val_acc, test_acc
    best_val_epoch: int
    val_acc: float
    test_acc: float                # at the best validation epoch: the protocol's figure
    best_test_acc: float           # seed 000's figure (best test epoch), reported beside it
    confusion: list[list[int]]     # test confusion matrix at the best validation epoch
    model: Optional[torch.nn.Module] = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}


def _device_of(model: torch.nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@torch.no_grad()
def batched(model: torch.nn.Module, x: torch.Tensor, *,
            apply: Optional[Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]] = None,
            batch_size: int = 1024, device: Optional[str | torch.device] = None,
            empty: tuple[int, ...] = (0,)) -> torch.Tensor:
    """``apply(model, batch)`` (default: the model's output) over x, batch_size rows at a time, in eval
    mode without gradients; concatenated on the CPU, ``torch.empty(empty)`` when x has no rows.

    The model is moved to ``device`` (None: it stays where it is) and every batch goes to it.
    """
    dev = _device_of(model) if device is None else torch.device(device)
    model = model.to(dev).eval()
    out = [(model(xb) if apply is None else apply(model, xb)).cpu()
           for xb in (x[i:i + batch_size].to(dev) for i in range(0, len(x), batch_size))]
    return torch.cat(out) if out else torch.empty(empty)


def softmax_of(model: torch.nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return F.softmax(model(xb), dim=1)


def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1024,
            device: str | torch.device = "cpu") -> torch.Tensor:
    """Softmax probabilities (N, K)."""
    return batched(model, x, apply=softmax_of, batch_size=batch_size, device=device)


def accuracy(model, x, y, device="cpu") -> float:
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x, device=device).argmax(1) == y).float().mean())


def confusion_matrix(model, x, y, n_classes: int, device="cpu") -> list[list[int]]:
    pred = predict(model, x, device=device).argmax(1)
    cm = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    cm.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    return cm.tolist()


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, *, val: Split, test: Split,
                     n_classes: int, arch: str = "simplecnn", epochs: int = 20, lr: float = 1e-3,
                     batch_size: int = 64, weight_decay: float = 0.0, augment: str = "none",
                     seed: int = 0, device: str = "cpu",
                     epoch_data: Optional[Callable[[int], Split]] = None,
                     on_epoch: Optional[Callable[[dict], None]] = None,
                     wrap: Optional[Callable[[torch.nn.Module], torch.nn.Module]] = None) -> ClassifierRun:
    """Train a fresh classifier; evaluate on val and test after every epoch.

    ``epoch_data(epoch)`` (on-the-fly generation) replaces (train_x, train_y) with fresh data each epoch.
    ``on_epoch(record)`` sees every epoch's record (Ray Tune reports through it).
    ``wrap(network)``: the module the training steps run through (a data-parallel worker's
    DistributedDataParallel, raygan.cluster.sweep_trainer); scores and the returned model are the
    network's own.
    """
    torch.manual_seed(seed)
    net = build_classifier(arch, tuple(train_x.shape[1:]), n_classes).to(device)
    model = net if wrap is None else wrap(net)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = torch.Generator().manual_seed(seed)
    history, best, best_state = [], None, None
    for epoch in range(1, epochs + 1):
        x, y = epoch_data(epoch) if epoch_data is not None else (train_x, train_y)
        model.train()
        order = torch.randperm(len(y), generator=rng)
        losses = []
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            xb = x[idx]
            if augment != "none":
                xb = apply_augmentation(augment, xb, rng)
            loss = F.cross_entropy(model(xb.to(device)), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        record = {"epoch": epoch, "train_loss": float(torch.stack(losses).mean()) if losses else
                  float("nan"), "val_acc": accuracy(net, *val, device=device),
                  "test_acc": accuracy(net, *test, device=device)}
        history.append(record)
        key = "val_acc" if len(val[1]) else "test_acc"
        if best is None or record[key] > best[key]:
            best = record
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if on_epoch is not None:
            on_epoch(record)
    net.load_state_dict(best_state)
    return ClassifierRun(history=history, best_val_epoch=best["epoch"],
                         val_acc=best["val_acc"], test_acc=best["test_acc"],
                         best_test_acc=max(r["test_acc"] for r in history),
                         confusion=confusion_matrix(net, *test, n_classes, device=device),
                         model=net.cpu().eval())


def fit_classifier(cfg: Config, dataset: RealDataset, train: Split, seed: int, **kwargs) -> ClassifierRun:
    """One downstream classifier of eval.* settings on ``train``, scored on the dataset's validation and
    test splits, on the device train.device resolves to here (a GPU when this process has one); the
    model comes back on the CPU. ``kwargs`` go to train_classifier (epoch_data, device, on_epoch)."""
    from raygan.gan.train import resolve_device

    e = cfg.eval
    kwargs.setdefault("device", str(resolve_device(cfg.train.device)))
    return train_classifier(*train, val=dataset.val, test=dataset.test,
                            n_classes=len(dataset.classes), arch=e.arch, epochs=e.epochs, lr=e.lr,
                            batch_size=e.batch_size, weight_decay=e.weight_decay, augment=e.augment,
                            seed=seed, **kwargs)


__all__ = ["ClassifierRun", "Split", "accuracy", "batched", "confusion_matrix", "fit_classifier", "predict",
           "softmax_of", "train_classifier"]
