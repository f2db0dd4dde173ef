"""Chaos: training workers SIGKILLed at random moments, several times in one job, and a job whose
driver is SIGKILLed and rerun, end with shards byte-identical to an uninterrupted run of the same
config and seed (issue 13, "What it must show").

Everything is real: the session's local Ray runs raygan's training tasks; the test finds their worker
processes by the titles Ray gives them (ray::train_pack:<class>/<member>,... and
ray::train_member:<class>/<member>) among its own descendants (so another Ray on the machine is never
touched), kills them with SIGKILL at moments drawn from a seeded generator, and lets Ray retry the tasks
(cluster.max_retries) and the members resume from their checkpoints (train.checkpoint_every=5). The
driver is `python -m raygan train` in a subprocess joined to the session's Ray, SIGKILLed with one
pack recorded and the other mid-training, and rerun. Every run is then synthesized and the sha256 of
every parquet file, and of every member's generator, compared with the uninterrupted run's.
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
import yaml

from raygan.cluster.pipeline import run_synth, run_train
from raygan.config import load_config
from raygan.runs import RunFolder

REPO = Path(__file__).resolve().parents[2]
TRAINING_TITLES = ("ray::train_pack:", "ray::train_member:")
KILLS = 3
KILL_SEED = 13  # the seed of the kill schedule: which worker, and when
STEPS = 200
# One class of three digits, three members: auto packs them [d/0, d/1] and [d/2] on the 2-CPU Ray.
CHAOS = ["data.name=digits", "data.grouping=null", "data.classes={d: [0, 1, 2]}", "gan.family=dcgan",
         "gan.width=8", "gan.z_dim=16", "train.batch_size=32", f"train.steps={STEPS}",
         "train.checkpoint_every=5", "train.log_every=5", "ensemble.members=3", "output.sample_grid=4",
         "synth.chunk_size=256", "tracking.enabled=false", "cluster.max_retries=3"]


def _overrides(root: Path, run: str) -> list[str]:
    return [*CHAOS, f"output.root={root}", f"output.run={run}"]


def _hashes(run: RunFolder, under: str, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(run.path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run.path / under).rglob(pattern))}


def _made(run: RunFolder) -> dict:
    """What a run made: sha256 of every shard file and of every member's generator."""
    return {"shards": _hashes(run, "shards", "*.parquet"),
            "generators": _hashes(run, "members", "generator.pt")}


def _assert_same_as(run: RunFolder, reference: dict) -> None:
    """The run made the uninterrupted run's shards and generators, byte for byte. The generators are
    compared too because 8-bit shards of a short run can hide a member that trained differently (its
    float rounding), which a longer run's shards would show."""
    made = _made(run)
    assert made["shards"] and len(made["generators"]) == 3, f"{run.path} made {made}"
    assert made["shards"] == reference["shards"], "shards differ from the uninterrupted run's"
    differ = sorted(k for k in reference["generators"] if made["generators"].get(k) != reference["generators"][k])
    assert not differ, f"generators differ from the uninterrupted run's: {differ}"


@pytest.fixture(scope="module")
def uninterrupted(ray_session, tmp_path_factory) -> dict:
    """What the uninterrupted run of the chaos config makes (trained and synthesized once)."""
    cfg = load_config(overrides=_overrides(tmp_path_factory.mktemp("uninterrupted"), "calm"))
    run_train(cfg)
    run_synth(cfg)
    return _made(RunFolder.for_config(cfg))


def _parents() -> dict[int, int]:
    """pid -> parent pid of every live process (Linux /proc; zombies left out)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                state, parent = f.read().rsplit(")", 1)[1].split()[:2]  # the name in (...) may hold spaces
        except OSError:  # it ended while we looked
            continue
        if state not in ("Z", "X"):
            found[int(entry)] = int(parent)
    return found


def _title(pid: int) -> str:
    """A process's title (Ray workers: ray::<task name>, or ray::IDLE between tasks)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return ""


def _training_workers() -> dict[int, str]:
    """pid -> title of this session's Ray workers running a training task: descendants of this test
    process (its ray.init started the raylet that started them) whose title names a training task."""
    parents, mine, frontier = _parents(), set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
        mine |= frontier
    titles = {pid: _title(pid) for pid in mine}
    return {pid: title for pid, title in titles.items() if title.startswith(TRAINING_TITLES)}


def _title_members(title: str) -> list[str]:
    """The class/member keys a task title names: ray::train_pack:d/0,d/1 -> [d/0, d/1]."""
    return title.removeprefix("ray::").split(":", 1)[1].split(",")


def _checkpointed_since(run: RunFolder, title: str, since: float) -> bool:
    for key in _title_members(title):
        try:
            if os.stat(run.path / "members" / key / "checkpoint.pt").st_mtime > since:
                return True
        except FileNotFoundError:
            continue
    return False


