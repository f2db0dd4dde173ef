"""Input that would give a wrong result or write outside the run, refused through the real `raygan`
command before any work: one line naming the problem and the fix, exit 2, nothing written. And YAML
numbers as people write them (1e-4) accepted wherever a number is expected."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_calls import files, run_main, sets
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.name=digits", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16", "train.steps=2",
        "train.batch_size=16", "train.checkpoint_every=2", "train.log_every=2", "ensemble.members=1",
        "output.sample_grid=4", "eval.epochs=1", "eval.repeats=1", "tracking.enabled=false",
        "cluster.members_per_task=1"]





def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("raygan:")]
    assert len(lines) == 1 and lines[0].startswith("raygan: config error: "), err
    assert "Traceback" not in err, err
    return lines[0]


def _refused(capsys, argv: list[str], seconds: float = 30) -> str:
    t0 = time.monotonic()
    code = run_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert time.monotonic() - t0 < seconds
    return _one_line(err)


# ---------------------------------------------------------------------------- class names

def test_a_class_name_that_leaves_the_run_folder_is_refused_by_the_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "raygan", "pipeline", "--dry-run",
                          *sets(f"output.root={tmp_path}/runs",
                                 'data.classes={"../../../../escape": [0], b: [1]}')],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 2, out.stderr
    line = _one_line(out.stderr)
    assert "class name '../../../../escape' (a key of data.classes)" in line
    assert "path separator" in line and "rename it" in line
    assert files(tmp_path) == []


@pytest.mark.parametrize("classes,name,why", [
    ('{"a/b": [0], b: [1]}', "'a/b'", "path separator"),
    ('{"": [0], b: [1]}', "''", "it is empty"),
    ('{"..": [0], b: [1]}', "'..'", "names a folder itself"),
    ('{".hidden": [0], b: [1]}', "'.hidden'", "starts with '.'"),
])
def test_class_names_that_are_not_one_folder_are_refused_before_any_work(tmp_path, capsys, classes, name,
                                                                        why):
    for argv in (["pipeline", "--dry-run"], ["train"]):
        line = _refused(capsys, [*argv, *sets(*TINY, f"output.root={tmp_path}/runs",
                                               f"data.classes={classes}")])
        assert f"class name {name} (a key of data.classes)" in line and why in line
    assert files(tmp_path) == []


# ---------------------------------------------------------------------------- silent successes

def test_a_one_class_pipeline_or_evaluation_is_refused_before_training(tmp_path, capsys):
    options = sets(*TINY, f"output.root={tmp_path}/runs", "data.classes={only: [0]}")
    for job in ("pipeline", "evaluate"):
        line = _refused(capsys, [job, *options], seconds=60)
        assert "the data has one class ('only'), and a classifier needs at least two" in line
    assert files(tmp_path) == []
    assert run_main(["train", "--dry-run", *options]) == 0  # a GAN for one class alone is fine


def _image_folder(root: Path, sizes: dict[str, int]) -> None:
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 10 * i, np.uint8)).save(root / name / f"{i}.png")


def test_a_class_without_test_images_is_refused_before_any_work(tmp_path, capsys):
    data = tmp_path / "data"
    _image_folder(data, {"common": 20, "rare": 3})
    runs = tmp_path / "runs"
    line = _refused(capsys, ["pipeline", *sets(*TINY, "data.name=imagefolder", f"data.root={data}",
                                                "data.val_fraction=0", "data.test_fraction=0.05",
                                                "train.batch_size=2", f"output.root={runs}")], seconds=60)
    assert "class 'rare' has 3 images, and the split leaves none of them in the test split" in line
    assert not runs.exists()


def test_holdout_splits_too_small_for_the_audit_are_refused_before_training(tmp_path, capsys):
    data = tmp_path / "data"
    _image_folder(data, {"common": 20, "rare": 7})
    runs = tmp_path / "runs"
    line = _refused(capsys, ["pipeline", *sets(*TINY, "data.name=imagefolder", f"data.root={data}",
                                                "audit.holdout=val", "train.batch_size=4",
                                                f"output.root={runs}")], seconds=60)
    assert "audit.holdout=val: class 'rare' has 1 test and 1 validation image(s)" in line
    assert line.endswith("set audit.holdout=val+test")
    assert not runs.exists()


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """A tiny run folder trained and synthesized in this process (2 classes x 1 member, 2 steps)."""
    from raygan.config import load_config
    from raygan.ensemble.training import train_independent
    from raygan.evaluation.job import prepare
    from raygan.synthesis.shards import mixture_weights, write_shards

    root = tmp_path_factory.mktemp("report")
    cfg = load_config(overrides=[*TINY, "data.classes={a: [0], b: [1]}", "synth.chunk_size=16",
                                 "ensemble.samples_per_class=40", f"output.root={root}/runs"])
    dataset, run = prepare(cfg)
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    write_shards(cfg, dataset, run, mixture_weights(cfg, dataset, run))
    return run.path


def test_report_on_shards_that_no_longer_match_the_manifest_is_refused_and_writes_nothing(
        synthesized, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(synthesized, run)
    shards = sorted((run / "shards").glob("*.parquet"))
    assert len(shards) >= 2
    shards[0].unlink()
    before = files(run)
    line = _refused(capsys, ["report", str(run)])
    assert f"the shards of {run} are not the ones manifest.json records (missing: {shards[0].name})" in line
    assert "nothing was written" in line and "raygan synthesize" in line
    assert files(run) == before and not (run / "report.md").exists() and not (run / "plots").exists()
    # a shard changed in place is refused the same way
    shutil.copy(synthesized / "shards" / shards[0].name, shards[0])
    shards[1].write_bytes(shards[1].read_bytes()[:-8])
    line = _refused(capsys, ["report", str(run)])
    assert f"changed: {shards[1].name}" in line and not (run / "report.md").exists()


# ---------------------------------------------------------------------------- messages that mislead

def test_scientific_notation_is_a_number_in_config_files_and_set_values(tmp_path, capsys):
    config = tmp_path / "sci.yaml"
    config.write_text("gan:\n  lr_g: 1e-4\nsweep:\n  target: gan\n  gan_space:\n"
                      "    gan.lr_g: {loguniform: [1e-4, 1e-3]}\n")
    assert run_main(["sweep", "--dry-run", "--config", str(config),
                  *sets("sweep.lr=[1e-3, 3e-3]", f"output.root={tmp_path}/runs")]) == 0
    out = capsys.readouterr().out
    assert "lr_g: 0.0001" in out and "  - 0.001\n  - 0.003\n" in out
    assert "loguniform:\n      - 0.0001\n      - 0.001\n" in out
    assert files(tmp_path) == ["sci.yaml"]


def test_evaluate_on_a_run_folder_that_does_not_exist_says_so(tmp_path, capsys):
    runs = tmp_path / "runs"
    line = _refused(capsys, ["evaluate", *sets(*TINY, f"output.root={runs}", "output.run=nope")])
    assert f"run folder {runs}/default/nope does not exist" in line
    assert "run `raygan train` and `raygan synthesize` (or `raygan pipeline`)" in line
    assert "make them with" not in line
    assert not runs.exists()
