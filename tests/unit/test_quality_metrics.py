"""Sample-quality metrics: Inception FID/KID from a local weights file, domain FD, PRDC, MS-SSIM
diversity, the classifier score, compute_quality and its place in evaluate_run and the report."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from raygan.config import ConfigError, load_config
from raygan.data import load_dataset
from raygan.metrics import inception
from raygan.metrics.diversity import intra_class_msssim, msssim_settings, pairwise_msssim
from raygan.metrics.domain import embed, train_domain_classifier
from raygan.metrics.frechet import frechet_distance, frechet_from_stats, gaussian_stats
from raygan.metrics.prdc import kth_neighbour_radii, prdc
from raygan.metrics.quality import ALLOWED, REAL_SET, classifier_score, compute_quality, validate_metrics


@pytest.fixture(scope="module")
def digits():
    return load_dataset(load_config().data)


@pytest.fixture(scope="module")
def domain_dir(tmp_path_factory, digits):
    """A folder whose eval/domain_classifier.pt caches the digits domain classifier for this module."""
    folder = tmp_path_factory.mktemp("domain")
    train_domain_classifier(digits, cache=folder / "eval" / "domain_classifier.pt")
    return folder


@pytest.fixture(scope="module")
def domain_model(digits, domain_dir):
    return train_domain_classifier(digits, cache=domain_dir / "eval" / "domain_classifier.pt")


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory):
    """The real Inception-v3 architecture with random weights, in the weights file's format."""
    return inception.write_untrained_weights(tmp_path_factory.mktemp("inception") / "fake_inception.pth")


def _noise(n, shape, seed):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# --- Inception: local weights only ----------------------------------------------------------------
def test_inception_weights_missing_or_unset_is_a_config_error_naming_the_file_and_url(tmp_path):
    with pytest.raises(ConfigError, match="eval.inception_weights is not set") as err:
        inception.check_weights(None)
    assert inception.WEIGHTS_URL in str(err.value) and "weights-inception-2015-12-05" in str(err.value)
    with pytest.raises(ConfigError, match="does not exist") as err:
        inception.check_weights(tmp_path / "nope.pth")
    assert "nope.pth" in str(err.value) and inception.WEIGHTS_URL in str(err.value)
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3)}, bad)
    with pytest.raises(ConfigError, match="not a torch-fidelity Inception state dict"):
        inception.load_inception(bad)


def test_fid_or_kid_without_weights_fails_before_any_work(digits):
    cfg = load_config(overrides=["eval.metrics=[domain_fd, kid]"])

    def never():
        raise AssertionError("a set was drawn before the config was checked")
    with pytest.raises(ConfigError, match="inception_weights"):
        compute_quality(cfg, digits, {"T=1": never})
    from raygan.evaluation.curves import evaluate_run
    with pytest.raises(ConfigError, match="inception_weights"):
        evaluate_run(cfg, digits, run=None)  # raises before TRTR trains or the run is touched


def test_unknown_metric_names_list_the_allowed_ones():
    cfg = load_config(overrides=["eval.metrics=[fid_domain, msssim]"])
    with pytest.raises(ConfigError, match="unknown metric.*fid_domain") as err:
        validate_metrics(cfg)
    assert all(name in str(err.value) for name in ALLOWED)
    assert validate_metrics(load_config(overrides=["eval.metrics=[msssim, pca]"])) == ["msssim", "pca"]


def test_to_uint8_rgb_maps_the_range_and_replicates_grey():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 2, 2)
    out = inception.to_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 2, 2)
    assert out[0, :, 0, 0].tolist() == [0, 0, 0] and out[0, 2, 1, 1] == 255 and out[0, 1, 0, 1] == 128
    rgb = inception.to_uint8_rgb(_noise(2, (3, 5, 7), 0))
    assert rgb.shape == (2, 3, 5, 7) and not torch.equal(rgb[:, 0], rgb[:, 1])


# --- Frechet distance -----------------------------------------------------------------------------
def test_frechet_distance_closed_form_and_torch_fidelity_agreement():
    d = 6
    zero, eye = np.zeros(d), np.eye(d)
    assert frechet_from_stats(zero, eye, np.ones(d), eye) == pytest.approx(d)         # |mu|^2
    assert frechet_from_stats(zero, eye, zero, 4 * eye) == pytest.approx(d)           # d(1 + 4 - 2*2)
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    rng = np.random.default_rng(0)
    for n_a, n_b, dim in ((30, 40, 64), (300, 200, 16)):  # fewer samples than dims, and more
        a = np.maximum(rng.normal(size=(n_a, dim)), 0)
        b = np.maximum(rng.normal(size=(n_b, dim)) + 0.3, 0)
        ref = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(a)),
                                       fid_features_to_statistics(torch.from_numpy(b)), False)
        assert frechet_distance(a, b) == pytest.approx(ref["frechet_inception_distance"], rel=1e-6)
        assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    mu, cov = gaussian_stats(a)
    assert mu.shape == (16,) and cov.shape == (16, 16)


