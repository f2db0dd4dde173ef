"""sweep.repeats: a classifier-sweep trial trains its repeats as one pack and reports their mean every
epoch (issue 28); without Ray, through the trial function Tune runs."""
import pytest

from raygan.classifiers.fit import train_classifier
from raygan.config import load_config
from raygan.data import load_dataset
from raygan.sweeps.cells import TrialData
from raygan.sweeps.classifier import run_trial


@pytest.mark.parametrize("arch", ["simplecnn", "mlp"])
def test_a_trial_of_three_repeats_reports_the_mean_of_the_three_classifiers_alone(arch):
    cfg = load_config(overrides=["data.name=digits", "data.grouping=II", "sweep.repeats=3"])
    dataset = load_dataset(cfg.data)
    real = dataset.train_split()
    config = {"arch": arch, "epochs": 2, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "seed": 6}
    reports = []
    run_trial(config, cfg, dataset, None, {}, device="cpu", report=reports.append, context={"node_id": "here"},
              data=TrialData(train=real, augment="none", source="real"))
    alone = [train_classifier(*real, val=dataset.val, test=dataset.test, n_classes=2, arch=arch, epochs=2,
                              seed=s) for s in (6, 7, 8)]  # the trial's seeds: its own and the next two
    assert [r["epoch"] for r in reports] == [1, 2] and all(r["repeats"] == 3 for r in reports)
    for epoch, r in enumerate(reports):
        vals = [a.history[epoch]["val_acc"] for a in alone]
        # packed classifiers are their solo runs up to float rounding: a rounding flip moves one image
        assert r["val_acc"] == pytest.approx(sum(vals) / 3, abs=1.5 / len(dataset.val[1]))
        assert r["val_acc_sd"] > 0 and r["node_id"] == "here" and r["train_size"] == len(real[1])
    assert reports[-1]["best_val_acc"] == max(r["val_acc"] for r in reports)


def test_repeats_with_a_torchtrainer_trial_are_refused_when_the_config_loads():
    from raygan.config import ConfigError

    with pytest.raises(ConfigError, match="sweep.trainer_min_rows=100 with sweep.repeats=2.*set sweep.repeats=1"):
        load_config(overrides=["data.name=digits", "sweep.repeats=2", "sweep.trainer_min_rows=100"])
