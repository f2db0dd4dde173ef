"""Seed 003's PCA generative baseline (Section 5): per class, PCA on the real training images, then
new images from random principal-component coefficients.

Seed 003 reconstructs images from n principal components fitted per digit and finds its "inception
score" saturating near 64 components (Figure 12). raygan makes that a sampler: the class's training
images x (flattened, D pixels) give the mean m, the top-k components V (k x D) and their variances
lambda; a sample is m + (z * sqrt(lambda)) V with z ~ N(0, I_k), reshaped and clipped to [-1, 1] (a
Gaussian in the k-dimensional principal subspace: probabilistic PCA without the isotropic noise term).
k is the smallest number of components explaining ``variance`` of the class's pixel variance, capped
at ``max_components`` (seed 003's 64) and at N - 1.

A :class:`PCAGenerator` has ``z_dim`` and ``forward(z) -> images`` like a GAN generator, so it goes
through raygan.synthesis.generate.generate, ensemble.Mixture, the sample-quality metrics and the TSTR protocol
unchanged.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from raygan import seeds
from raygan.data import RealDataset

DEFAULT_VARIANCE = 0.95
DEFAULT_MAX_COMPONENTS = 64


class PCAGenerator(nn.Module):
    """x = clip(mean + (z * std) @ components, -1, 1), reshaped to the image shape."""

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, variances: torch.Tensor,
                 sample_shape: tuple[int, ...], explained_variance: float = float("nan")):
        super().__init__()
        self.register_buffer("mean", mean.reshape(-1).float())
        self.register_buffer("components", components.float())            # (k, D), orthonormal rows
        self.register_buffer("std", variances.clamp_min(0).sqrt().float())  # (k,)
        self.sample_shape = tuple(sample_shape)
        self.z_dim = int(components.shape[0])
        self.explained_variance = float(explained_variance)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mean + (z * self.std) @ self.components
        return x.clamp(-1.0, 1.0).reshape(len(z), *self.sample_shape)


def fit_pca_generator(images: torch.Tensor, *, variance: float = DEFAULT_VARIANCE,
                      max_components: int = DEFAULT_MAX_COMPONENTS, seed: int = 0) -> PCAGenerator:
    """PCA of one class's images (N, C, H, W); keeps enough components for ``variance`` (capped)."""
    from sklearn.decomposition import PCA

    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    if len(images) < 2:
        raise ValueError("PCA needs at least two images")
    x = images.reshape(len(images), -1).double().numpy()
    cap = int(min(max_components, len(x) - 1, x.shape[1]))
    pca = PCA(n_components=cap, svd_solver="full" if x.shape[1] <= 4096 else "randomized",
              random_state=seed).fit(x)
    cumulative = np.cumsum(pca.explained_variance_ratio_)
    k = int(min(cap, np.searchsorted(cumulative, variance - 1e-12) + 1))
    return PCAGenerator(torch.from_numpy(pca.mean_), torch.from_numpy(pca.components_[:k]),
                        torch.from_numpy(pca.explained_variance_[:k]), tuple(images.shape[1:]),
                        explained_variance=float(cumulative[k - 1]))


def fit_pca_generators(dataset: RealDataset, *, variance: float = DEFAULT_VARIANCE,
                       max_components: int = DEFAULT_MAX_COMPONENTS, seed: int = 0
                       ) -> dict[str, PCAGenerator]:
    """One PCA generator per class, fitted on the class's real training split only."""
    if dataset.kind != "image":
        raise ValueError(f"the PCA baseline needs images; {dataset.name} holds {dataset.kind}")
    return {name: fit_pca_generator(dataset.train[name], variance=variance,
                                    max_components=max_components, seed=seed)
            for name in dataset.classes}


def pca_samples(generators: dict[str, PCAGenerator], counts: dict[str, int], *, seed: int
                ) -> dict[str, torch.Tensor]:
    """counts[class] samples per class (seeded per class), as {class: images}."""
    from raygan.synthesis.generate import generate

    return {name: generate(G, counts[name], seed=seeds.per_class(seed, k))
            for k, (name, G) in enumerate(generators.items())}


def pca_synthetic_set(dataset: RealDataset, *, counts: dict[str, int] | None = None, seed: int = 0,
                      variance: float = DEFAULT_VARIANCE,
                      max_components: int = DEFAULT_MAX_COMPONENTS
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """A labelled PCA training set for TSTR: counts[class] (default N real) samples per class."""
    gens = fit_pca_generators(dataset, variance=variance, max_components=max_components, seed=seed)
    counts = counts or dataset.train_sizes()
    samples = pca_samples(gens, counts, seed=seed)
    xs = [samples[n] for n in dataset.classes]
    ys = [torch.full((len(x),), k, dtype=torch.int64) for k, x in enumerate(xs)]
    return torch.cat(xs), torch.cat(ys)


__all__ = ["PCAGenerator", "fit_pca_generator", "fit_pca_generators", "pca_samples",
           "pca_synthetic_set", "DEFAULT_VARIANCE", "DEFAULT_MAX_COMPONENTS"]
