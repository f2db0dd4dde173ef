"""Seed 003's PCA baseline trains its TSTR classifier on as many samples per class as the GANs' sets
(ensemble.counts.synthetic_count): with ensemble.samples_ratio set, ratio x N, not N."""
from __future__ import annotations

from raygan.data import load_dataset
from raygan.ensemble.counts import synthetic_count
from raygan.evaluation import units


class _Fit:
    def to_dict(self) -> dict:
        return {}


def test_the_pca_baseline_draws_n_g_per_class_as_the_gans_do(tiny_digits_cfg, monkeypatch):
    cfg = tiny_digits_cfg("data.classes={a: [0], b: [1]}", "ensemble.samples_ratio=1.5",
                          "eval.metrics=[pca]")
    dataset = load_dataset(cfg.data)
    seen = {}

    def fit(cfg, dataset, train, seed, **kwargs):  # the classifier's training set, not its training
        x, y = train
        seen.update({name: int((y == k).sum()) for k, name in enumerate(dataset.classes)})
        return _Fit()

    monkeypatch.setattr(units, "fit_classifier", fit)
    units.run_unit(units.EvalInputs(cfg, dataset, None, None), units.Job("pca_tstr"))
    want = {name: synthetic_count(cfg, n) for name, n in dataset.train_sizes().items()}
    assert want != dataset.train_sizes()  # the ratio changes N_g, so the test can tell the two apart
    assert seen == want
