"""raygan.ensemble.boosting and raygan.classifiers.networks: AdaGAN's published test vector, weight invariants,
mixture schedules, seed 001's feature-distance weights, and the boosting classifier learning a toy."""

import numpy as np
import pytest
import torch

from raygan.classifiers.networks import CLASSIFIERS, MLPClassifier, SimpleCNN, build_boost_classifier
from raygan.ensemble.boosting import (
    adagan_data_weights,
    adagan_step_weights,
    classifier_accuracy,
    density_ratio,
    feature_distance_weights,
    mixture_beta,
    real_probabilities,
    reduced_distances,
    train_boost_classifier,
    update_mixture_weights,
)

torch.set_num_threads(1)

TEST_D = np.array([0.9, 0.8, 0.5, 0.3, 0.1])


@pytest.mark.parametrize("beta, lambda_star, expected", [
    (0.5, 1.0602, [0.4019, 0.3741, 0.2241, 0.0, 0.0]),
    (0.2, 0.6444, [0.5556, 0.4444, 0.0, 0.0, 0.0]),
])
def test_theory_star_reproduces_the_reference_test_vector(beta, lambda_star, expected):
    weights, info = adagan_data_weights(density_ratio(TEST_D), beta=beta)
    assert info["lambda_star"] == pytest.approx(lambda_star, abs=1e-4)
    np.testing.assert_allclose(weights, expected, atol=1e-4)
    assert not info["fell_back"]
    assert info["zero_fraction"] == pytest.approx(np.mean(np.array(expected) == 0))
    assert info["effective_sample_size"] == pytest.approx(1 / np.sum(np.array(expected) ** 2), rel=1e-3)


def test_density_ratio_matches_its_definition():
    np.testing.assert_allclose(density_ratio(TEST_D), (1 - TEST_D) / (TEST_D + 1e-8))
    assert density_ratio(np.array([0.0]))[0] == pytest.approx(1e8)


@pytest.mark.parametrize("rule", ["theory_star", "theory_dagger", "topk"])
def test_weights_are_a_distribution_that_drops_the_best_covered_points(rule):
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(5, 200))
        r = density_ratio(rng.uniform(0.01, 0.99, size=n))
        beta = float(rng.uniform(0.05, 0.6))
        weights, info = adagan_data_weights(r, beta=beta, rule=rule)
        assert weights.shape == (n,)
        assert np.all(weights >= 0)
        assert weights.sum() == pytest.approx(1.0)
        assert not info["fell_back"]
        assert weights[np.argmax(r)] == 0.0
        # More mixture mass at x (larger r) never means more data weight.
        order = np.argsort(r)
        assert np.all(np.diff(weights[order]) <= 1e-12)


def test_theory_star_never_needs_its_fallback_and_its_lambda_normalises_exactly():
    # For finite r >= 0 the lambda-search always succeeds, so check the invariant it rests on instead:
    # the un-normalised closed form (lambda* - (1 - beta) r)_+ / (N beta) already sums to 1.
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        r = rng.exponential(scale=rng.uniform(0.1, 10), size=n) * (rng.random(n) < 0.9)
        beta = float(rng.uniform(0.01, 1.0))
        weights, info = adagan_data_weights(r, beta=beta)
        assert not info["fell_back"]
        closed_form = np.maximum(info["lambda_star"] - (1 - beta) * r, 0) / (n * beta)
        assert closed_form.sum() == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(weights, closed_form / closed_form.sum())


def test_theory_dagger_solves_theorem_2_and_falls_back_when_too_many_ratios_are_zero():
    r = density_ratio(TEST_D)
    weights, info = adagan_data_weights(r, beta=0.5, rule="theory_dagger")
    closed_form = np.maximum(1 - info["lambda_star"] * 0.5 * r, 0) / (len(r) * 0.5)
    assert closed_form.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(weights, closed_form)
    assert weights[-1] == 0 and weights[0] > weights[1] > weights[2] > weights[3] > 0
    # Theorem 2 needs P_data(r = 0) < beta: here 4 of 5 ratios are zero and beta = 0.5.
    weights, info = adagan_data_weights(np.array([0.0, 0.0, 0.0, 0.0, 1.0]), beta=0.5, rule="theory_dagger")
    assert info["fell_back"] and info["lambda_star"] is None
    np.testing.assert_allclose(weights, np.full(5, 0.2))


def test_topk_puts_uniform_weight_on_the_smallest_ratios():
    r = np.array([5.0, 0.1, 3.0, 0.2, 9.0, 0.3, 1.0, 7.0])
    weights, info = adagan_data_weights(r, beta=0.3, rule="topk", topk_fraction=0.5)
    np.testing.assert_allclose(weights, [0, 0.25, 0, 0.25, 0, 0.25, 0.25, 0])
    assert info["lambda_star"] is None and info["zero_fraction"] == 0.5
    assert info["effective_sample_size"] == pytest.approx(4.0)
    weights, _ = adagan_data_weights(r, beta=0.3, rule="topk", topk_fraction=0.25)
    np.testing.assert_allclose(weights, [0, 0.5, 0, 0.5, 0, 0, 0, 0])


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        adagan_data_weights(np.array([1.0, np.nan]), beta=0.5)
    with pytest.raises(ValueError):
        adagan_data_weights(np.array([1.0, 2.0]), beta=0.0)
    with pytest.raises(ValueError):
        adagan_data_weights(np.array([1.0, 2.0]), beta=0.5, rule="nope")


