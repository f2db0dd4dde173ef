"""The Frechet distance between Gaussians fitted to two feature sets, in any feature space.

d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))  (Dowson & Landau 1982; Heusel et al. 2017
eq. 6 with Inception features; seed 004 eq. 13). raygan uses it in the domain feature space
(raygan.metrics.domain) and labels that number "domain FD", never FID: it is not comparable with
Inception FIDs. The Inception FID itself is torch-fidelity's (raygan.metrics.inception).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

# A relative imaginary part of Tr((S_a S_b)^(1/2)) above this means sqrtm failed, not rounding.
IMAGINARY_TOLERANCE = 1e-3


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    f = _as_array(features)
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrtm(m: np.ndarray) -> np.ndarray:
    # "Matrix is singular" is the normal case for small samples; the checks below judge the result.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(m)


def frechet_from_stats(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray,
                       *, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b).

    Safeguards (the covariances of a few hundred samples in 64+ dimensions are singular): when the
    square root of S_a S_b is not finite, eps * I is added to both covariances and it is retried; the
    small imaginary part sqrtm returns for nearly singular products is dropped, and one that is not
    small relative to the trace raises. The result is clipped at 0 (rounding can make it -1e-12).
    """
    mu_a, mu_b = np.atleast_1d(mu_a).astype(np.float64), np.atleast_1d(mu_b).astype(np.float64)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape:
        raise ValueError(f"feature dimensions differ: {mu_a.shape} vs {mu_b.shape}")
    diff = mu_a - mu_b
    root = _sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        warnings.warn(f"sqrtm of the covariance product is not finite; adding {eps} to the diagonals",
                      RuntimeWarning, stacklevel=2)
        offset = np.eye(len(cov_a)) * eps
        root = _sqrtm((cov_a + offset) @ (cov_b + offset))
    trace_root = np.trace(root)
    if np.iscomplexobj(trace_root) or np.iscomplexobj(root):
        scale = max(1.0, abs(trace_root.real))
        if abs(np.imag(trace_root)) > IMAGINARY_TOLERANCE * scale or \
                np.abs(np.imag(root)).max() > IMAGINARY_TOLERANCE * max(1.0, np.abs(root).max()):
            raise ValueError(f"sqrtm of the covariance product has a large imaginary part "
                             f"({np.abs(np.imag(root)).max():.3g}); the covariances are degenerate")
        trace_root = trace_root.real
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * float(trace_root)
    return float(max(value, 0.0))


def _as_array(features) -> np.ndarray:
    f = np.asarray(features.detach().cpu().numpy() if torch.is_tensor(features) else features,
                   dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features (N >= 2, D), got shape {f.shape}")
    return f


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray,
                     *, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D).

    When a set has fewer samples than dimensions (per-class sets in Inception's 2048 dimensions) the
    covariances are singular and sqrtm of a D x D product is slow and fragile; the trace term is then
    computed exactly from the centred samples A, B instead: the non-zero eigenvalues of S_a S_b =
    A^T A B^T B / c are those of (A B^T)(A B^T)^T / c, so Tr((S_a S_b)^(1/2)) = ||A B^T||_* / sqrt(c)
    with c = (N_a - 1)(N_b - 1) (the nuclear norm: the sum of singular values; no square root of a
    matrix, no imaginary parts).
    """
    a, b = _as_array(features_a), _as_array(features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if min(len(a), len(b)) > a.shape[1]:
        return frechet_from_stats(*gaussian_stats(a), *gaussian_stats(b), eps=eps)
    ca, cb = a - a.mean(0), b - b.mean(0)
    diff = a.mean(0) - b.mean(0)
    c = (len(a) - 1) * (len(b) - 1)
    trace_root = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(c)
    value = diff @ diff + (ca * ca).sum() / (len(a) - 1) + (cb * cb).sum() / (len(b) - 1) \
        - 2.0 * trace_root
    return float(max(value, 0.0))


__all__ = ["gaussian_stats", "frechet_from_stats", "frechet_distance"]
