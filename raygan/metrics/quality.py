"""Sample-quality metrics of synthetic sets, per class and overall, each tagged by its feature space.

``compute_quality(cfg, dataset, sets)`` scores every set (e.g. "T=1", "T=3", "pca") with the metrics
named in ``cfg.eval.metrics``. Its parts serve the evaluation's units of work (one per set, maybe a
Ray task each): ``quality_header`` (checks and what the result says), ``QualityContext`` (feature
extractors and reference features, made once) and ``score_set`` (one set). The metrics:

- fid, kid: Inception-v3 pool3 features, standard weights from eval.inception_weights
  (raygan.metrics.inception); seed 004 Table 1 reports per-class FID.
- domain_fd: Frechet distance in the domain feature space (a SimpleCNN trained on the real training
  split, raygan.metrics.domain). Not FID and not comparable with it.
- prdc: precision, recall, density, coverage (Naeem et al. 2020) in the domain feature space.
- msssim: seed 001 Table 2's intra-class diversity (mean MS-SSIM of 200 random same-class pairs; lower =
  more diverse), on pixels.
- classifier_score: seed 003's "inception score": accuracy of the real-trained domain classifier on a
  class's generated samples (the class is the label).
- pca: adds seed 003's PCA baseline (raygan.evaluation.pca) as a set scored like the others.

The reference of every distance is the real TEST split of the class (at most eval.metric_samples per
class), never the training images the GANs (and the PCA) were fitted on: a memorised training set
would otherwise score perfectly. Every set is also capped at eval.metric_samples per class. "Overall"
pools the classes' features (fid, kid, domain_fd, prdc) or averages the per-class values (msssim,
classifier_score). A "real (val)" set (the real validation split) gives the floor of each metric.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from raygan import seeds
from raygan.config import Config, ConfigError
from raygan.data import RealDataset, is_points
from raygan.ensemble.counts import synthetic_count

logger = logging.getLogger(__name__)

ALLOWED = ("fid", "kid", "domain_fd", "prdc", "msssim", "classifier_score", "pca")
REAL_SET = "real (val)"
DOMAIN_SPACE = "domain: SimpleCNN trained on the real training split, penultimate layer (64-d)"
PRDC_KEYS = ("precision", "recall", "density", "coverage")
# Which way is better, for the report.
DIRECTION = {"fid": "lower", "kid": "lower", "domain_fd": "lower", "precision": "higher",
             "recall": "higher", "density": "higher (about 1 when matched)", "coverage": "higher",
             "msssim": "lower = more diverse (real data's value is the target)",
             "classifier_score": "higher"}


def validate_metrics(cfg: Config) -> list[str]:
    """eval.metrics checked before any work: known names, images, local Inception weights for fid/kid."""
    names = list(cfg.eval.metrics)
    unknown = [n for n in names if n not in ALLOWED]
    if unknown:
        raise ConfigError(f"eval.metrics: unknown metric(s) {unknown}; allowed: {', '.join(ALLOWED)}")
    if names and is_points(cfg.data.name):
        raise ConfigError(f"eval.metrics are image metrics; data.name={cfg.data.name} is scored by seed "
                          "000's Table 1 (raygan table1); set eval.metrics=[]")
    if "fid" in names or "kid" in names:
        from raygan.metrics.inception import check_weights
        check_weights(cfg.eval.inception_weights)
    if names and cfg.data.test_fraction <= 0 and \
            cfg.data.name not in ("mnist", "fashion_mnist", "cifar10", "svhn", "medmnist"):
        raise ConfigError("eval.metrics compare synthetic samples with the real test split, which is "
                          "empty (data.test_fraction=0); set data.test_fraction > 0")
    return names


def samples_per_class(cfg: Config, dataset: RealDataset, class_name: str) -> int:
    """How many synthetic samples a set needs per class: N_g (or N real), capped at metric_samples."""
    n = synthetic_count(cfg, dataset.train_sizes()[class_name])
    return int(min(n, cfg.eval.metric_samples))


def real_split(dataset: RealDataset, split: str, cap: int) -> dict[str, torch.Tensor]:
    """{class: first `cap` images of the class} from the val or test split."""
    x, y = dataset.test if split == "test" else dataset.val
    return {name: x[y == k][:cap] for k, name in enumerate(dataset.classes)}


def classifier_score(model: torch.nn.Module, images: torch.Tensor, class_index: int,
                     device: str = "cpu") -> float:
    """Seed 003's "inception score": the fraction of samples the real-trained classifier assigns to
    the class they were generated for."""
    from raygan.metrics.domain import predict
    if len(images) == 0:
        return float("nan")
    return float((predict(model, images, device=device).argmax(1) == class_index).float().mean())


def _pca_set(cfg: Config, dataset: RealDataset) -> tuple[dict[str, torch.Tensor], dict]:
    from raygan.evaluation.pca import fit_pca_generators, pca_samples
    gens = fit_pca_generators(dataset, seed=cfg.synth.seed)
    counts = {n: samples_per_class(cfg, dataset, n) for n in dataset.classes}
    info = {"components": {n: g.z_dim for n, g in gens.items()},
            "explained_variance": {n: round(g.explained_variance, 4) for n, g in gens.items()},
            "fitted_on": "real training split, per class"}
    return pca_samples(gens, counts, seed=cfg.synth.seed), info


class _Spaces:
    """Feature extractors, loaded once and only when a listed metric needs them."""

    def __init__(self, cfg: Config, dataset: RealDataset, names: list[str], run_dir, device: str):
        self.device = device
        self.domain = self.inception = None
        if {"domain_fd", "prdc", "classifier_score"} & set(names):
            from raygan.metrics.domain import run_domain_classifier, train_domain_classifier
            self.domain = run_domain_classifier(dataset, run_dir, device=device) if run_dir is not None \
                else train_domain_classifier(dataset, device=device)
        if {"fid", "kid"} & set(names):
            from raygan.metrics.inception import load_inception
            self.inception = load_inception(cfg.eval.inception_weights, device=device)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        if self.domain is not None:
            from raygan.metrics.domain import embed
            out["domain"] = embed(self.domain, x, device=self.device).double()
        if self.inception is not None:
            from raygan.metrics.inception import inception_features
            out["inception"] = inception_features(self.inception, x, device=self.device)
        return out


def _distances(names: list[str], ref: dict, fake: dict, seed: int) -> dict:
    from raygan.metrics.frechet import frechet_distance
    from raygan.metrics.prdc import prdc
    row = {}
    if "fid" in names:
        from raygan.metrics.inception import fid_from_features
        row["fid"] = fid_from_features(ref["inception"], fake["inception"])
    if "kid" in names:
        from raygan.metrics.inception import kid_from_features
        row["kid"], row["kid_std"] = kid_from_features(ref["inception"], fake["inception"], seed=seed)
    if "domain_fd" in names:
        row["domain_fd"] = frechet_distance(ref["domain"], fake["domain"])
    if "prdc" in names:
        scores = prdc(ref["domain"], fake["domain"])
        row.update({k: scores[k] for k in PRDC_KEYS})
        row["prdc_k"] = scores["k"]
    return row


def _score_set(names, spaces: _Spaces, dataset: RealDataset, images: dict[str, torch.Tensor],
               ref_feats: dict, seed: int) -> dict:
    from raygan.metrics.diversity import intra_class_msssim
    per_class, feats = {}, {}
    for k, name in enumerate(dataset.classes):
        x = images[name]
        feats[name] = spaces.features(x)
        row = {"n": int(len(x))}
        row.update(_distances(names, ref_feats[name], feats[name], seed))
        if "msssim" in names:
            diversity = intra_class_msssim(x, seed=seeds.offset(seed, k))
            row.update(msssim=diversity["msssim"], msssim_std=diversity["msssim_std"])
        if "classifier_score" in names:
            row["classifier_score"] = classifier_score(spaces.domain, x, k, device=spaces.device)
        per_class[name] = row
    def pooled(by_class: dict) -> dict[str, torch.Tensor]:
        spaces_used = by_class[dataset.classes[0]]
        return {s: torch.cat([by_class[n][s] for n in dataset.classes]) for s in spaces_used}
    overall = {"n": int(sum(len(images[n]) for n in dataset.classes))}
    overall.update(_distances(names, pooled(ref_feats), pooled(feats), seed))
    for key in ("msssim", "classifier_score"):
        if key in names:
            overall[key] = float(np.mean([per_class[n][key] for n in dataset.classes]))
    return {"per_class": per_class, "overall": overall}


def feature_spaces(cfg: Config, names: list[str], image_shape: tuple[int, ...]) -> dict[str, str]:
    """Value key -> the space it was measured in."""
    out = {}
    if "fid" in names or "kid" in names:
        from raygan.metrics.inception import feature_space
        space = feature_space(cfg.eval.inception_weights)
        out.update({k: space for k in ("fid", "kid") if k in names})
    if "domain_fd" in names:
        out["domain_fd"] = DOMAIN_SPACE
    if "prdc" in names:
        out.update({k: DOMAIN_SPACE for k in PRDC_KEYS})
    if "msssim" in names:
        from raygan.metrics.diversity import msssim_settings
        out["msssim"] = msssim_settings(image_shape[1], image_shape[2]).describe()
    if "classifier_score" in names:
        out["classifier_score"] = "domain classifier's predicted class (SimpleCNN, real training split)"
    return out


SetImages = dict[str, torch.Tensor]  # class name -> images (N, C, H, W) in [-1, 1]


def quality_header(cfg: Config, dataset: RealDataset) -> dict:
    """What every quality result holds besides its sets; checks eval.metrics and the test split first."""
    names = validate_metrics(cfg)
    if dataset.kind != "image":
        raise ConfigError(f"eval.metrics need images; {dataset.name} holds {dataset.kind}")
    cap = cfg.eval.metric_samples
    reference = real_split(dataset, "test", cap)
    small = {n: len(x) for n, x in reference.items() if len(x) < 2}
    if small:
        raise ConfigError(f"the real test split has fewer than 2 images for class(es) {small}; raise "
                          "data.test_fraction")
    return {"metrics": names, "metric_samples": cap,
            "reference": "the real test split per class, never the training images the generators "
                         "were fitted on",
            "reference_sizes": {n: int(len(x)) for n, x in reference.items()},
            "feature_spaces": feature_spaces(cfg, names, dataset.sample_shape),
            "direction": dict(DIRECTION),
            "notes": "domain_fd and prdc live in a classifier trained on this run's real data: they "
                     "are not comparable with Inception FID/KID or across datasets.",
            "sets": {}}


def real_baseline_set(cfg: Config, dataset: RealDataset) -> Optional[SetImages]:
    """The "real (val)" set (the floor of each metric), None when the validation split is too small."""
    if not len(dataset.val[1]):
        return None
    val = real_split(dataset, "val", cfg.eval.metric_samples)
    return val if all(len(x) >= 2 for x in val.values()) else None


def pca_set(cfg: Config, dataset: RealDataset) -> tuple[SetImages, dict]:
    """Seed 003's PCA baseline as a set (images per class) and what the report says about it."""
    return _pca_set(cfg, dataset)


