"""Calibrated membership-inference attacks on the released images, and what they say about a DP claim.

Two attacks score a query image x (higher: more likely a training record); each is calibrated by a
reference set of real images that no GAN saw (half of the audit's holdout split, ``split_holdout``),
so an image that is merely typical does not score as a member:

- calibrated GAN-Leaks (Chen, Yu, Zhang and Fritz, "GAN-Leaks: a taxonomy of membership inference
  attacks against generative models", the calibrated full black-box attack): the distance from x to
  its closest synthetic sample, minus its distance to the closest reference image, both as logs
  (``gan_leaks_scores``; the score is that difference negated). The paper subtracts the raw
  reconstruction distances of a target and a reference generator; with a reference of a few dozen
  held-out images the raw 1-NN distance to it is large and noisy and swamps an exact copy's distance
  of ~0, so raygan calibrates multiplicatively (a ratio of distances);
- DOMIAS (van Breugel, Sun, Qian and van der Schaar, "Membership inference attacks against synthetic
  data through overfitting detection"): the synthetic set's density at x over the reference density
  at x, both Gaussian kernel density estimates in the domain features projected onto the synthetic
  set's leading principal directions (``domias_scores``; log of the ratio).

``roc`` reports an attack as AUROC and TPR at 1 % and 0.1 % FPR (Carlini et al., "Membership inference
attacks from first principles": the low-FPR regime is what matters). ``dp_check`` tests an
(epsilon, delta)-DP claim against an attack: every operating point of a DP mechanism obeys
TPR <= e^eps FPR + delta and 1 - FPR <= e^eps (1 - TPR) + delta (Kairouz, Oh and Viswanath, "The
composition theorem for differential privacy"). Empirical rates are noisy, so beside the raw check it
gives the lower bound on epsilon that Clopper-Pearson intervals support (as Jagielski, Ullman and Oprea,
"Auditing differentially private machine learning", audit DP-SGD): a claim is violated only when that
bound exceeds it. Pure numpy/torch/scipy: the audit (raygan.audit.statistics) calls these per class.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from raygan.metrics.memorisation import nearest

OPERATING_FPRS = (0.01, 0.001)   # TPR is reported at these false-positive rates
CONFIDENCE = 0.95                # of the epsilon lower bound (Bonferroni over the operating points)
LOG_FLOOR = 1e-6                 # added to a distance before its log (GAN-Leaks)
DOMIAS_DIMS = 5                  # principal directions the densities are estimated in (at most)


def split_holdout(holdout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reference, non-member queries): every other holdout image, so the two halves are alike and
    disjoint (the holdout split is already in a seeded random order)."""
    return holdout[0::2], holdout[1::2]


def gan_leaks_scores(queries: torch.Tensor, synthetic: torch.Tensor, reference: torch.Tensor, *,
                     chunk_size: int = 2048, device: str | torch.device = "cpu") -> np.ndarray:
    """Calibrated GAN-Leaks (Chen et al.'s L_cal, on log distances): log d(x, reference) - log d(x,
    synthetic), with d the mean squared difference to the closest row (raygan.metrics.memorisation.
    nearest), floored at LOG_FLOOR (PNG quantisation leaves a copy ~1e-5 from its original)."""
    if not len(queries):
        return np.zeros(0)
    d_syn = nearest(queries, synthetic, chunk_size=chunk_size, device=device)[0]
    d_ref = nearest(queries, reference, chunk_size=chunk_size, device=device)[0]
    return (np.log(d_ref.double().numpy() + LOG_FLOOR) - np.log(d_syn.double().numpy() + LOG_FLOOR))


