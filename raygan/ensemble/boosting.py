"""Boosting maths for GAN ensembles: AdaGAN data and mixture weights, and feature-distance reweighting.

Pure numpy/torch, no file I/O, no Ray. Owns:
- AdaGAN (Tolstikhin et al., "AdaGAN: Boosting Generative Models", NeurIPS 2017): the mixture weight
  schedule beta_t, the mixture update, the density ratio r = (1 - D) / D from a real-vs-mixture classifier,
  and the data-weight rules "theory_star" (Theorem 1 / eq. 17-18), "theory_dagger" (Theorem 2) and "topk";
- the boosting classifier's training (seed 000, Supplement B: 4 epochs Adam, lr 5e-3 -> 3.8e-4);
- the "Conditioned GANs" sample reweighting of seed 001 (Section 5.1, Algorithm 1, Methods A/B/C).
Every function here is run per class by its caller; weights returned are sampling probabilities.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from raygan.classifiers.fit import batched, softmax_of
from raygan.classifiers.networks import build_boost_classifier
from raygan.metrics.neighbours import search

DATA_WEIGHT_RULES = ("theory_star", "theory_dagger", "topk")
BETA_SCHEDULES = ("uniform", "constant")
# Relative slack on the lambda-interval tests, so that a root lying exactly on a breakpoint r_(i+1) is not
# missed by rounding on both sides of it.
_TOL = 1e-12


def density_ratio(d_real: np.ndarray) -> np.ndarray:
    """r(x) = (1 - D(x)) / (D(x) + 1e-8), AdaGAN's estimate of dP_mixture / dP_data (reference step 2)."""
    d = np.asarray(d_real, dtype=np.float64)
    return (1.0 - d) / (d + 1e-8)


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def _theory_star(r: np.ndarray, beta: float) -> tuple[np.ndarray | None, float | None]:
    """AdaGAN Theorem 1 (eq. 17-18; reference step 3): lambda_i = (beta N + (1 - beta) S_i) / i for the
    first i with (1 - beta) r_(i) <= lambda_i <= (1 - beta) r_(i+1); w_j = (lambda* - (1 - beta) r_j)_+ / (N beta).
    """
    n = len(r)
    r_sorted = np.sort(r)
    partial_sums = np.cumsum(r_sorted)
    lam = (beta * n + (1.0 - beta) * partial_sums) / np.arange(1, n + 1)
    slack = _TOL * np.maximum(1.0, np.abs(lam))
    lower_ok = (1.0 - beta) * r_sorted <= lam + slack
    upper_ok = np.append(lam[:-1] <= (1.0 - beta) * r_sorted[1:] + slack[:-1], True)
    found = np.flatnonzero(lower_ok & upper_ok)
    if len(found) == 0:
        return None, None
    lambda_star = float(lam[found[0]])
    return np.maximum(lambda_star - (1.0 - beta) * r, 0.0) / (n * beta), lambda_star


def _theory_dagger(r: np.ndarray, beta: float) -> tuple[np.ndarray | None, float | None]:
    """AdaGAN Theorem 2: dQ_dagger = (1/beta) (1 - lambda (1 - beta) r)_+ dP_data, lambda fixed by sum w = 1.

    As in the reference code: over i >= beta N, lambda_i = (i - beta N) / ((1 - beta) S_i); take the first i
    with 1 / ((1 - beta) r_(i+1)) <= lambda_i < 1 / ((1 - beta) r_(i)) (for i = N only the upper bound),
    tested here in multiplied-out form so that r = 0 needs no epsilon. No lambda exists when at least
    beta N of the ratios are zero (the theorem assumes P_data(dP_g/dP_data = 0) < beta); the caller then
    falls back to uniform. lambda is reported as lambda_star.
    """
    n = len(r)
    if beta >= 1.0:
        return _uniform(n), None
    r_sorted = np.sort(r)
    partial_sums = np.cumsum(r_sorted)
    excess = np.arange(1, n + 1) - beta * n  # i - beta N
    upper_ok = excess * r_sorted < partial_sums
    lower_ok = np.append(excess[:-1] * r_sorted[1:] >= partial_sums[:-1], True)
    found = np.flatnonzero((excess >= 0) & upper_ok & lower_ok)
    if len(found) == 0:
        return None, None
    k = found[0]
    slope = excess[k] / partial_sums[k]  # lambda (1 - beta); S_k > 0 because upper_ok holds
    return np.maximum(1.0 - slope * r, 0.0) / (n * beta), float(slope / (1.0 - beta))


