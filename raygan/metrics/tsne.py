"""Real against synthetic samples in the domain feature space, as a t-SNE map (seed 001, Figure 1).

Seed 001 (Slim et al., "Boosting generative networks for incremental learning") shows a t-SNE of real
and generated samples to judge by eye whether each class's synthetic samples lie over its real ones.
Here both come from the run itself: real samples from the training split, synthetic ones from the
shards as written (raygan.data.shards), at most ``per_class`` of each per class, picked evenly spaced
along each class's rows (synthetic rows are sorted by member, so every member is represented); no
random draw picks them. The features are the penultimate layer of the run's domain classifier
(raygan.metrics.domain, cached in eval/); sklearn's TSNE maps them to 2-D with a fixed random_state.
Images only: points (grid2d) have no domain classifier.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from raygan.data import RealDataset
from raygan.figures import figure, save_figure

PERPLEXITY = 30.0  # sklearn's default; lowered for a map of few points (it must stay below N)


@dataclass
class TsneMap:
    """A t-SNE map: one row of ``embedding`` (N, 2) per point, its class label and whether it is
    synthetic; ``classes`` names label k at position k."""
    embedding: np.ndarray
    labels: np.ndarray
    synthetic: np.ndarray
    classes: list[str]

    def counts(self) -> dict[str, dict[str, int]]:
        """Points per class, real and synthetic."""
        return {name: {"real": int(np.sum((self.labels == k) & ~self.synthetic)),
                       "synthetic": int(np.sum((self.labels == k) & self.synthetic))}
                for k, name in enumerate(self.classes)}


def evenly_spaced(n_rows: int, n: int) -> np.ndarray:
    """min(n, n_rows) distinct row indices spread evenly over 0..n_rows-1 (all rows when n >= n_rows)."""
    k = min(int(n), int(n_rows))
    return (np.arange(k) * n_rows) // max(k, 1)


def pick_points(real: dict[str, torch.Tensor], synthetic_x: torch.Tensor, synthetic_y: torch.Tensor,
                classes: list[str], *, per_class: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """(x, labels, is_synthetic): per class in order, its real then its synthetic points, at most
    ``per_class`` of each (evenly spaced along the rows)."""
    xs, labels, synthetic = [], [], []
    for k, name in enumerate(classes):
        rows = real[name]
        xs.append(rows[evenly_spaced(len(rows), per_class)])
        fake = synthetic_x[synthetic_y == k]
        xs.append(fake[evenly_spaced(len(fake), per_class)])
        labels += [k] * (len(xs[-2]) + len(xs[-1]))
        synthetic += [False] * len(xs[-2]) + [True] * len(xs[-1])
    return torch.cat(xs), np.asarray(labels, dtype=np.int64), np.asarray(synthetic, dtype=bool)


# Gradient-descent iterations (sklearn's default is 1000): the report's t-SNE was most of the report
# stage (issue 28 item 5: 160 of 229 s of write_report under load); on 1,000 digits points 500
# iterations take half the CPU time (9.5 s against 19.5 s) and end at a KL divergence of 0.579 against
# 0.558, the same map to the eye (250 of them are the early exaggeration either way).
TSNE_ITERATIONS = 500


def tsne_embedding(features: np.ndarray, *, seed: int) -> np.ndarray:
    """sklearn's TSNE of (N, D) features to (N, 2), PCA initialisation, random_state ``seed``,
    TSNE_ITERATIONS iterations."""
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 2:
        raise ValueError(f"a t-SNE map needs at least 2 points, got {n}")
    perplexity = min(PERPLEXITY, max(1.0, (n - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                max_iter=TSNE_ITERATIONS).fit_transform(
        np.asarray(features, dtype=np.float32))


def tsne_map(dataset: RealDataset, shards: str | Path, *, per_class: int, seed: int,
             run_dir: Optional[Path] = None) -> TsneMap:
    """The t-SNE map of a run: real training samples and the shards' samples, at most ``per_class``
    of each per class, in the features of the run's domain classifier (trained, or loaded from the
    cache in ``run_dir``; without one, trained and not kept)."""
    from raygan.data.shards import read_shard_rows
    from raygan.metrics.domain import embed, run_domain_classifier, train_domain_classifier

    if dataset.kind != "image":
        raise ValueError(f"a t-SNE map needs images; {dataset.name} holds {dataset.kind}")
    rows = read_shard_rows(shards, classes=dataset.classes)
    x, labels, synthetic = pick_points(dataset.train, rows.x, rows.y, dataset.classes, per_class=per_class)
    model = run_domain_classifier(dataset, run_dir) if run_dir is not None else train_domain_classifier(dataset)
    features = embed(model, x).numpy()
    return TsneMap(embedding=tsne_embedding(features, seed=seed), labels=labels, synthetic=synthetic,
                   classes=list(dataset.classes))


def plot_tsne(tsne: TsneMap, path: str | Path, *, title: str = "") -> Path:
    """The map as a PNG: one colour per class, o real, x synthetic."""
    fig = figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    from matplotlib import colormaps

    colours = colormaps["tab10" if len(tsne.classes) <= 10 else "tab20"]
    for k, name in enumerate(tsne.classes):
        colour, at = colours(k % colours.N), tsne.labels == k
        real, fake = at & ~tsne.synthetic, at & tsne.synthetic
        ax.scatter(tsne.embedding[real, 0], tsne.embedding[real, 1], s=14, marker="o", facecolors="none",
                   edgecolors=[colour], linewidths=0.8, label=name)
        ax.scatter(tsne.embedding[fake, 0], tsne.embedding[fake, 1], s=14, marker="x", color=[colour],
                   linewidths=0.8)
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="0.3", label="o real")
    ax.scatter([], [], marker="x", color="0.3", label="x synthetic")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "t-SNE of domain-classifier features", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return save_figure(fig, path)