def _projection(synthetic: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the ``dims`` leading principal directions of the synthetic features (the released
    set's own, so choosing them reads no private record)."""
    mean = synthetic.mean(0)
    _, _, vt = np.linalg.svd(synthetic - mean, full_matrices=False)
    return mean, vt[:dims].T


def _kde_logpdf(fit: np.ndarray, at: np.ndarray) -> np.ndarray:
    from scipy.stats import gaussian_kde

    return gaussian_kde(fit.T).logpdf(at.T)


def domias_scores(queries: torch.Tensor, synthetic: torch.Tensor, reference: torch.Tensor, *,
                  dims: int = DOMIAS_DIMS) -> np.ndarray:
    """DOMIAS (van Breugel et al., eq. 2): log p_synthetic(x) - log p_reference(x), Gaussian KDEs
    (Scott's bandwidth) in the features' ``dims`` leading principal directions of the synthetic set
    (fewer when the reference has too few rows for a full-rank density)."""
    if not len(queries):
        return np.zeros(0)
    q, s, r = (x.double().flatten(1).numpy() for x in (queries, synthetic, reference))
    k = max(1, min(dims, len(r) - 2, len(s) - 2, q.shape[1]))
    mean, basis = _projection(s, k)
    q, s, r = ((x - mean) @ basis for x in (q, s, r))
    return _kde_logpdf(s, q) - _kde_logpdf(r, q)


def _curve(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FPR, TPR, threshold) at every distinct threshold, from (0, 0) to (1, 1): sklearn's roc_curve."""
    from sklearn.metrics import roc_curve

    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    fpr, tpr, thr = roc_curve(labels, np.r_[members, nonmembers], drop_intermediate=False)
    return fpr, tpr, thr


def roc(members: np.ndarray, nonmembers: np.ndarray) -> Optional[dict]:
    """AUROC and TPR at each of OPERATING_FPRS (the largest TPR whose FPR is at most it) of scores
    where higher means member; None when either side is empty. ``fpr_resolution`` is 1 / (number of
    non-members): below it a TPR "at FPR f" is the TPR at FPR 0 (no non-member above the threshold)."""
    from sklearn.metrics import roc_auc_score

    members, nonmembers = np.asarray(members, float), np.asarray(nonmembers, float)
    if not len(members) or not len(nonmembers):
        return None
    fpr, tpr, _ = _curve(members, nonmembers)
    labels = np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]
    return {"auroc": float(roc_auc_score(labels, np.r_[members, nonmembers])),
            **{_tpr_key(f): float(tpr[fpr <= f + 1e-12].max()) for f in OPERATING_FPRS},
            "members": int(len(members)), "nonmembers": int(len(nonmembers)),
            "fpr_resolution": 1.0 / len(nonmembers)}


def _tpr_key(fpr: float) -> str:
    return f"tpr_at_{fpr * 100:g}pct_fpr"


def group_bound(epsilon: float, delta: float, copies: int) -> tuple[float, float]:
    """(epsilon, delta) for a unit of ``copies`` records under a per-record (epsilon, delta) guarantee
    (group privacy: k epsilon and k e^((k-1) epsilon) delta; Dwork and Roth, Theorem 2.2 and its
    approximate-DP form): raygan.privacy.accountant.group_privacy."""
    from raygan.privacy.accountant import group_privacy

    return group_privacy(epsilon, delta, copies)


def epsilon_lower_bound(members: np.ndarray, nonmembers: np.ndarray, delta: float, *,
                        confidence: float = CONFIDENCE) -> float:
    """The largest epsilon that the attack's operating points show at ``confidence``: at each
    threshold, Clopper-Pearson bounds (one-sided, Bonferroni over the thresholds) give a TPR at least
    tpr_lo and an FPR at most fpr_hi, and DP needs e^eps >= (tpr_lo - delta) / fpr_hi; the same on the
    other side, (tnr_lo - delta) / fnr_hi. 0 when no point shows anything."""
    from scipy.stats import beta

    fpr, tpr, _ = _curve(members, nonmembers)
    n1, n0 = len(members), len(nonmembers)
    tp, fp = np.rint(tpr * n1), np.rint(fpr * n0)
    alpha = (1 - confidence) / max(1, len(fpr))

    def low(k, n):  # one-sided lower bound on a rate k / n
        return np.where(k > 0, beta.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.0)

    def high(k, n):
        return np.where(k < n, beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1)), 1.0)

    best = 0.0
    for num, den in ((low(tp, n1), high(fp, n0)), (low(n0 - fp, n0), high(n1 - tp, n1))):
        ok = (num - delta > 0) & (den > 0)
        if ok.any():
            best = max(best, float(np.log((num[ok] - delta) / den[ok]).max()))
    return best


def dp_check(members: np.ndarray, nonmembers: np.ndarray, epsilon: float, delta: float) -> Optional[dict]:
    """Does the attack stay within (epsilon, delta)-DP at every operating point? ``holds``: no point
    breaks TPR <= e^eps FPR + delta (or its mirror); ``epsilon_lower_bound``: what the points show at
    CONFIDENCE; ``verdict``: holds, consistent (empirical excursions that sampling noise explains:
    the lower bound stays within epsilon) or violated (the lower bound exceeds epsilon)."""
    members, nonmembers = np.asarray(members, float), np.asarray(nonmembers, float)
    if not len(members) or not len(nonmembers):
        return None
    fpr, tpr, _ = _curve(members, nonmembers)
    e = math.exp(epsilon)
    bad = (tpr > e * fpr + delta + 1e-12) | (1 - fpr > e * (1 - tpr) + delta + 1e-12)
    bound = epsilon_lower_bound(members, nonmembers, delta)
    verdict = "violated" if bound > epsilon else ("consistent" if bad.any() else "holds")
    worst = int(np.argmax(tpr - e * fpr))
    return {"epsilon": epsilon, "delta": delta, "operating_points": int(len(fpr)),
            "points_outside": int(bad.sum()), "epsilon_lower_bound": bound, "verdict": verdict,
            "worst_point": {"fpr": float(fpr[worst]), "tpr": float(tpr[worst]),
                            "bound": float(min(1.0, e * fpr[worst] + delta))}}