def test_uniform_schedule_gives_a_uniform_mixture():
    weights = np.zeros(0)
    for step in (1, 2, 3):
        weights = update_mixture_weights(weights, beta=mixture_beta(step))
    np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3])
    assert weights.sum() == pytest.approx(1.0)
    assert mixture_beta(1) == 1.0 and mixture_beta(4) == pytest.approx(0.25)
    np.testing.assert_allclose(update_mixture_weights([], beta=1.0), [1.0])


def test_constant_schedule():
    assert mixture_beta(1, schedule="constant", constant=0.3) == 1.0
    assert mixture_beta(2, schedule="constant", constant=0.3) == 0.3
    weights = np.zeros(0)
    for step in (1, 2, 3):
        weights = update_mixture_weights(weights, beta=mixture_beta(step, schedule="constant", constant=0.3))
    np.testing.assert_allclose(weights, [0.49, 0.21, 0.3])
    with pytest.raises(ValueError):
        mixture_beta(0)
    with pytest.raises(ValueError):
        update_mixture_weights([], beta=0.5)


@pytest.mark.parametrize("reduction", ["nearest", "mean"])
def test_chunked_distances_equal_the_full_matrix(reduction):
    rng = np.random.default_rng(2)
    queries, references = rng.normal(size=(23, 5)), rng.normal(size=(17, 5))
    full = np.linalg.norm(queries[:, None, :] - references[None, :, :], axis=2)
    expected = full.min(axis=1) if reduction == "nearest" else full.mean(axis=1)
    for chunk_size in (3, 7, 1000):
        got = reduced_distances(queries, references, reduction=reduction, chunk_size=chunk_size)
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("transform", ["A", "A_sigma", "B", "C"])
def test_feature_weights_favour_real_points_far_from_every_generated_one(transform):
    generated = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # index 0 coincides with a generated point, index 4 is far from all; the rest sit at distance 1.
    real = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [10.0, 10.0]])
    weights = feature_distance_weights(real, generated, transform=transform)
    assert weights.sum() == pytest.approx(1.0) and np.all(weights >= 0)
    assert weights[4] > weights[0]
    assert weights[4] == weights.max()
    if transform in ("A", "A_sigma", "C"):
        assert weights[0] == 0.0  # normalised distance 0, below any threshold


def test_feature_weights_are_normalised_within_each_class():
    generated = np.array([[0.0], [100.0]])
    # Class 1 sits ten times further from its generated point than class 0; per-class normalisation
    # removes that scale, so both classes get the same weight pattern and their share n_k / N of the mass.
    real = np.array([[0.0], [1.0], [2.0], [100.0], [110.0], [120.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    weights = feature_distance_weights(real, generated, transform="C", real_labels=labels,
                                       synthetic_labels=np.array([0, 1]))
    np.testing.assert_allclose(weights[:3], weights[3:])
    assert weights[:3].sum() == pytest.approx(0.5) and weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (2,)])
def test_boost_classifiers_map_samples_to_two_logits(shape):
    model = build_boost_classifier(sample_shape=shape)
    assert isinstance(model, CLASSIFIERS["simplecnn" if len(shape) == 3 else "mlp"])
    model.eval()
    assert model(torch.randn(3, *shape)).shape == (3, 2)


def test_simple_cnn_follows_supplement_b():
    model = SimpleCNN(in_channels=1, image_size=8)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64] and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) == 3
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 3
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(64, 64), (64, 2)]
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.75]
    assert all(torch.all(lin.bias == 0) for lin in linears)  # Glorot weights, zero biases
    mlp = MLPClassifier(in_features=2)
    assert [lin.out_features for lin in mlp.modules() if isinstance(lin, torch.nn.Linear)] == [64, 64, 2]


def _bright_vs_dark(n_real=256, n_fake=256, n_dark_real=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    real = 0.8 + 0.2 * torch.randn(n_real, 1, 8, 8, generator=gen)
    real[:n_dark_real] -= 1.6  # these real points look like the fakes
    fake = -0.8 + 0.2 * torch.randn(n_fake, 1, 8, 8, generator=gen)
    return real.numpy(), fake.numpy(), n_dark_real


def test_boost_classifier_learns_bright_vs_dark_and_flags_the_covered_real_points():
    real, fake, n_dark = _bright_vs_dark()
    model = train_boost_classifier(real, fake, seed=0)
    assert classifier_accuracy(model, real, fake) > 0.9
    r = density_ratio(real_probabilities(model, real))
    assert r[:n_dark].min() > r[n_dark:].max()
    again = train_boost_classifier(real, fake, seed=0)
    np.testing.assert_array_equal(real_probabilities(again, real), real_probabilities(model, real))


def test_adagan_step_weights_moves_mass_away_from_what_the_mixture_covers():
    real, fake, n_dark = _bright_vs_dark(seed=1)
    weights, info = adagan_step_weights(real, fake, beta=0.5, rule="theory_star", seed=3, epochs=4)
    assert weights.sum() == pytest.approx(1.0) and not info["fell_back"]
    assert info["classifier_accuracy"] > 0.9
    assert weights[:n_dark].max() < weights[n_dark:].min()
    assert set(info) >= {"beta", "lambda_star", "fell_back", "effective_sample_size", "zero_fraction"}
