"""The measured set is the shipped set: the evaluation reads the shards as written (decoded from their
PNG bytes), marks what it had to regenerate, and refuses a run without complete shards before any work."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from raygan.classifiers.fit import train_classifier
from raygan.config import ConfigError, load_config
from raygan.data import load_dataset
from raygan.ensemble.training import train_independent
from raygan.evaluation.curves import evaluate_run
from raygan.evaluation.job import evaluate_job
from raygan.reporting.report import write_report
from raygan.runs import RunFolder
from raygan.synthesis.shards import mixture_weights, write_shards


def _cfg(root, *overrides):
    return load_config(overrides=[
        "data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
        "train.steps=20", "train.batch_size=16", "train.checkpoint_every=10", "train.log_every=10",
        "ensemble.members=2", "output.sample_grid=16", f"output.root={root}/runs", "eval.repeats=1",
        "eval.epochs=2", "eval.metrics=[msssim]", "eval.metric_samples=60", "tracking.enabled=false",
        *overrides])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run, no shards yet."""
    torch.set_num_threads(1)  # a module fixture runs before tests/conftest.py's per-test one thread
    cfg = _cfg(tmp_path_factory.mktemp("measured"))
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    run.write_config(cfg)
    train_independent(cfg, ds, run)
    return cfg, ds, run


def _files(run: RunFolder) -> dict[str, bytes]:
    return {str(p.relative_to(run.path)): p.read_bytes() for p in sorted(run.path.rglob("*")) if p.is_file()}


def test_a_run_without_shards_is_refused_with_one_line_and_nothing_written(trained):
    cfg, ds, run = trained
    before = _files(run)
    for evaluate in (lambda: evaluate_job(cfg.replace(tracking={"enabled": True}), prepared=(ds, run)),
                     lambda: evaluate_run(cfg, ds, run)):
        with pytest.raises(ConfigError) as err:
            evaluate()
        message = str(err.value)
        assert "\n" not in message and "no synthetic shards" in message
        assert "raygan synthesize --config" in message
    assert _files(run) == before  # no eval/, no report, manifest untouched
    assert not (Path(cfg.output.root) / "mlflow.db").exists()  # the MLflow run never opened


def _decoded_by_hand(folder) -> tuple[torch.Tensor, torch.Tensor]:
    """The shards read with plain pyarrow and PIL, sorted by (label, member, index)."""
    table = pq.read_table(str(folder), partitioning=None).sort_by(
        [("label", "ascending"), ("member", "ascending"), ("index", "ascending")])
    pngs = pc.struct_field(table["image"], "bytes").to_pylist()  # Hugging Face's Image struct
    images = np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in pngs])
    x = torch.from_numpy(images[:, None].astype(np.float32)) / 127.5 - 1.0
    return x, torch.tensor(table["label"].to_pylist(), dtype=torch.int64)


def test_tstr_at_t_max_is_measured_on_the_shards_and_the_report_marks_regenerated(trained):
    cfg, ds, run = trained
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))
    # one classifier at a time, so that the one trained here by hand on the decoded shards is the same
    # computation bit for bit (a pack equals it only within float tolerance: test_classifier_pack)
    ev = evaluate_run(cfg.replace(eval={"pack_size": 1}), ds, run)
    by_t = {r["T"]: r for r in ev["tstr_curve"]}
    # uniform members: T=1 needs N_g rows of member 0, which shipped N_g / 2: regenerated
    assert by_t[1]["source"] == "regenerated" and by_t[2]["source"] == "shards"
    assert ev["trts_source"] == "shards"
    x, y = _decoded_by_hand(run.path / "shards")
    assert len(y) == sum(ds.train_sizes().values())
    e = cfg.eval
    fit = train_classifier(x, y, val=ds.val, test=ds.test, n_classes=2, arch=e.arch, epochs=e.epochs,
                           lr=e.lr, batch_size=e.batch_size, weight_decay=e.weight_decay,
                           augment=e.augment, seed=e.seed)
    assert by_t[2]["test_acc_mean"] == fit.test_acc
    assert by_t[2]["histories"] == [[h["test_acc"] for h in fit.history]]
    # the quality sets of 60 per class fit in the shards at every T
    sets = ev["quality"]["sets"]
    assert {k: v["source"] for k, v in sets.items()} == {"real (val)": "real", "T=1": "shards",
                                                         "T=2": "shards"}
    assert json.loads((run.path / "eval" / "evaluation.json").read_text())["tstr_curve"][0]["source"] == \
        "regenerated"
    assert run.manifest()["evaluation"] == "eval/evaluation.json"
    report = write_report(run.path).read_text()
    single = next(line for line in report.splitlines() if "single GAN (T = 1)" in line)
    shipped = next(line for line in report.splitlines() if "EnsGAN-2" in line)
    assert single.count("(regenerated)") == 2 and "(regenerated)" not in shipped
    assert "drawn anew from the generators" in report and "(on the shards as written)" in report


def test_changed_or_mismatched_shards_are_refused(trained):
    cfg, ds, run = trained
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))
    with pytest.raises(ConfigError, match="do not match this config's shard plan.*raygan synthesize"):
        evaluate_run(cfg.replace(synth={"seed": 7}), ds, run)
    part = sorted((run.path / "shards").glob("*.parquet"))[0]
    saved = part.read_bytes()
    try:
        part.write_bytes(saved[:-10])
        with pytest.raises(ConfigError, match="incomplete or changed.*raygan synthesize"):
            evaluate_run(cfg, ds, run)
    finally:
        part.write_bytes(saved)
