"""The audit's numbers for one class: distances of synthetic and holdout images to their nearest
training image, DCR quantiles, fractions below the holdout's percentiles, near-duplicates and the
membership-inference AUROC; then the pooled summary and the PASS / WARN verdict with its reasons.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from raygan.audit.attacks import class_scores, summarise_attacks
from raygan.config import Config
from raygan.gan.train import resolve_device
from raygan.metrics.memorisation import member_segments, mia_auroc, nearest, null_fraction_below_p1

SPACES = ("pixel", "domain")


QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95)


BOOSTED = ("adagan", "reweight")  # methods whose members are steps: the figure shows each step alone


NEAR_DUPLICATES_LISTED = 100      # per class in privacy.json; the count is always exact


FLAT_NOTE = "copy flat training image(s)"  # in the note on near-duplicates of flat images (render.py)


@dataclass
class SpaceDistances:
    """The four searches of one class in one feature space (mean squared differences)."""
    synthetic_dcr: np.ndarray         # (n_syn,) each synthetic sample to its closest training image
    synthetic_nearest: np.ndarray     # (n_syn,) that image's index in the class's training split
    holdout_dcr: np.ndarray           # (n_holdout,) the reference: holdout image to closest training
    train_to_synthetic: np.ndarray    # (n_train, n_members) to the closest sample of each member
    holdout_to_synthetic: np.ndarray  # (n_holdout, n_members)
    # (n_train,) each training image's MSE to its own mean, a constant image (pixels only): below
    # audit.near_duplicate_mse the image is flat (a blank tile), and a copy of it reveals one grey level
    train_flatness: Optional[np.ndarray] = None


@dataclass
class ClassAudit:
    class_name: str
    members: np.ndarray      # (n_syn,) member of each audited synthetic row (sorted)
    shard_index: np.ndarray  # (n_syn,) the row's `index` column in the shards
    spaces: dict             # space name -> SpaceDistances
    attacks: Optional[dict] = None  # raygan.audit.attacks.class_scores: the calibrated attacks' scores


def audit_class(class_name: str, train: torch.Tensor, holdout: torch.Tensor, synthetic: torch.Tensor,
                members: np.ndarray, *, shard_index: Optional[np.ndarray] = None,
                spaces: tuple | list = ("pixel",), domain_model: Optional[torch.nn.Module] = None,
                chunk_size: int = 2048, device: str | torch.device = "cpu", canaries=None) -> ClassAudit:
    """Every search the audit needs for one class, and the calibrated attacks' scores (with the
    class's planted ``canaries``, raygan.data.canaries); synthetic rows sorted by member."""
    from raygan.metrics.domain import embed

    ids, segs = member_segments(members)
    dev = resolve_device(device)
    out = {}
    for space in spaces:
        if space == "domain":
            if domain_model is None:
                raise ValueError("the domain space needs the domain classifier (domain_model=)")
            tr, ho, sy = (embed(domain_model, x, device=dev) for x in (train, holdout, synthetic))
        else:
            tr, ho, sy = train, holdout, synthetic
        kw = {"chunk_size": chunk_size, "device": dev}
        syn_d, syn_i = nearest(sy, tr, **kw)
        hold_d, _ = nearest(ho, tr, **kw)
        out[space] = SpaceDistances(syn_d.numpy(), syn_i.numpy(), hold_d.numpy(),
                                    nearest(tr, sy, segments=segs, **kw)[0].numpy(),
                                    nearest(ho, sy, segments=segs, **kw)[0].numpy(),
                                    train_flatness=_flatness(tr) if space == "pixel" else None)
    index = np.arange(len(members)) if shard_index is None else np.asarray(shard_index)
    features = None if domain_model is None else (lambda x: embed(domain_model, x, device=dev))
    attacks = class_scores(train, holdout, synthetic, canaries=canaries, features=features,
                           chunk_size=chunk_size, device=dev)
    return ClassAudit(class_name, np.asarray(members), index, out, attacks)


def _flatness(train: torch.Tensor) -> np.ndarray:
    """Each image's mean squared difference to its own mean value: its MSE to the nearest constant
    image (0 for a blank one)."""
    x = train.flatten(1).double()
    return x.var(dim=1, unbiased=False).numpy()


# --- the numbers ------------------------------------------------------------------------------------
def _quantiles(d: np.ndarray) -> dict:
    return {f"q{round(100 * q):02d}": float(np.quantile(d, q)) for q in QUANTILES} if len(d) else {}


