"""Seed 003's PCA generative baseline: per-class PCA samplers that behave like generators."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from raygan.classifiers.fit import train_classifier
from raygan.config import load_config
from raygan.data import load_dataset
from raygan.ensemble.mixture import Mixture
from raygan.evaluation.pca import fit_pca_generator, fit_pca_generators, pca_samples, pca_synthetic_set
from raygan.synthesis.generate import generate


@pytest.fixture(scope="module")
def digits():
    return load_dataset(load_config().data)


def test_pca_generator_is_a_generator_with_the_right_shape_range_and_seeding(digits):
    G = fit_pca_generator(digits.train["4"])
    z = torch.randn(50, G.z_dim)
    x = G(z)
    assert x.shape == (50, 1, 8, 8) and x.min() >= -1.0 and x.max() <= 1.0
    assert 1 <= G.z_dim <= 64 and G.explained_variance >= 0.95
    assert torch.equal(generate(G, 20, seed=3), generate(G, 20, seed=3))
    assert not torch.equal(generate(G, 20, seed=3), generate(G, 20, seed=4))
    samples, members = Mixture.uniform([G]).sample(30, seed=0)
    assert samples.shape == (30, 1, 8, 8) and set(members.tolist()) == {0}
    assert fit_pca_generator(digits.train["4"], max_components=5).z_dim == 5


def test_pca_components_are_chosen_by_explained_variance(digits):
    low = fit_pca_generator(digits.train["0"], variance=0.5)
    high = fit_pca_generator(digits.train["0"], variance=0.95)
    assert low.z_dim < high.z_dim and 0.5 <= low.explained_variance < high.explained_variance
    rows = low.components @ low.components.T
    assert torch.allclose(rows, torch.eye(low.z_dim), atol=1e-5)  # orthonormal directions


def test_pca_samples_sit_at_their_class_mean(digits):
    gens = fit_pca_generators(digits)
    samples = pca_samples(gens, {n: 400 for n in digits.classes}, seed=0)
    real_means = torch.stack([digits.train[n].mean(0).flatten() for n in digits.classes])
    for k, name in enumerate(digits.classes):
        mean = samples[name].mean(0).flatten()
        gap = (mean - real_means[k]).abs().mean()
        assert gap < 0.1, (name, gap)  # clipping to [-1, 1] biases it a little
        assert int(((real_means - mean) ** 2).sum(1).argmin()) == k  # nearest class mean is its own


def test_a_classifier_trained_on_pca_samples_beats_chance_clearly(digits):
    x, y = pca_synthetic_set(digits, seed=0)
    assert x.shape == (sum(digits.train_sizes().values()), 1, 8, 8)
    assert torch.bincount(y).tolist() == [digits.train_sizes()[n] for n in digits.classes]
    run = train_classifier(x, y, val=digits.val, test=digits.test, n_classes=10, epochs=3, seed=0)
    assert run.test_acc > 0.6, run.test_acc  # chance is 0.1 with ten digits
    assert np.isfinite(run.history[-1]["train_loss"])
