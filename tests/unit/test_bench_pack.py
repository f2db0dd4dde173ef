"""`raygan bench pack` (P members one after another against one pack) and `raygan bench gpu` (every
GPU check in one table), both at tiny sizes on the CPU; the gpu command with Ray and MLflow unimportable."""
import re
import subprocess
import sys

import pytest
import torch

from raygan.cli import main
from raygan.tools import bench_pack as bp
from raygan.tools.bench_gpu import FAMILIES


def test_bench_pack_names_both_arms_the_threads_and_a_ratio(capsys, tmp_path):
    before = torch.get_num_threads()
    out_file = tmp_path / "bench.md"
    assert main(["bench", "pack", "--members", "2", "--steps", "5", "--repeats", "1", "--device", "cpu",
                 "--output", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "one after another (`train_gan`)" in out and "one pack (`train_pack`)" in out
    assert "--threads 1" in out and "same 1 torch thread " in out and "CPU (1 threads" in out
    assert "digits" in out and "dcgan-8 (width 32, z_dim 32" in out and "batch 32" in out
    row = next(line for line in out.splitlines() if line.startswith("| 2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 6 and float(cells[1]) > 0 and float(cells[3]) > 0
    assert re.fullmatch(r"\*\*\d+\.\d\d\*\*", cells[5])
    assert out_file.read_text().strip() == out.strip()  # --output appends the same markdown
    assert torch.get_num_threads() == before  # the benchmark's threads do not leak


def _row(p, seq, pack, seconds=1.0):
    return p, [seq], [pack], seconds


def test_saturation_names_the_first_p_near_the_best_ratio():
    rows = [_row(1, 10, 10), _row(2, 10, 18), _row(4, 10, 38), _row(8, 10, 40)]
    assert bp.saturation(rows).startswith("The ratio saturates at P = 4 ")
    rising = [_row(1, 10, 10), _row(2, 10, 30)]
    assert "still rising at the largest P measured, 2" in bp.saturation(rising)


def test_sweep_stops_before_a_p_projected_past_the_budget(monkeypatch):
    monkeypatch.setattr(bp, "measure", lambda s, p, steps, repeats, device: _row(p, 1, 2, 10.0 * p))
    rows, stopped = bp.sweep(None, 5, 1, torch.device("cpu"), budget_s=100.0)
    assert [r[0] for r in rows] == [1, 2, 4]  # 10 + 20 + 40 s spent; P = 8 would need 80 more
    assert stopped.startswith("P = 8, 16, 32, 64 not run")


def test_bench_gpu_quick_runs_every_check_without_ray_or_mlflow():
    code = ("import sys\n"
            "sys.modules['ray'] = None\n"
            "sys.modules['mlflow'] = None\n"
            "from raygan.cli import main\n"
            "rc = main(['bench', 'gpu', '--device', 'cpu', '--quick'])\n"
            "loaded = [m for m, v in sys.modules.items() if v is not None and m.split('.')[0] in "
            "('ray', 'mlflow')]\n"
            "print('rc', rc, 'loaded', loaded)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rc 0 loaded []" in out.stdout
    rows = {}
    for line in out.stdout.splitlines():
        if line.startswith("| ") and not line.startswith("| check |"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells
    assert len([line for line in out.stdout.splitlines() if line.startswith("| check |")]) == 1
    for p in (1, 2, 4):
        assert rows[f"bench pack, P = {p}"][3] == "measured"
    assert rows["paper scale: one pack of 20"][3] in ("pass", "over target")
    assert "min for all 20" in rows["paper scale: one pack of 20"][2]
    assert rows["paper scale: one member alone"][3] == "measured"
    assert "70-75 min per member" in rows["paper scale: seed 000"][2]
    # (e) the speed levers against the plain fp32 pack of the same run, (f) bf16's fidelity
    assert rows["lever: none (plain fp32 pack)"][3] == "measured"
    for lever in ("bf16", "channels_last"):
        assert rows[f"lever: {lever}"][3] in ("helps", "no gain"), rows[f"lever: {lever}"]
        assert re.search(r"ratio to plain fp32 \*\*\d+\.\d\d\*\*", rows[f"lever: {lever}"][2])
    assert rows["lever: cuda_graphs"][3] == "n/a" and "needs a CUDA device" in rows["lever: cuda_graphs"][2]
    assert rows["lever: compile"][3] == "skipped"  # a minute of compiling on these CPUs
    assert any(name.startswith("lever: all helpful together (") for name in rows)
    assert rows["bf16 fidelity"][3] == "pass", rows["bf16 fidelity"]
    for name, _, _ in FAMILIES:
        assert rows[f"smoke: {name}"][3] == "pass", rows[f"smoke: {name}"]
        expected = "not packable" if name == "pggan" else "pass"  # pggan: packs of 1 only
        assert rows[f"pack: {name}"][3] == expected, rows[f"pack: {name}"]
    assert "No check failed." in out.stdout


@pytest.mark.parametrize("family", ["fc", "pggan"])
def test_bench_train_step_refuses_a_family_it_has_no_setting_for(family, capsys):
    assert main(["bench", "train-step", "--family", family, "--device", "cpu"]) == 2
    assert f"--family {family}: mlp2d or dcgan" in capsys.readouterr().err


def test_bench_pack_refuses_the_family_train_pack_does_not_pack(capsys):
    assert main(["bench", "pack", "--family", "pggan", "--members", "2", "--device", "cpu"]) == 2
    assert "train_pack does not pack this family" in capsys.readouterr().err
