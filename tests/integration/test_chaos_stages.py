"""Chaos, stage by stage (issue 25 item 9): a real `raygan pipeline` process on the session's Ray,
stopped by SIGTERM or Ctrl-C at a random moment of each stage in turn, and a run folder on a real disk
(a small tmpfs) that fills at random points, each fault followed by a rerun of the same command. Every
fault ends in one raygan line, no traceback, no temporary file and the lock released; the last rerun
completes, and its shards equal an uninterrupted run's byte for byte.

The moments are drawn from a seeded generator: which signal, and how far into the stage (a fraction of
the stage's time in the uninterrupted run, eval/timing.json); a stage's start is its debug line
"stage <name>: begun" (raygan.reporting.stages). The disk sizes are drawn between the size of the data
loaded (nothing fits) and the uninterrupted run folder's size (everything but the last files fits).
Worker kills and a killed driver: tests/integration/test_chaos.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from raygan.cluster.pipeline import run_pipeline
from raygan.config import load_config
from raygan.reporting.stages import STAGES
from raygan.runs import RunFolder

REPO = Path(__file__).resolve().parents[2]
SEED = 25  # the seed of the faults: which signal, when, and how full the disk
TINY = ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
        "train.steps=40", "train.batch_size=16", "train.checkpoint_every=5", "train.log_every=5",
        "ensemble.members=2", "output.sample_grid=4", "synth.chunk_size=64", "eval.repeats=1",
        "eval.epochs=2", "eval.tsne_points=0", "tracking.enabled=false"]
STOPPED = ("raygan: stopped by {}; temporary files removed and the run folder unlocked; rerun the same "
           "command to resume (finished members and shards are kept)")


def _overrides(root: Path) -> list[str]:
    return [*TINY, f"output.root={root}"]


def _shards(run_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((run_dir / "shards").glob("*.parquet"))}


def _leftovers(root: Path) -> list[str]:
    """Temporary files and folders, and a held lock, anywhere under root."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name or p.name == "raygan.lock")


@pytest.fixture(scope="module")
def calm(ray_session, tmp_path_factory) -> dict:
    """The uninterrupted run: its shards, its stage times and the bytes its run folder holds."""
    root = tmp_path_factory.mktemp("calm")
    run_pipeline(load_config(overrides=_overrides(root)), address=ray_session["gcs"])
    run_dir = RunFolder.for_config(load_config(overrides=_overrides(root))).path
    timing = json.loads((run_dir / "eval" / "timing.json").read_text())
    return {"shards": _shards(run_dir), "seconds": {k: v["seconds"] for k, v in timing["stages"].items()},
            "bytes": sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())}


def _command(gcs: str, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "raygan", "--log-level", "debug", "pipeline", "--address", gcs,
            *[a for s in overrides for a in ("--set", s)]]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return env


def _stop_in_stage(cmd: list[str], stage: str, delay: float, signum: int) -> tuple[int, str, bool]:
    """Run cmd, and ``delay`` seconds after it logs that ``stage`` has begun send it ``signum``:
    (exit status, its output, whether the signal was sent while it ran)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    begun = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if f"stage {stage}: begun" in line:
                begun.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent = False
    try:
        if begun.wait(timeout=180):
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signum)
                sent = True
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    return proc.returncode, "".join(lines), sent


def _assert_stopped_cleanly(code: int, out: str, signum: int, root: Path) -> None:
    name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else "SIGTERM"
    said = [line for line in out.splitlines() if line.startswith("raygan:")]
    assert code == 128 + signum and said == [STOPPED.format(name)], out[-3000:]
    assert "Traceback" not in out and "SIGTERM received" not in out, out[-3000:]
    assert _leftovers(root) == [], out[-3000:]


def test_signals_at_random_moments_of_every_stage_then_a_rerun_equals_an_uninterrupted_run(
        ray_session, calm, tmp_path):
    rng = random.Random(SEED)
    root = tmp_path / "runs"
    cmd = _command(ray_session["gcs"], _overrides(root))
    stopped = []
    for stage in STAGES:  # one run stopped in each stage; each rerun resumes what the last one left
        signum = rng.choice([signal.SIGTERM, signal.SIGINT])
        delay = rng.uniform(0.0, 0.8) * calm["seconds"][stage]
        for attempt in range(3):
            code, out, sent = _stop_in_stage(cmd, stage, delay if attempt == 0 else 0.0, signum)
            # A short stage (the report: 0.3 s) can end before a loaded machine (CI's two test workers)
            # delivers the signal, and the run then finishes: stop the rerun at the stage's start.
            if not (sent and code == 0 and "pipeline stages:" in out):
                break
        assert sent, f"{stage} ended before the signal after {delay:.2f}s: {out[-3000:]}"
        _assert_stopped_cleanly(code, out, signum, root)
        stopped.append((stage, signum, round(delay, 2)))
    run_dir = RunFolder.for_config(load_config(overrides=_overrides(root))).path
    members = json.loads((run_dir / "manifest.json").read_text())["members"]
    assert sorted(members) == ["0-4/0", "0-4/1", "5-9/0", "5-9/1"], stopped
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _shards(run_dir) == calm["shards"], f"shards differ from the uninterrupted run's after {stopped}"
    assert _leftovers(root) == []


@pytest.fixture
def small_disk(tmp_path):
    """A real tmpfs mounted at tmp_path/disk; yields a function that resizes it (bytes)."""
    disk = tmp_path / "disk"
    disk.mkdir()

    def size(nbytes: int, remount: bool = True) -> None:
        options = f"{'remount,' if remount else ''}size={nbytes}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)],
                              capture_output=True, text=True)
        assert done.returncode == 0, f"this test mounts a small tmpfs (root): {done.stderr.strip()}"

    size(1 << 20, remount=False)
    yield disk, size
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_disk_that_fills_at_random_points_then_a_rerun_equals_an_uninterrupted_run(
        ray_session, calm, small_disk):
    disk, resize = small_disk
    rng = random.Random(SEED)
    root = disk / "runs"
    cmd = _command(ray_session["gcs"], _overrides(root))
    full = sorted(rng.uniform(0.05, 0.95) * calm["bytes"] for _ in range(2))
    for nbytes in full:  # a disk that fills, is given a little more room, and fills again further on
        resize(int(nbytes))
        done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
        out = done.stdout + done.stderr
        said = [line for line in out.splitlines() if line.startswith("raygan:")]
        assert done.returncode == 1 and len(said) == 1, out[-3000:]
        assert said[0].startswith(f"raygan: cannot write {disk}/runs/default/run/") and said[0].endswith(
            " (No space left on device); free space on that disk or choose another output.root, then rerun "
            "the same command (finished work is kept)"), said
        assert "Traceback" not in out and _leftovers(disk) == [], out[-3000:]
    resize(64 << 20)  # room freed: the rerun completes
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = RunFolder.for_config(load_config(overrides=_overrides(root))).path
    assert _shards(run_dir) == calm["shards"] and _leftovers(disk) == []
