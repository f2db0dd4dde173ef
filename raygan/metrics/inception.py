"""FID and KID in the standard Inception-v3 feature space, from an explicit local weights file.

The feature extractor is torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF-compatible port
that torchmetrics' FID/KID wrap as well), given the path of the standard FID weights
(``weights-inception-2015-12-05-6726825d.pth``). KID is torch-fidelity's ``kid_features_to_metric``;
FID is its ``fid_statistics_to_metric``, or, for sets smaller than 2048, the same number from
raygan.metrics.frechet's exact small-sample form. Nothing is ever downloaded: a missing weights file
is a ConfigError before any work. Features are extracted once per image set and shared
by FID and KID (seed 000 and seed 004 Table 1 report FID; KID is Binkowski et al.'s unbiased MMD).

Images are raygan's [-1, 1] floats (N, C, H, W) with 1 or 3 channels at any size; they become uint8
RGB and the extractor resizes them to 299 px itself, as the standard FID does.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import torch

from raygan.config import ConfigError
from raygan.metrics.frechet import frechet_distance

FEATURE_LAYER = "2048"  # the pool3 features of the standard FID / KID
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")

_EXTRACTORS: dict = {}  # (resolved path, mtime, device) -> extractor: one load per process


def check_weights(path: Optional[str | Path]) -> Path:
    """The weights path, or a ConfigError saying which file is needed and where to get it."""
    how = (f"download {WEIGHTS_URL} once (e.g. `curl -L -o {WEIGHTS_FILE} <url>`) on a machine with "
           f"network access and set eval.inception_weights=/path/to/{WEIGHTS_FILE}; raygan never "
           "downloads it")
    if path is None:
        raise ConfigError(f"eval.metrics asks for fid/kid, which need the standard Inception weights, "
                          f"but eval.inception_weights is not set: {how}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"eval.inception_weights={str(path)!r} does not exist: {how}")
    return path


def feature_space(path: str | Path) -> str:
    """How results in this space are labelled: the network and the weights file it ran with."""
    return f"inception-v3 (weights: {Path(path).name})"


def _extractor(state: dict) -> torch.nn.Module:
    """torch-fidelity's extractor holding ``state``, a state dict raygan read with weights_only=True:
    torch-fidelity itself would unpickle the file in full (its loader does not restrict it to tensors),
    and so run any pickle given as weights. It reads an empty state dict that raygan writes in memory instead, and
    the model takes ``state`` in its place."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Safe(FeatureExtractorInceptionV3):
        def load_state_dict(self, _empty, *args, **kwargs):
            return super().load_state_dict(state, *args, **kwargs)

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    return _Safe("inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=empty)


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """torch-fidelity's Inception-v3 feature extractor with the given local weights (eval mode)."""
    path = check_weights(path).resolve()
    key = (str(path), path.stat().st_mtime_ns, str(device))
    if key not in _EXTRACTORS:
        from raygan.gan.checkpoints import load_torch_file

        fix = f"use the standard weights file, {WEIGHTS_URL}"
        state = load_torch_file(path, fix=f"eval.inception_weights must be a plain state dict; {fix}")
        try:
            model = _extractor(state)
        except (RuntimeError, KeyError) as err:
            raise ConfigError(f"eval.inception_weights={str(path)!r} is not a torch-fidelity Inception "
                              f"state dict ({type(err).__name__}: {str(err)[:200]}); {fix}") from err
        _EXTRACTORS.clear()  # one extractor at a time: it holds ~100 MB
        _EXTRACTORS[key] = model.to(device).eval()
    return _EXTRACTORS[key]


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats (N, 1|3, H, W) -> uint8 (N, 3, H, W), grey replicated to RGB."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1 or 3, H, W), got shape {tuple(images.shape)}")
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def inception_features(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 64,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """(N, 2048) pool3 features (float64, CPU) of [-1, 1] images."""
    out = []
    for i in range(0, len(images), batch_size):
        batch = to_uint8_rgb(images[i:i + batch_size]).to(device)
        out.append(model(batch)[0].to("cpu", torch.float64))
    return torch.cat(out) if out else torch.empty(0, 2048, dtype=torch.float64)


def fid_from_features(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet Inception Distance between two feature sets.

    torch-fidelity's formula (eigenvalues of the 2048 x 2048 covariance product) when both sets have
    more samples than dimensions; for smaller sets (per-class FIDs) the exact sample-space form of
    raygan.metrics.frechet, which gives the same number (tested) in a fraction of the time.
    """
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    if len(features_a) < 2 or len(features_b) < 2:
        raise ValueError("FID needs at least two samples per set")
    if min(len(features_a), len(features_b)) <= features_a.shape[1]:
        return frechet_distance(features_a, features_b)
    stats = [fid_features_to_statistics(f.to(torch.float64).cpu()) for f in (features_a, features_b)]
    return float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])


def kid_from_features(features_a: torch.Tensor, features_b: torch.Tensor, *, subsets: int = 100,
                      subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (mean, std over random subsets); the subset size is capped at the
    smaller set, as torch-fidelity refuses subsets larger than a set."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    size = min(subset_size, len(features_a), len(features_b))
    if size < 2:
        raise ValueError("KID needs at least two samples per set")
    out = kid_features_to_metric(features_a.to(torch.float64).cpu(), features_b.to(torch.float64).cpu(),
                                 kid_subsets=subsets, kid_subset_size=size, verbose=False,
                                 rng_seed=seed, kid_kernel="poly", kid_kernel_poly_degree=3,
                                 kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
    return (float(out["kernel_inception_distance_mean"]), float(out["kernel_inception_distance_std"]))


def write_untrained_weights(path: str | Path, *, seed: int = 0) -> Path:
    """A randomly initialised Inception-v3 in the weights file's format, for tests and offline smoke
    runs only: the architecture and pipeline are the real ones, the numbers mean nothing.

    Convolutions get He-normal weights so that activations keep their scale through the ~40 layers
    (PyTorch's default init shrinks them to ~1e-8 by pool3); batch-norm stays the identity.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Untrained(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):  # keep the fresh initialisation
            return None

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    empty = path.with_name(path.name + ".empty")
    torch.save({}, empty)
    torch.manual_seed(seed)
    try:
        model = _Untrained("inception-v3-compat", [FEATURE_LAYER],
                           feature_extractor_weights_path=str(empty))
    finally:
        empty.unlink()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()},
               path)
    return path


__all__ = ["check_weights", "feature_space", "load_inception", "to_uint8_rgb", "inception_features",
           "fid_from_features", "kid_from_features", "write_untrained_weights", "WEIGHTS_URL",
           "WEIGHTS_FILE"]