def _stats(sd: SpaceDistances, rows: np.ndarray, cols: list[int], p1: float, p5: float,
           near_mse: Optional[float]) -> dict:
    d = sd.synthetic_dcr[rows]
    out = {"n": int(len(d)), "fraction_below_p1": float(np.mean(d < p1)) if len(d) else None,
           "fraction_below_p5": float(np.mean(d < p5)) if len(d) else None, "dcr": _quantiles(d),
           "mia_auroc": mia_auroc(sd.train_to_synthetic[:, cols].min(1),
                                  sd.holdout_to_synthetic[:, cols].min(1))}
    if near_mse is not None:
        out["near_duplicates"] = int(np.sum(d < near_mse))
    return out


def summarise_class(a: ClassAudit, cfg: Config) -> dict:
    """Per space: holdout reference, the whole synthetic set, each member and each first-T ensemble."""
    c = cfg.audit
    ids, _ = member_segments(a.members)
    result: dict = {"n_synthetic": int(len(a.members)), "spaces": {}, "reasons": [], "notes": []}
    for space, sd in a.spaces.items():
        p1, p5 = (float(v) for v in np.quantile(sd.holdout_dcr, [0.01, 0.05]))
        near = c.near_duplicate_mse if space == "pixel" else None
        every = np.arange(len(a.members))
        s = {"holdout": {"n": int(len(sd.holdout_dcr)), "p1": p1, "p5": p5,
                         "dcr": _quantiles(sd.holdout_dcr),
                         "null_fraction_below_p1_q99": null_fraction_below_p1(len(sd.holdout_dcr))},
             "synthetic": _stats(sd, every, list(range(len(ids))), p1, p5, near),
             "members": [{"member": m, **_stats(sd, np.flatnonzero(a.members == m), [j], p1, p5, near)}
                         for j, m in enumerate(ids)],
             "ensemble_sizes": [{"T": j + 1, **_stats(sd, np.flatnonzero(a.members <= m),
                                                      list(range(j + 1)), p1, p5, near)}
                                for j, m in enumerate(ids)]}
        result["spaces"][space] = s
        result["n_train"] = int(sd.train_to_synthetic.shape[0])
        # The warn limit is audit.warn_fraction_p1, raised to what a set that copies nothing reaches
        # in 1 audit of 100 when the holdout is too small for its 1st percentile to be sharp.
        frac, bound = s["synthetic"]["fraction_below_p1"], s["holdout"]["null_fraction_below_p1_q99"]
        limit = max(c.warn_fraction_p1, bound)
        s["warn_limit_below_p1"] = limit
        if space == "pixel" and bound > c.warn_fraction_p1:
            result["notes"].append(f"{a.class_name}: the holdout's 1st percentile rests on "
                                   f"{len(sd.holdout_dcr)} images; a set that copies nothing has more "
                                   f"than {100 * bound:.1f} % below it in 1 audit of 100, so this "
                                   f"class warns above {100 * limit:.1f} % (audit.warn_fraction_p1 "
                                   f"{100 * c.warn_fraction_p1:.1f} %); near-duplicates stay exact")
        if frac is not None and frac > limit:
            result["reasons"].append(f"{a.class_name}: {space}: {100 * frac:.1f} % of synthetic samples "
                                     f"are closer to a training image than the holdout's 1st "
                                     f"percentile (warn above {100 * limit:.1f} %)")
        if near is not None:
            _near_duplicates(a, sd, near, c, result)
    result["verdict"] = "warn" if result["reasons"] else "pass"
    return result


