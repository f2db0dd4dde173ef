"""Every CLI command on a tiny config, as a user runs it."""
import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from raygan.cli import main


def test_dry_run_prints_the_resolved_config(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["grid2d", "--preset", "quick", "--set", "train.steps=7", "--dry-run"])
    assert exit_.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["train"]["steps"] == 7 and cfg["data"]["name"] == "grid2d"


def test_bad_input_is_a_clear_error_before_any_work(tmp_path, capsys):
    root = tmp_path / "runs"
    code = main(["demo", "--set", "ensemble.members=0", "--set", f"output.root={root}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "ensemble.members: 0 is out of range; it must be >= 1" in err
    assert not root.exists()
    code = main(["demo", "--set", "train.batch_size=500", "--set", f"output.root={root}"])
    assert code == 2
    assert "train.batch_size=500 is larger than class" in capsys.readouterr().err
    assert not root.exists()
    # FID needs local Inception weights: refused, with the file named, before Ray or training start
    with pytest.raises(SystemExit) as exit_:
        main(["pipeline", "--config", "configs/digits.yaml", "--set", "eval.metrics=[fid]",
              "--set", f"output.root={root}"])
    assert exit_.value.code == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in capsys.readouterr().err
    assert not root.exists()
    # a torchvision dataset whose files are missing: the paths looked for are named
    with pytest.raises(SystemExit) as exit_:
        main(["pipeline", "--config", "configs/cifar2.yaml", "--set", f"data.root={tmp_path}/nodata",
              "--set", f"output.root={root}"])
    assert exit_.value.code == 2
    assert f"{tmp_path}/nodata/cifar-10-batches-py" in capsys.readouterr().err
    assert not root.exists()


def test_grid2d_tiny_prints_table_1_beside_the_paper(tmp_path, capsys):
    root = tmp_path / "runs"
    code = main(["grid2d", "--preset", "quick", "--set", "train.steps=30", "--set", "grid_eval.gans=3",
                 "--set", "grid_eval.max_ensemble=2", "--set", "grid_eval.points_per_gan=3000",
                 "--set", "grid_eval.repeats=5", "--set", "data.grid_points=2000",
                 "--set", f"output.root={root}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| GAN |" in out and "| EnsGAN-2 |" in out
    assert "18.8 ± 2.6" in out and "24.6 ± 0.8" in out  # the paper's column
    run = root / "grid2d" / "quick"
    assert (run / "plots" / "grid_members.png").stat().st_size > 10_000
    result = json.loads((run / "eval" / "table1.json").read_text())
    assert [r["ensemble_size"] for r in result["rows"]] == [1, 2]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 30
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(manifest["members"]) == 3


def test_demo_tiny_writes_member_grids_and_a_summary(tmp_path):
    root = tmp_path / "runs"
    exe = shutil.which("raygan") or f"{sys.executable} -m raygan.cli"
    cmd = exe.split() + ["demo", "--set", "train.steps=10", "--set", "ensemble.members=2",
                         "--set", "data.grouping=II", "--set", f"output.root={root}",
                         # the demo's stages, each on a small budget (the whole demo: README's table)
                         "--set", "eval.repeats=1", "--set", "eval.epochs=2", "--set", "eval.tsne_points=0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "raygan demo: summary" in out.stdout
    assert "T = 2 members per class, 4 members (4 trained now" in out.stdout
    assert re.search(r"  audit           (PASS|WARN): .*privacy\.json", out.stdout)
    assert "pipeline stages:" in out.stdout  # the table, and its line in the summary
    assert re.search(r"  stages          train \d+s \(\d+%\), synthesize \d+s .* report \d+s", out.stdout)
    run = root / "demo" / "digits"
    for cls in ("0-4", "5-9"):
        for t in (0, 1):
            assert (run / "members" / cls / str(t) / "samples.png").exists()
    assert (run / "plots" / "overview.png").exists()
    counts = json.loads((run / "manifest.json").read_text())["shards"]["counts"]
    assert counts == {"0-4": {"0": 315, "1": 315}, "5-9": {"0": 314, "1": 313}}  # N_g = N real
