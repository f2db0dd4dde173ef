import numpy as np
import pytest
import torch

from raygan.classifiers.fit import train_classifier
from raygan.config import load_config
from raygan.data import load_dataset
from raygan.evaluation.protocols import ProtocolResult, filter_by_classifier, mix_real_synthetic, repeat, trts


@pytest.fixture(scope="module")
def digits():
    return load_dataset(load_config().data)


def _fit(ds, train, seed=0, epochs=6, **kw):
    return train_classifier(*train, val=ds.val, test=ds.test, n_classes=10, epochs=epochs,
                            seed=seed, **kw)


def test_trtr_on_digits_learns_and_picks_the_epoch_on_validation(digits):
    run = _fit(digits, digits.train_split())
    assert run.test_acc > 0.9
    assert len(run.history) == 6
    best = max(run.history, key=lambda r: r["val_acc"])
    assert run.best_val_epoch == best["epoch"] and run.test_acc == best["test_acc"]
    assert run.best_test_acc == max(r["test_acc"] for r in run.history) >= run.test_acc
    cm = np.array(run.confusion)
    assert cm.shape == (10, 10) and cm.sum() == len(digits.test[1])
    assert np.trace(cm) / cm.sum() == pytest.approx(run.test_acc)


def test_same_seed_same_classifier(digits):
    a = _fit(digits, digits.train_split(), seed=3, epochs=2)
    b = _fit(digits, digits.train_split(), seed=3, epochs=2)
    assert a.history == b.history


def test_repeats_give_mean_and_std(digits):
    result = repeat("TRTR", lambda s: _fit(digits, digits.train_split(), seed=s, epochs=2), 3, seed=0)
    summary = result.summary()
    accs = [r.test_acc for r in result.runs]
    assert summary["repeats"] == 3
    assert summary["test_acc_mean"] == pytest.approx(np.mean(accs))
    assert summary["test_acc_std"] == pytest.approx(np.std(accs))
    assert ProtocolResult("empty").summary()["repeats"] == 0


def test_mixing_ratio_adds_ratio_times_real_per_class():
    real = (torch.zeros(30, 1, 8, 8), torch.tensor([0] * 10 + [1] * 20))
    syn = (torch.ones(100, 1, 8, 8), torch.tensor([0] * 50 + [1] * 50))
    x, y = mix_real_synthetic(real, syn, 0.0, seed=0)
    assert len(y) == 30 and x.sum() == 0
    x, y = mix_real_synthetic(real, syn, 2.0, seed=0)
    assert (y == 0).sum() == 10 + 20 and (y == 1).sum() == 20 + 40
    assert x.flatten(1).mean(1).sum() == 60  # 60 synthetic images of ones
    x, y = mix_real_synthetic(real, syn, {0: 1.0, 1: 0.0}, seed=0)  # per class (seed 003)
    assert (y == 0).sum() == 20 and (y == 1).sum() == 20


def test_filtering_and_trts_use_a_real_trained_classifier(digits):
    model = _fit(digits, digits.train_split(), epochs=4).model
    x, y = digits.test
    wrong = (y + 1) % 10
    assert trts(model, (x, y)) > 0.9
    assert trts(model, (x, wrong)) < 0.1
    keep = filter_by_classifier(model, x, y, rho=0.9)
    assert 0.1 < keep.float().mean() < 1.0
    assert filter_by_classifier(model, x, y, rho=0.5).sum() > keep.sum()  # a lower bar keeps more
    assert filter_by_classifier(model, x, wrong, rho=0.0).float().mean() < 0.1
    assert filter_by_classifier(model, x, y, rho=0.0).sum() >= keep.sum()


def test_ensemble_sizes_pick_the_curve_points_and_are_checked(digits):
    from raygan.config import ConfigError
    from raygan.evaluation.units import curve_sizes, evaluation_jobs

    every = load_config(overrides=["ensemble.members=4", "eval.repeats=2"])
    some = load_config(overrides=["ensemble.members=4", "eval.repeats=2", "eval.ensemble_sizes=[4, 2]"])
    assert curve_sizes(every) == [1, 2, 3, 4] and curve_sizes(some) == [2, 4]
    tstr = sorted({(j.index, j.repeat) for j in evaluation_jobs(some, digits) if j.kind == "tstr"})
    assert tstr == [(2, 0), (2, 1), (4, 0), (4, 1)]
    for bad in ("[5]", "[0]", "[2, 2]"):
        with pytest.raises(ConfigError, match="eval.ensemble_sizes"):
            load_config(overrides=["ensemble.members=4", f"eval.ensemble_sizes={bad}"])


def test_summary_reports_the_validation_accuracy_choices_are_made_on():
    from raygan.classifiers.fit import ClassifierRun

    runs = [ClassifierRun(history=[], best_val_epoch=1, val_acc=v, test_acc=0.5, best_test_acc=0.5,
                          confusion=[]) for v in (0.8, 0.9)]
    s = ProtocolResult("TSTR", runs).summary()
    assert s["val_acc_mean"] == pytest.approx(0.85) and s["val_acc_std"] == pytest.approx(0.05)