def _topk(r: np.ndarray, fraction: float) -> np.ndarray:
    """Reference rule "topk": uniform weight on the ceil(fraction N) points with the smallest r (ties by
    index; the reference thresholds at a percentile, which can keep a few more points on ties)."""
    n = len(r)
    k = min(n, max(1, math.ceil(fraction * n)))
    weights = np.zeros(n)
    weights[np.argsort(r, kind="stable")[:k]] = 1.0 / k
    return weights


def adagan_data_weights(r: np.ndarray, beta: float, rule: str = "theory_star",
                        topk_fraction: float = 0.5) -> tuple[np.ndarray, dict]:
    """Data weights W_t of AdaGAN (Algorithm 1) for density ratios r against the previous mixture.

    Returns (weights summing to 1, info) with info = beta, lambda_star (None for topk), fell_back,
    effective_sample_size = 1 / sum(w^2), zero_fraction.
    """
    r = np.asarray(r, dtype=np.float64).ravel()
    if len(r) == 0 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("density ratios must be a non-empty array of finite, non-negative numbers")
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must lie in (0, 1], got {beta}")
    lambda_star = None
    if rule == "theory_star":
        weights, lambda_star = _theory_star(r, beta)
    elif rule == "theory_dagger":
        weights, lambda_star = _theory_dagger(r, beta)
    elif rule == "topk":
        if not 0.0 < topk_fraction <= 1.0:
            raise ValueError(f"topk_fraction must lie in (0, 1], got {topk_fraction}")
        weights = _topk(r, topk_fraction)
    else:
        raise ValueError(f"unknown data-weight rule {rule!r}; expected one of {DATA_WEIGHT_RULES}")
    fell_back = weights is None or not weights.sum() > 0
    # The ratios are only estimates of dP_g/dP_data, so the closed form need not sum to exactly 1.
    weights = _uniform(len(r)) if fell_back else weights / weights.sum()
    info = {"beta": float(beta), "lambda_star": None if fell_back else lambda_star, "fell_back": fell_back,
            "effective_sample_size": float(1.0 / np.sum(weights ** 2)),
            "zero_fraction": float(np.mean(weights == 0.0))}
    return weights, info


def mixture_beta(step: int, schedule: str = "uniform", constant: float = 0.5) -> float:
    """Mixture weight beta_t of member t (1-based; reference step 1): beta_1 = 1; "uniform" gives 1/t
    (a uniform mixture); "constant" gives ``constant`` for t > 1."""
    if step < 1:
        raise ValueError(f"boosting steps are 1-based, got {step}")
    if schedule not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta schedule {schedule!r}; expected one of {BETA_SCHEDULES}")
    if step == 1:
        return 1.0
    if schedule == "uniform":
        return 1.0 / step
    if not 0.0 < constant < 1.0:
        raise ValueError(f"a constant beta must lie in (0, 1), got {constant}")
    return float(constant)


def update_mixture_weights(weights, beta: float) -> np.ndarray:
    """Reference step 5: every old mixture weight times (1 - beta_t), then beta_t appended."""
    old = np.asarray(weights, dtype=np.float64).ravel()
    if len(old) == 0 and beta != 1.0:
        raise ValueError(f"the first member takes the whole mixture (beta_1 = 1), got beta={beta}")
    return np.append(old * (1.0 - beta), beta)