def test_domain_fd_ranks_degraded_images_behind_clean_held_out_ones(digits, domain_model):
    """Reference: the real test split; clean: the real validation split; degraded: the same
    validation images with pixel noise or a 3x3 blur."""
    ref = embed(domain_model, digits.test[0])
    clean_x = digits.val[0]
    noisy_x = (clean_x + 0.6 * torch.randn(clean_x.shape, generator=torch.Generator().manual_seed(0))
               ).clamp(-1, 1)
    blurred_x = torch.nn.functional.avg_pool2d(clean_x, 3, stride=1, padding=1, count_include_pad=False)
    clean, noisy, blurred = (frechet_distance(ref, embed(domain_model, x))
                             for x in (clean_x, noisy_x, blurred_x))
    assert clean < 0.5 * noisy and clean < 0.5 * blurred, (clean, noisy, blurred)


# --- PRDC -----------------------------------------------------------------------------------------
def _gauss(n, d, seed, shift=0.0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def test_prdc_identical_distributions_score_near_one():
    out = prdc(_gauss(800, 4, 0), _gauss(800, 4, 1), chunk_size=300)
    assert out["precision"] > 0.85 and out["recall"] > 0.85 and out["coverage"] > 0.9
    assert 0.85 < out["density"] < 1.15 and out["k"] == 5
    same = prdc(_gauss(200, 4, 0), _gauss(200, 4, 0))
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0


def test_prdc_mode_dropping_lowers_recall_and_coverage_shift_lowers_precision():
    real = torch.cat([_gauss(400, 4, 0), _gauss(400, 4, 1, shift=8.0)])     # two modes
    dropped = _gauss(800, 4, 2)                                             # only the first mode
    out = prdc(real, dropped, chunk_size=256)
    assert out["recall"] < 0.6 and out["coverage"] < 0.6 and out["precision"] > 0.85
    shifted = prdc(_gauss(800, 4, 0), _gauss(800, 4, 3, shift=3.0))
    assert shifted["precision"] < 0.2 and shifted["density"] < 0.2


def test_prdc_chunking_does_not_change_results_and_radii_match_sklearn():
    real, fake = _gauss(300, 3, 4), _gauss(250, 3, 5, shift=0.5)
    assert prdc(real, fake, chunk_size=37) == prdc(real, fake, chunk_size=4096)
    from sklearn.neighbors import NearestNeighbors
    dist, _ = NearestNeighbors(n_neighbors=6).fit(real.numpy()).kneighbors(real.numpy())
    assert np.allclose(kth_neighbour_radii(real, 5, chunk_size=64).numpy(), dist[:, 5], atol=1e-5)


# --- MS-SSIM diversity ----------------------------------------------------------------------------
def test_msssim_scales_fit_small_images():
    assert (msssim_settings(8, 8).scales, msssim_settings(8, 8).kernel_size) == (2, 3)
    assert (msssim_settings(28, 28).scales, msssim_settings(28, 28).kernel_size) == (3, 7)
    assert (msssim_settings(32, 32).scales, msssim_settings(32, 32).kernel_size) == (3, 7)
    assert (msssim_settings(256, 256).scales, msssim_settings(256, 256).kernel_size) == (5, 11)
    for size in (8, 28, 32):
        x = _noise(3, (3, size, size), size)
        assert torch.allclose(pairwise_msssim(x, x), torch.ones(3), atol=1e-5)
        assert (pairwise_msssim(x, x.roll(1, 0)) < 0.5).all()


def test_msssim_diversity_is_higher_for_duplicates_than_for_distinct_images(digits):
    zeros = digits.train["0"]
    distinct = intra_class_msssim(zeros, seed=0)
    duplicated = intra_class_msssim(zeros[:2].repeat_interleave(40, 0), seed=0)  # 2 images x 40
    assert distinct["pairs"] == 200 and 0.2 < distinct["msssim"] < 0.9
    assert duplicated["msssim"] > distinct["msssim"] + 0.1  # about half its pairs are identical
    assert intra_class_msssim(zeros[:1].repeat(10, 1, 1, 1))["msssim"] == pytest.approx(1.0)
    mixed = intra_class_msssim(torch.cat([digits.train[c][:20] for c in digits.classes]), seed=0)
    assert mixed["msssim"] < distinct["msssim"]  # ten digits are more diverse than one


def test_classifier_score_is_high_on_real_class_images_and_low_on_noise(digits, domain_model):
    x, y = digits.test
    assert classifier_score(domain_model, x[y == 3], 3) > 0.85
    assert classifier_score(domain_model, _noise(100, (1, 8, 8), 2), 3) < 0.5


# --- compute_quality ------------------------------------------------------------------------------
def test_compute_quality_scores_sets_per_class_and_overall_with_feature_spaces(digits, domain_dir):
    cfg = load_config(overrides=["eval.metrics=[domain_fd, prdc, msssim, classifier_score, pca]"])
    noise = {n: _noise(30, (1, 8, 8), k) for k, n in enumerate(digits.classes)}
    q = compute_quality(cfg, digits, {"noise": lambda: noise}, run_dir=domain_dir)
    json.dumps(q)  # JSON-able
    assert list(q["sets"]) == [REAL_SET, "noise", "pca"]
    assert q["feature_spaces"]["domain_fd"].startswith("domain: SimpleCNN")
    assert q["feature_spaces"]["msssim"].startswith("MS-SSIM on pixels (2 scales")
    assert "test split" in q["reference"] and sum(q["reference_sizes"].values()) == len(digits.test[1])
    real, noisy, pca = (q["sets"][s]["overall"] for s in (REAL_SET, "noise", "pca"))
    assert real["domain_fd"] < pca["domain_fd"] < noisy["domain_fd"]
    assert real["classifier_score"] > 0.9 and pca["classifier_score"] > 0.8
    assert noisy["classifier_score"] < 0.5 and noisy["coverage"] < real["coverage"]
    for s in q["sets"].values():
        assert set(s["per_class"]) == set(digits.classes)
        assert {"domain_fd", "precision", "recall", "density", "coverage", "msssim",
                "classifier_score"} <= set(s["per_class"]["7"])
    assert q["sets"]["noise"]["per_class"]["0"]["n"] == 30
    assert q["sets"]["pca"]["per_class"]["0"]["n"] == digits.train_sizes()["0"]
    assert set(q["pca"]["components"]) == set(digits.classes)


def test_inception_fid_kid_near_zero_for_a_copy_of_the_reference_large_for_noise(fake_weights):
    """The real Inception-v3 architecture with random weights (nothing downloaded) through
    compute_quality: a copy of the reference set scores ~0, uniform noise far more."""
    cfg = load_config(overrides=["data.grouping=II", "eval.metrics=[fid, kid]", "eval.metric_samples=4",
                                 f"eval.inception_weights={fake_weights}"])
    ds = load_dataset(cfg.data)
    x, y = ds.test
    copy = {n: x[y == k][:4] for k, n in enumerate(ds.classes)}           # 8x8 grey digits
    noise = {n: _noise(9, (1, 8, 8), k) for k, n in enumerate(ds.classes)}
    q = compute_quality(cfg, ds, {"copy": copy, "noise": noise}, real_baseline=False)
    assert q["feature_spaces"] == {"fid": "inception-v3 (weights: fake_inception.pth)",
                                   "kid": "inception-v3 (weights: fake_inception.pth)"}
    same, noisy = q["sets"]["copy"], q["sets"]["noise"]
    assert noisy["per_class"][ds.classes[0]]["n"] == 4 and noisy["overall"]["n"] == 8
    assert noisy["overall"]["fid"] > 1.0 and same["overall"]["fid"] < 1e-6 * noisy["overall"]["fid"]
    assert noisy["overall"]["kid"] > 0.01 and abs(same["overall"]["kid"]) < 0.1 * noisy["overall"]["kid"]
    for c in ds.classes:
        assert same["per_class"][c]["fid"] < 1e-6 * noisy["per_class"][c]["fid"]


# --- evaluate_run and the report ------------------------------------------------------------------
def test_evaluate_run_stores_quality_per_T_and_the_report_shows_it(tiny_digits_cfg):
    from raygan.ensemble.training import train_independent
    from raygan.evaluation.curves import evaluate_run
    from raygan.reporting.report import write_report
    from raygan.runs import RunFolder

    cfg = tiny_digits_cfg("data.grouping=II", "eval.repeats=1", "eval.epochs=2",
                          "eval.metrics=[domain_fd, prdc, msssim, classifier_score, pca]",
                          "eval.metric_samples=60")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    run.write_config(cfg)
    train_independent(cfg, ds, run)
    from raygan.synthesis.shards import mixture_weights, write_shards
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))  # the evaluation measures the shards
    evaluate_run(cfg, ds, run)
    ev = json.loads((run.path / "eval" / "evaluation.json").read_text())
    q = ev["quality"]
    assert list(q["sets"]) == [REAL_SET, "T=1", "T=2", "pca"]
    for label in ("T=1", "T=2", "pca"):
        assert set(q["sets"][label]["per_class"]) == set(ds.classes)
        assert q["sets"][label]["overall"]["n"] == 120 and "domain_fd" in q["sets"][label]["overall"]
    # 20 steps of GAN training make blobs: the real validation split is far closer to the test split
    assert q["sets"][REAL_SET]["overall"]["domain_fd"] < q["sets"]["T=1"]["overall"]["domain_fd"]
    assert ev["pca_tstr"]["test_acc_mean"] > 0.7  # two classes: chance is 0.5
    assert (run.path / "eval" / "domain_classifier.pt").exists()
    report = write_report(run.path).read_text()
    assert "## Sample quality" in report and "| T=2 |" in report and "domain FD per class" in report
    assert "not comparable with Inception FID" in report and "PCA baseline (seed 003)" in report
