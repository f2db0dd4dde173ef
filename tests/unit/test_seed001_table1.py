"""Seed 001's Table 1 as a sweep: the protocol cells checked at load, their data, and the table."""
import json
from pathlib import Path

import pytest
import torch

from raygan.config import ConfigError, load_config
from raygan.config.protocol_cells import protocol_cells, signature
from raygan.evaluation.protocols import FilteredEpochs
from raygan.reporting.seed001 import PAPER_TABLE1, format_table1, table1_cells, write_table1
from raygan.sweeps.cells import CellSet, set_key, trial_data

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TSTR = ["sweep.synthetic_only=true"]


def _cfg(*overrides):
    return load_config(overrides=[*TSTR, *overrides])


def test_no_cells_leaves_the_sweep_as_it_was():
    cfg = load_config()
    assert cfg.sweep.protocols == [] and protocol_cells(cfg) == []


def test_a_cell_is_completed_and_named():
    cfg = _cfg("sweep.protocols=[{}, {on_the_fly: true, augment: flip_crop, filter_rho: 0.9, truncation: 1.5},"
               " {name: mine, filter_rho: 1}]")
    cells = protocol_cells(cfg)
    assert cells[0] == {"name": "fixed", "on_the_fly": False, "augment": "none", "filter_rho": None,
                        "truncation": None}
    assert cells[1]["name"] == "otf+flip_crop+rho0.9+tau1.5" and signature(cells[1]) == (True,) * 4
    assert cells[2]["name"] == "mine" and cells[2]["filter_rho"] == 1.0


@pytest.mark.parametrize("cells, message", [
    ("[{filter: 0.9}]", r"sweep.protocols\[0\]: unknown key 'filter'; known keys: name, on_the_fly"),
    ("[{}, {filter_rho: 1.5}]", r"sweep.protocols\[1\].filter_rho: 1.5 is not allowed"),
    ("[{filter_rho: 0}]", r"sweep.protocols\[0\].filter_rho: 0 is not allowed"),
    ("[{truncation: -1}]", r"sweep.protocols\[0\].truncation: -1 is not allowed"),
    ("[{augment: jitter}]", r"sweep.protocols\[0\].augment: 'jitter' is not allowed; choose one of: none"),
    ("[{on_the_fly: 1}]", r"sweep.protocols\[0\].on_the_fly: 1 is not allowed"),
    ("[fixed]", r"sweep.protocols\[0\] = 'fixed' is not allowed; every item must be a mapping"),
    ("[{name: a/b}]", r"sweep.protocols\[0\].name: 'a/b' is not allowed"),
    ("[{}, {augment: none}]", r"names the cell\(s\) \['fixed'\] twice"),
])
def test_a_bad_cell_is_one_line_naming_it(cells, message):
    with pytest.raises(ConfigError, match=message) as err:
        _cfg(f"sweep.protocols={cells}")
    assert "\n" not in str(err.value)


def test_cells_need_a_tstr_classifier_sweep_on_images():
    with pytest.raises(ConfigError, match="sweep.synthetic_only is false; set sweep.synthetic_only: true"):
        load_config(overrides=["sweep.protocols=[{}]"])
    with pytest.raises(ConfigError, match="sweep.target=gan"):
        _cfg("sweep.protocols=[{}]", "sweep.target=gan")
    with pytest.raises(ConfigError, match="augment applies to images"):
        _cfg("sweep.protocols=[{augment: flip_crop}]", "data.name=grid2d", "gan.family=mlp2d", "gan.z_dim=2")


def test_the_preset_holds_the_papers_twelve_cells():
    cfg = load_config(CONFIGS / "digits_table1.yaml")
    cells = protocol_cells(cfg)
    assert [signature(c) for c in cells] == list(PAPER_TABLE1)  # the table's columns, in its order
    assert {c["augment"] for c in cells} == {"none", "flip_crop"}
    assert {c["filter_rho"] for c in cells} == {None, 0.9} and {c["truncation"] for c in cells} == {None, 1.5}
    assert cfg.sweep.members == [1] and cfg.sweep.grace_period == max(cfg.sweep.epochs)  # ASHA stops none
    table3 = load_config(CONFIGS / "digits_table1.yaml", preset="table3")
    assert table3.sweep.members == [1, 2, 3, 4, 5] and table3.ensemble.members == 5
    assert [signature(c) for c in protocol_cells(table3)] == [(True, True, True, False)]