def _kill_at_random_moments(run: RunFolder, training: threading.Thread, rng: random.Random,
                            timeout: float) -> list[dict]:
    """SIGKILL KILLS training workers while ``training`` runs: each time one that has checkpointed
    since the last kill (so every kill costs progress that must be resumed, and a retry is caught
    training, not starting), after a random delay; returns what was killed."""
    killed: list[dict] = []
    since, deadline = 0.0, time.time() + timeout
    while len(killed) < KILLS and training.is_alive() and time.time() < deadline:
        dead = {k["pid"] for k in killed}
        ready = sorted((title, pid) for pid, title in _training_workers().items()
                       if pid not in dead and _checkpointed_since(run, title, since))
        if not ready:
            time.sleep(0.05)
            continue
        title, pid = rng.choice(ready)
        time.sleep(rng.uniform(0.0, 0.25))
        if _training_workers().get(pid) != title:
            continue  # it finished its task meanwhile: draw again
        os.kill(pid, signal.SIGKILL)
        killed.append({"pid": pid, "title": title, "at": time.time()})
        since = time.time()
    return killed


def test_workers_killed_at_random_moments_leave_the_shards_unchanged(ray_session, uninterrupted,
                                                                     tmp_path):
    cfg = load_config(overrides=_overrides(tmp_path, "chaos"))
    run = RunFolder.for_config(cfg)
    box: dict = {}

    def train() -> None:
        try:
            box["result"] = run_train(cfg)
        except BaseException as err:  # surfaced below
            box["error"] = err

    training = threading.Thread(target=train, daemon=True)
    training.start()
    killed = _kill_at_random_moments(run, training, random.Random(KILL_SEED), timeout=120)
    training.join(300)
    assert "error" not in box, box.get("error")
    assert len(killed) == KILLS, f"only {len(killed)} of {KILLS} kills landed before training ended"
    members = run.manifest()["members"]
    assert sorted(members) == ["d/0", "d/1", "d/2"]
    assert all(e["status"] == "complete" and e["steps"] == STEPS for e in members.values())
    assert not {e["worker_pid"] for e in members.values()} & {k["pid"] for k in killed}
    assert all(k["title"].startswith("ray::train_pack:") for k in killed)
    for kill in killed:  # each killed task was retried and resumed from a checkpoint
        assert any(members[key]["resumed_from"] > 0 for key in _title_members(kill["title"])), kill
    run_synth(cfg)
    _assert_same_as(run, uninterrupted)


def _config_file(path: Path, overrides: list[str]) -> Path:
    """The overrides as the YAML deltas file `raygan train --config` reads."""
    deltas: dict = {}
    for item in overrides:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = deltas
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(deltas))
    return path


def _recorded(run: RunFolder) -> dict:
    try:
        return json.loads((run.path / "manifest.json").read_text()).get("members", {})
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


@pytest.fixture
def one_cpu_taken(ray_session):
    """Every CPU of the session's Ray but one held by an actor, as by other jobs on a busy cluster: the
    two packs then train one after the other, so the driver can be killed with one pack recorded. What
    an earlier test of this session's Ray left holding a CPU (a killed driver's actors end within
    seconds; CI runs two test workers, so the tests before this one vary) is waited for, and whatever
    still holds one counts as taken: with both CPUs taken the packs would never start."""
    import math

    import ray

    @ray.remote
    class Holder:
        def ready(self) -> bool:
            return True

    deadline = time.time() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.time() < deadline:
        time.sleep(0.5)
    free = math.floor(ray.available_resources().get("CPU", 0) + 1e-9)
    assert free >= 1, f"no CPU of the session's Ray is free: {ray.available_resources()}"
    holder = Holder.options(num_cpus=free - 1).remote() if free > 1 else None
    if holder is not None:
        ray.get(holder.ready.remote(), timeout=60)
    yield
    if holder is not None:
        ray.kill(holder)


def test_killed_driver_and_rerun_leave_the_shards_unchanged(ray_session, uninterrupted, one_cpu_taken,
                                                           tmp_path):
    overrides = _overrides(tmp_path / "runs", "driver")
    run = RunFolder.for_config(load_config(overrides=overrides))
    cmd = [sys.executable, "-m", "raygan", "train", "--config",
           str(_config_file(tmp_path / "chaos.yaml", overrides)), "--address", ray_session["gcs"]]
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300  # generous: CI runs two test workers on 2 cores
        # Mid-training at its most telling: one pack recorded, the other training from a checkpoint.
        while driver.poll() is None and time.time() < deadline:
            recorded = _recorded(run)
            if recorded and any((run.path / "members" / f"d/{t}" / "checkpoint.pt").exists()
                                for t in range(3) if f"d/{t}" not in recorded):
                break
            time.sleep(0.05)
        assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()  # reaped, as a shell would: a zombie's pid still looks like the lock's holder
    before = _recorded(run)
    assert 0 < len(before) < 3, (before, (tmp_path / "first.log").read_text()[-3000:])
    # Ray ends the dead driver's tasks; none may go on writing into the run folder.
    gone = time.time() + 30
    while _training_workers() and time.time() < gone:
        time.sleep(0.1)
    assert not _training_workers(), "the killed driver's training tasks outlived it"

    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    members = run.manifest()["members"]
    assert sorted(members) == ["d/0", "d/1", "d/2"]
    assert all(e["status"] == "complete" and e["steps"] == STEPS for e in members.values())
    assert {k: members[k] for k in before} == before  # skipped, not retrained: entries as they were
    assert all(members[k]["resumed_from"] > 0 for k in members if k not in before)
    run_synth(load_config(overrides=overrides))
    _assert_same_as(run, uninterrupted)