class QualityContext:
    """The feature extractors and the reference's features, made once and shared by every set."""

    def __init__(self, cfg: Config, dataset: RealDataset, *, run_dir=None, device: str = "cpu"):
        self.names = [n for n in validate_metrics(cfg) if n != "pca"]
        self.spaces = _Spaces(cfg, dataset, self.names, run_dir, device)
        reference = real_split(dataset, "test", cfg.eval.metric_samples)
        self.ref_feats = {n: self.spaces.features(x) for n, x in reference.items()}

    def on(self, device: str) -> "QualityContext":
        """The same context with its models moved to ``device`` (a Ray task's own device)."""
        for model in (self.spaces.domain, self.spaces.inception):
            if model is not None:
                model.to(device)
        self.spaces.device = device
        return self


def score_set(cfg: Config, dataset: RealDataset, context: QualityContext, label: str,
              images: SetImages) -> dict:
    """Every metric of one set {class name: images}, each class capped at eval.metric_samples."""
    cap = cfg.eval.metric_samples
    images = {n: x[:cap] for n, x in images.items()}
    missing = [n for n in dataset.classes if n not in images]
    if missing:
        raise ValueError(f"set {label!r} has no samples for class(es) {missing}")
    scores = _score_set(context.names, context.spaces, dataset, images, context.ref_feats, cfg.eval.seed)
    logger.info(f"quality {label}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores["overall"].items()
                                                 if k != "n"))
    return scores