def reduced_distances(queries, references, *, reduction: str = "nearest", chunk_size: int = 2048,
                      device: str = "cpu") -> np.ndarray:
    """Per query, the Euclidean distance to its nearest reference ("nearest") or the mean distance to all
    references ("mean"), over chunk_size x chunk_size blocks (raygan.metrics.neighbours) so that
    50K x 50K never holds the full matrix."""
    found = search(queries, references, reduction=reduction, chunk_size=chunk_size, device=device)
    return found.distances[:, 0, 0].double().numpy()


# Seed 001, Section 5.1, weight transforms f(w; mu_k, sigma_k) of the normalised distances w in [0, 1].
FEATURE_TRANSFORMS = {
    "A": lambda w, mu, sigma: np.where(w < mu, 0.0, w),                    # Method A_tau, tau = mu_k
    "A_sigma": lambda w, mu, sigma: np.where(w < mu + sigma, 0.0, w),      # Method A_sigma, tau = mu_k + sigma_k
    "B": lambda w, mu, sigma: 1.0 / (1.0 + np.exp(-2.0 * (w - mu) / sigma)),  # Method B, sigmoid
    "C": lambda w, mu, sigma: w,                                           # Method C, f = Id
}


def _class_feature_weights(distances: np.ndarray, transform: str) -> np.ndarray:
    """Algorithm 1 for one class k: min-max normalise d_k, then f(w; mu_k, sigma_k); sums to 1."""
    span = distances.max() - distances.min()
    if span <= 0:  # every real point equally far: nothing to prefer
        return _uniform(len(distances))
    w = (distances - distances.min()) / span
    w = FEATURE_TRANSFORMS[transform](w, w.mean(), w.std())
    # A_sigma zeroes everything when mu + sigma exceeds the largest w (mass piled at the top): uniform then.
    return w / w.sum() if w.sum() > 0 else _uniform(len(w))


def feature_distance_weights(real_features, synthetic_features, transform: str = "A", *,
                             real_labels=None, synthetic_labels=None, reduction: str = "nearest",
                             chunk_size: int = 2048, device: str = "cpu") -> np.ndarray:
    """Seed 001 "Conditioned GANs" sample reweighting (Section 5.1, Algorithm 1).

    d_k(s) is the distance of real sample s of class k to the generated samples of class k in a feature
    space (``reduction="nearest"``: nearest generated sample; "mean": Algorithm 1's literal running sum,
    the mean distance to all of them); distances are normalised within each class (min-max) "to ensure
    class balancing", then transformed: "A" zeroes w < mu_k, "A_sigma" zeroes w < mu_k + sigma_k, "B" is
    1 / (1 + exp(-2 (w - mu_k) / sigma_k)), "C" the identity (population mean and std within the class).
    Returns weights summing to 1; with labels, each class keeps its share n_k / N of the total mass.
    """
    if transform not in FEATURE_TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; expected one of {tuple(FEATURE_TRANSFORMS)}")
    real = np.asarray(real_features)
    synthetic = np.asarray(synthetic_features)
    if (real_labels is None) != (synthetic_labels is None):
        raise ValueError("give labels for both the real and the synthetic features, or for neither")
    real_labels = np.zeros(len(real), dtype=int) if real_labels is None else np.asarray(real_labels)
    synthetic_labels = np.zeros(len(synthetic), dtype=int) if synthetic_labels is None \
        else np.asarray(synthetic_labels)
    weights = np.zeros(len(real))
    for label in np.unique(real_labels):
        in_class = real_labels == label
        generated = synthetic[synthetic_labels == label]
        if len(generated) == 0:
            raise ValueError(f"class {label!r} has real samples but no generated ones")
        distances = reduced_distances(real[in_class], generated, reduction=reduction,
                                      chunk_size=chunk_size, device=device)
        weights[in_class] = _class_feature_weights(distances, transform) * in_class.mean()
    return weights