def _near_duplicates(a: ClassAudit, sd: SpaceDistances, near: float, c, result: dict) -> None:
    """The class's near-duplicates, listed (closest first) and counted. Those of a flat training image
    (within ``near`` of a constant image: a blank tile, a black frame) are marked "flat" and, unless
    audit.warn_flat_duplicates, are a note rather than a reason to warn: such a copy reveals one grey
    level, not a record. Images that repeat in the training split are not exempt (a repeated record is
    the one most at risk)."""
    dup = np.flatnonzero(sd.synthetic_dcr < near)
    dup = dup[np.argsort(sd.synthetic_dcr[dup], kind="stable")]
    flat = np.zeros(len(dup), dtype=bool) if sd.train_flatness is None else \
        sd.train_flatness[sd.synthetic_nearest[dup]] < near
    result["near_duplicates"] = [
        {"synthetic_row": int(i), "member": int(a.members[i]), "index": int(a.shard_index[i]),
         "train_index": int(sd.synthetic_nearest[i]), "mse": float(sd.synthetic_dcr[i]), "flat": bool(f)}
        for i, f in list(zip(dup, flat))[:NEAR_DUPLICATES_LISTED]]
    result["near_duplicates_of_flat"] = int(flat.sum())
    counted = len(dup) if c.warn_flat_duplicates else int((~flat).sum())
    if flat.any():
        images = sorted({int(j) for j in sd.synthetic_nearest[dup[flat]]})
        result["notes"].append(
            f"{a.class_name}: {int(flat.sum())} of its {len(dup)} near-duplicate(s) {FLAT_NOTE} "
            f"{images[:10]}{' ...' if len(images) > 10 else ''} (within pixel MSE {near:g} of a "
            "constant image, e.g. a blank tile: a copy reveals one grey level): "
            + ("counted (audit.warn_flat_duplicates)" if c.warn_flat_duplicates else
               "not counted towards the verdict (audit.warn_flat_duplicates=true counts them)"))
    if counted > c.warn_near_duplicates:
        what = "near-duplicate(s) of training images" if c.warn_flat_duplicates or not flat.any() else \
            "near-duplicate(s) of training images that are not flat"
        result["reasons"].append(f"{a.class_name}: {counted} {what} (pixel MSE < {near:g}; warn above "
                                 f"{c.warn_near_duplicates})")


def groups(method: str, members: list[int]) -> list[tuple[str, list[int]]]:
    """The figure's columns: first-T ensembles, or each boosting step's own member (seed 000 Fig. 9)."""
    if method in BOOSTED:
        return [(f"step {m + 1}", [m]) for m in members]
    return [(f"T = {j + 1}", members[:j + 1]) for j in range(len(members))]


def closest_pairs(audits: list[ClassAudit], method: str, k: int) -> list[dict]:
    """Per column, the k (synthetic, training) pairs with the smallest pixel MSE over all classes."""
    members = sorted({int(m) for a in audits for m in a.members})
    out = []
    for label, keep in groups(method, members):
        pairs = []
        for c, a in enumerate(audits):
            sd = a.spaces["pixel"]
            rows = np.flatnonzero(np.isin(a.members, keep))
            rows = rows[np.argsort(sd.synthetic_dcr[rows], kind="stable")[:k]]
            pairs += [{"class": a.class_name, "class_index": c, "synthetic_row": int(i),
                       "member": int(a.members[i]), "index": int(a.shard_index[i]),
                       "train_index": int(sd.synthetic_nearest[i]), "mse": float(sd.synthetic_dcr[i])}
                      for i in rows]
        out.append({"group": label, "members": list(keep),
                    "pairs": sorted(pairs, key=lambda p: p["mse"])[:k]})
    return out


def summarise(audits: list[ClassAudit], cfg: Config, *, dataset_name: str,
              dp: Optional[tuple[float, float]] = None) -> dict:
    """privacy.json's content: per class, pooled membership inference, the calibrated attacks (with
    their check of the run's (epsilon, delta) = ``dp``), the verdict and its reasons."""
    classes = {a.class_name: summarise_class(a, cfg) for a in audits}
    pooled = {}
    for space in cfg.audit.spaces:
        tr = np.concatenate([a.spaces[space].train_to_synthetic.min(1) for a in audits])
        ho = np.concatenate([a.spaces[space].holdout_to_synthetic.min(1) for a in audits])
        pooled[space] = mia_auroc(tr, ho)
    reasons = [r for c in classes.values() for r in c["reasons"]]
    notes = [r for c in classes.values() for r in c["notes"]]
    return {"verdict": "warn" if reasons else "pass", "reasons": reasons, "notes": notes,
            "dataset": dataset_name,
            "method": cfg.ensemble.method, "holdout": cfg.audit.holdout, "spaces": list(cfg.audit.spaces),
            "thresholds": {"warn_fraction_p1": cfg.audit.warn_fraction_p1,
                           "warn_near_duplicates": cfg.audit.warn_near_duplicates,
                           "warn_flat_duplicates": cfg.audit.warn_flat_duplicates,
                           "near_duplicate_mse": cfg.audit.near_duplicate_mse},
            "mia_auroc": pooled, "classes": classes, "attacks": summarise_attacks(
                {a.class_name: a.attacks for a in audits}, dp=dp,
                copies=cfg.data.canary_copies if cfg.data.canaries else None,
                domias_space="domain" if "domain" in cfg.audit.spaces else "pixel",
                reference=f"every other image of the {cfg.audit.holdout} split (the rest are the non-members)")}