def attack(members: np.ndarray, nonmembers: np.ndarray, dp: Optional[tuple[float, float]]) -> Optional[dict]:
    """``roc`` of the scores, with ``dp_check`` against dp = (epsilon, delta) when given, and the
    epsilon lower bound at delta 0 without one (what the attack shows of any DP claim)."""
    out = roc(members, nonmembers)
    if out is None:
        return None
    if dp is not None:
        out["dp"] = dp_check(members, nonmembers, *dp)
    else:
        out["epsilon_lower_bound"] = epsilon_lower_bound(np.asarray(members, float),
                                                         np.asarray(nonmembers, float), 0.0)
    return out




# --- the audit's use: scores per class, then the summary --------------------------------------------
def class_scores(train: torch.Tensor, holdout: torch.Tensor, synthetic: torch.Tensor, *, canaries=None,
                 features=None, chunk_size: int = 2048, device: str | torch.device = "cpu") -> dict:
    """Both attacks' scores of one class: its training images (members; planted canaries left out) and
    half of its holdout (non-members), calibrated by the other half; with ``canaries`` (a
    raygan.data.canaries.ClassCanaries) the planted ones and their controls too. GAN-Leaks compares
    pixels; DOMIAS the ``features`` (the domain classifier's embedding; None: pixels)."""
    reference, nonmembers = split_holdout(holdout)
    keep = torch.ones(len(train), dtype=torch.bool)
    if canaries is not None:
        keep[canaries.original_rows:] = False
        keep[canaries.duplicated_rows] = False
    sets = {"members": train[keep], "nonmembers": nonmembers}
    if canaries is not None:
        sets.update(duplicated=canaries.duplicated, outlier=canaries.outliers,
                    outlier_controls=canaries.outlier_controls)
    embed = features if features is not None else (lambda x: x)
    syn_f, ref_f = embed(synthetic), embed(reference)
    kw = {"chunk_size": chunk_size, "device": device}
    return {name: {"gan_leaks": gan_leaks_scores(x, synthetic, reference, **kw),
                   "domias": domias_scores(embed(x), syn_f, ref_f)} for name, x in sets.items()}


# (kind, its members' set, its non-members' set) of class_scores' sets
_CANARY_SETS = (("duplicated", "duplicated", "nonmembers"), ("outlier", "outlier", "outlier_controls"))


def summarise_attacks(scores: dict[str, dict], *, dp: Optional[tuple[float, float]], copies: Optional[int],
                      domias_space: str, reference: str) -> dict:
    """privacy.json's "attacks": per attack, per class and overall (scores pooled over classes, each
    class calibrated by its own reference), the canaries pooled over classes, and with ``dp`` =
    (epsilon, delta) the check of every one; a duplicated canary is ``copies`` records, checked
    against the group bound."""
    def pooled(name: str, which: str) -> np.ndarray:
        return np.concatenate([s[which][name] for s in scores.values()])

    out: dict = {"reference": reference, "operating_fprs": list(OPERATING_FPRS),
                 "spaces": {"gan_leaks": "pixel", "domias": domias_space},
                 "dp": None if dp is None else {"epsilon": dp[0], "delta": dp[1]}}
    checks = []
    for name in ("gan_leaks", "domias"):
        res = {"overall": attack(pooled(name, "members"), pooled(name, "nonmembers"), dp),
               "classes": {c: attack(s["members"][name], s["nonmembers"][name], dp) for c, s in scores.items()}}
        checks += [res["overall"], *res["classes"].values()]
        out[name] = res
    if copies is not None:
        group = None if dp is None else group_bound(*dp, copies)
        out["canaries"] = {kind: {"records": copies if kind == "duplicated" else 1,
                                  **{name: attack(pooled(name, pos), pooled(name, neg),
                                                  group if kind == "duplicated" else dp)
                                     for name in ("gan_leaks", "domias")}}
                           for kind, pos, neg in _CANARY_SETS}
        checks += [c[name] for c in out["canaries"].values() for name in ("gan_leaks", "domias")]
    if dp is not None:
        verdicts = [c["dp"]["verdict"] for c in checks if c is not None and c.get("dp")]
        out["dp_verdict"] = next((v for v in ("violated", "consistent", "holds") if v in verdicts), None)
        out["dp_epsilon_lower_bound"] = max((c["dp"]["epsilon_lower_bound"] for c in checks
                                             if c is not None and c.get("dp")), default=0.0)
    return out


__all__ = ["OPERATING_FPRS", "attack", "class_scores", "domias_scores", "dp_check", "epsilon_lower_bound",
           "gan_leaks_scores", "group_bound", "roc", "split_holdout", "summarise_attacks"]