def _epoch_order(n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Indices drawn uniformly without replacement, one permutation after another, ``length`` in all."""
    perms = [torch.randperm(n, generator=generator) for _ in range(-(-length // n))]
    return torch.cat(perms)[:length]


def train_boost_classifier(real, fake, *, epochs: int = 4, batch_size: int = 64, lr_start: float = 5e-3,
                           lr_end: float = 3.8e-4, seed: int, device: str = "cpu") -> nn.Module:
    """A fresh real (1) vs mixture sample (0) classifier, seed 000 Supplement B: Adam (0.9, 0.999), lr
    decayed geometrically per step from lr_start to lr_end, ``epochs`` passes over the larger set.

    Every minibatch is balanced, half real points drawn uniformly (not by data weight, reference step 2)
    and half mixture samples. Seeded without touching the caller's global RNG; bit-identical per seed on
    CPU. Returns the model in eval mode.
    """
    real_t = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    fake_t = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    if real_t.shape[1:] != fake_t.shape[1:]:
        raise ValueError(f"real {tuple(real_t.shape[1:])} and fake {tuple(fake_t.shape[1:])} samples differ")
    half = max(1, batch_size // 2)
    steps = epochs * -(-max(len(real_t), len(fake_t)) // half)
    dev = torch.device(device)
    cuda_ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_ids):
        torch.manual_seed(seed)
        model = build_boost_classifier(sample_shape=tuple(real_t.shape[1:])).to(dev)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr_start, betas=(0.9, 0.999))
        gamma = (lr_end / lr_start) ** (1.0 / max(steps - 1, 1))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
        sampler = torch.Generator().manual_seed(seed)
        real_idx = _epoch_order(n=len(real_t), length=steps * half, generator=sampler)
        fake_idx = _epoch_order(n=len(fake_t), length=steps * half, generator=sampler)
        labels = torch.cat([torch.ones(half), torch.zeros(half)]).long().to(dev)
        model.train()
        for step in range(steps):
            batch = slice(step * half, (step + 1) * half)
            x = torch.cat([real_t[real_idx[batch]], fake_t[fake_idx[batch]]]).to(dev)
            loss = F.cross_entropy(model(x), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def _p_real(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return softmax_of(model, xb)[:, 1]


def real_probabilities(model: nn.Module, real, batch_size: int = 1024) -> np.ndarray:
    """D(x) = P(real | x), the softmax of the classifier's "real" logit (class 1), per sample; the
    model runs where it is."""
    x = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    return batched(model, x, apply=_p_real, batch_size=batch_size).double().numpy()


def _accuracy(p_real: np.ndarray, p_fake: np.ndarray) -> float:
    correct = np.sum(p_real > 0.5) + np.sum(p_fake <= 0.5)
    return float(correct / (len(p_real) + len(p_fake)))


def classifier_accuracy(model: nn.Module, real, fake, batch_size: int = 1024) -> float:
    """Accuracy over the union of real (label 1) and fake (label 0) samples, at threshold D = 0.5."""
    return _accuracy(real_probabilities(model, real, batch_size=batch_size),
                     real_probabilities(model, fake, batch_size=batch_size))


def adagan_step_weights(real, mixture_samples, *, beta: float, rule: str = "theory_star", seed: int,
                        epochs: int = 4, device: str = "cpu", topk_fraction: float = 0.5,
                        batch_size: int = 64) -> tuple[np.ndarray, dict]:
    """AdaGAN step t > 1 for one class (reference steps 2-3): train the classifier on the class's real
    points vs samples of G_{t-1}, D -> r -> data weights. info also holds the held-in classifier_accuracy."""
    model = train_boost_classifier(real, mixture_samples, epochs=epochs, batch_size=batch_size, seed=seed,
                                   device=device)
    d_real = real_probabilities(model, real)
    weights, info = adagan_data_weights(density_ratio(d_real), beta=beta, rule=rule,
                                        topk_fraction=topk_fraction)
    info["classifier_accuracy"] = _accuracy(d_real, real_probabilities(model, mixture_samples))
    return weights, info
