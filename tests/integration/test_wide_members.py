"""Members wider than one process (cluster.workers_per_member=2, issue 29) on the session's local Ray:
each member is a Ray Train TorchTrainer of two gloo workers (raygan.cluster.wide).

- Two workers at half the batch each, with synchronised batch norms, under differential privacy (the
  run's plan reaches every worker: D's DP-SGD update is summed over the group), one of them SIGKILLed
  once the member has a checkpoint: Ray Train restarts the group, the member resumes from its
  checkpoint, and it ends equal, within float rounding, to the DP member the solo loop trains at the
  full batch (same seed, same data, same noise): no step lost or applied twice, and its entry's
  accountant history counts every step once. Its member folder is an ordinary one, which synthesis
  reads. (One trainer run, restarted, instead of two: each Ray Train start costs tens of seconds here.
  The same group without privacy, and with it, against the solo member: tests/unit/test_data_parallel.py,
  two gloo processes without Ray.)
- More workers than the cluster has CPUs, with no autoscaler: refused in one line before the run folder
  is written.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from raygan import seeds
from raygan.cluster.pipeline import prepare, run_synth, run_train
from raygan.config import ConfigError, load_config
from raygan.gan.train import load_generator, train_gan
from raygan.privacy.dpsgd import MemberPrivacy
from raygan.runs import RunFolder

STEPS, EVERY = 60, 20
WIDE = ["data.name=digits", "data.grouping=null", "data.classes={d: [0, 1, 2]}", "gan.family=dcgan",
        "gan.width=8", "gan.z_dim=16", "train.batch_size=32", f"train.steps={STEPS}",
        f"train.checkpoint_every={EVERY}", f"train.log_every={EVERY}", "ensemble.members=1",
        "output.sample_grid=16", "synth.chunk_size=256", "tracking.enabled=false",
        "cluster.workers_per_member=2", "cluster.max_retries=2",
        "privacy.epsilon=10", "train.divergence_retries=0"]


def _cfg(root, run: str, *overrides: str):
    return load_config(overrides=[*WIDE, f"output.root={root}", f"output.run={run}", *overrides])


def _weights(path) -> dict:
    return load_generator(path).state_dict()


def _descendants_titled(prefix: str) -> dict[int, str]:
    """This test process's descendant processes (the session's raylet and its workers) whose title
    starts with ``prefix``."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
        mine |= frontier
    found = {}
    for pid in mine:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(prefix):
            found[pid] = title
    return found


def test_two_dp_workers_at_half_batch_killed_and_resumed_equal_one_member_at_full_batch(ray_session, tmp_path):
    cfg = _cfg(tmp_path, "wide")
    run = RunFolder.for_config(cfg)
    checkpoint = run.path / "members" / "d" / "0" / "checkpoint.pt"
    killed = []

    def kill_once_checkpointed():
        deadline = time.time() + 300
        while not checkpoint.exists() and time.time() < deadline:
            time.sleep(0.02)
        workers = _descendants_titled("ray::RayTrainWorker")
        if workers:
            pid = max(workers)  # the later-started worker, not the one writing the run folder
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_once_checkpointed, daemon=True)
    killer.start()
    [entry] = run_train(cfg)["members"]
    killer.join(timeout=5)
    assert killed, "no Ray Train worker was found to kill"
    assert entry["status"] == "complete" and entry["workers_per_member"] == 2 and len(entry["workers"]) == 2
    # Ray Train restarted the group; the member went on from its last checkpoint, not from step 0
    assert 0 < entry["resumed_from"] < STEPS and entry["resumed_from"] % EVERY == 0, entry["resumed_from"]
    assert entry["steps"] == STEPS
    # ... and equals the member trained alone at the full batch (same seed, same data): a step lost or
    # applied twice across the restart, or a shard or batch norm out of step, would not
    dataset, _ = prepare(cfg)
    seed = seeds.member_retry(cfg.train.seed, 0, 0, 0)
    assert entry["seed"] == seed
    privacy = {k: v for k, v in entry["privacy"].items() if k != "history"}
    assert entry["privacy"]["history"] == [[privacy["noise_multiplier"], privacy["sample_rate"], STEPS]]
    assert privacy["records"] == len(dataset.train["d"]) and privacy["noise_multiplier"] > 0
    solo = train_gan(dataset.train["d"], gan=cfg.gan, train=cfg.train, device=torch.device("cpu"), seed=seed,
                     privacy=MemberPrivacy.from_dict(privacy))
    wide, alone = _weights(run.path / entry["generator"]), solo.generator.state_dict()
    assert wide.keys() == alone.keys()
    for key in alone:
        assert torch.allclose(wide[key].float(), alone[key].float(), atol=1e-4, rtol=1e-4), key
    assert abs(entry["final_d_loss"] - float(solo.losses[-EVERY:, 0].mean())) < 1e-4
    folder = run.path / "members" / "d" / "0"
    assert {"checkpoint.pt", "generator.pt", "losses.csv", "samples.png"} <= {p.name for p in folder.iterdir()}
    synth = run_synth(cfg)  # what `raygan synthesize` runs: it reads the member folder like any other
    assert synth["shards"]["rows"] > 0


def test_more_workers_than_the_cluster_has_are_refused_before_work(ray_session, tmp_path):
    cfg = _cfg(tmp_path, "too-wide", "cluster.workers_per_member=4")  # 4 CPUs; the session Ray has 2
    with pytest.raises(ConfigError, match=r"workers_per_member=4: a member's group needs 4 CPU") as err:
        run_train(cfg)
    assert "\n" not in str(err.value)
    assert not (RunFolder.for_config(cfg).path / "config.yaml").exists()