def compute_quality(cfg: Config, dataset: RealDataset,
                    sets: dict[str, SetImages | Callable[[], SetImages]], *,
                    run_dir: Optional[str | Path] = None, device: str = "cpu",
                    real_baseline: bool = True) -> dict:
    """Every metric in cfg.eval.metrics for every set {label: {class name: images}} (see module doc).

    A set may be given as a zero-argument function returning its images: it is then drawn when its
    turn comes and dropped after, so large image sets do not all sit in memory together.

    Returns a JSON-able dict: ``sets[label]["per_class"][class]`` and ``sets[label]["overall"]`` hold the
    values; ``feature_spaces`` names the space of every value key; ``reference`` says what they are
    measured against.
    """
    result = quality_header(cfg, dataset)
    sets = dict(sets)
    if "pca" in result["metrics"] and "pca" not in sets:
        sets["pca"], result["pca"] = _pca_set(cfg, dataset)
    val = real_baseline_set(cfg, dataset) if real_baseline else None
    if val is not None:
        sets = {REAL_SET: val, **sets}
    context = QualityContext(cfg, dataset, run_dir=run_dir, device=device)
    for label, per_class in sets.items():
        if callable(per_class):  # a lazy set is drawn only now, so one set is in memory at a time
            per_class = per_class()
        result["sets"][label] = score_set(cfg, dataset, context, label, per_class)
    return result


__all__ = ["compute_quality", "quality_header", "QualityContext", "score_set", "real_baseline_set",
           "pca_set", "validate_metrics", "classifier_score", "samples_per_class",
           "real_split", "feature_spaces", "ALLOWED", "REAL_SET"]