def _trial(cell, seed, test, *, status="TERMINATED", lr=0.001, source="shards", kept=None):
    row = {"config": {"protocol": cell, "seed": seed, "lr": lr, "T": 1, "synthetic_only": True},
           "status": status, "test_acc_at_best_val": test if status == "TERMINATED" else None,
           "best_test_acc": test + 0.01, "best_val_acc": test + 0.02, "train_source": source,
           "epochs_run": 3}
    if kept is not None:
        row["kept_fraction"] = kept
    return row


def test_the_table_puts_ours_beside_the_papers(tmp_path):
    cfg = _cfg("sweep.protocols=[{}, {on_the_fly: true, augment: flip_crop, filter_rho: 0.9}]",
               "sweep.num_samples=2")
    fixed, otf = protocol_cells(cfg)
    trials = [_trial(fixed, 0, 0.60), _trial(fixed, 1, 0.70),
              _trial(otf, 0, 0.80, source="regenerated", kept=0.5), _trial(otf, 1, 0.0, status="ERROR"),
              _trial(fixed, 0, 0.10, lr=0.01)]  # another swept setting: a table of its own
    groups = table1_cells([fixed, otf], trials)
    assert [g["setting"]["lr"] for g in groups] == [0.001, 0.01]
    first, second = groups[0]["cells"]
    assert first["paper"] == 62.26 and second["paper"] == 88.56
    assert first["test"] == pytest.approx({"mean": 65.0, "std": 5.0})
    assert first["best_test"]["mean"] == pytest.approx(66.0) and first["sources"] == ["shards"]
    assert (second["repeats"], second["errors"], second["kept_fraction"]) == (1, 1, 0.5)
    assert groups[1]["cells"][1]["test"]["mean"] is None

    baseline = {"test_acc": 0.9, "best_test_acc": 0.91, "val_acc": 0.92, "arch": "simplecnn",
                "epochs": 2, "augment": "none"}
    out = write_table1(tmp_path, cfg, trials, baseline=baseline)
    text = Path(out["markdown"]).read_text()
    assert text == out["table"] == format_table1(json.loads(Path(out["json"]).read_text()))
    assert "| Paper (%) | 62.26 | 88.56 | 94.26 |" in text
    assert "| Ours (%) | 65.00 ± 5.00 | 80.00 ± 0.00 | 90.00 |" in text
    assert "| Data transformations | - | ✓ flip_crop | none |" in text
    assert "| Repeats | 2 | 1 (1 failed) | 1 |" in text and "| Kept by the filter | - | 50.0 % | - |" in text
    assert "| | fixed set | on the fly | baseline |" in text


class _Agrees(torch.nn.Module):
    """A 'classifier' whose logits are the sample's first two pixels."""

    def forward(self, x):
        return x.flatten(1)[:, :2]


def test_the_filter_runs_on_every_fresh_epoch_and_the_trial_sees_its_size():
    x = torch.zeros(4, 1, 2, 2)
    x[:, 0, 0, 0] = torch.tensor([9.0, 9.0, -9.0, 0.0])  # confident 0, confident 0, confident 1, unsure
    y = torch.tensor([0, 1, 1, 0])
    draws = []

    def fresh(epoch):
        draws.append(epoch)
        return x, y

    filtered = FilteredEpochs(epoch_data=fresh, model=_Agrees(), rho=0.9)
    got = CellSet(source="regenerated", epoch_data=filtered)
    cell = {"name": "otf+crop+rho0.9", "on_the_fly": True, "augment": "crop", "filter_rho": 0.9,
            "truncation": None}
    config = {"T": 1, "mixing_ratio": 0.0, "batch_size": 32, "protocol": cell}
    assert set_key(config) == (1, 0.0, "otf+crop+rho0.9", 32)

    class Data:
        sample_shape = (1, 2, 2)
    data = trial_data(config, None, Data(), got, {})
    assert data.train[0].shape == (0, 1, 2, 2) and data.augment == "crop"
    kept_x, kept_y = data.epoch_data(3)
    assert kept_y.tolist() == [0, 1] and draws == [3]  # the two the classifier agrees with, confidently
    assert data.figures() == {"train_size": 2, "train_source": "regenerated", "kept_fraction": 0.5}
    assert set_key({"T": 2, "mixing_ratio": 1.0, "batch_size": 64}) == (2, 1.0)
