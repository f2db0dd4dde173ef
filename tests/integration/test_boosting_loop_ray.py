"""The boosting driver actor and the in-process runner run one loop: the same config gives the same state."""
from __future__ import annotations

import json

import numpy as np

from raygan.cluster.pipeline import prepare, run_train
from raygan.ensemble.boosting_loop import data_weights_path, state_path, train_boosting

# What differs between two runs of the same members: timings and where the work ran.
_WHEN_AND_WHERE = {"seconds", "device", "node_id", "hostname", "gpu_ids", "worker_pid", "task_seconds",
                   "task_started", "task_finished"}


def _same_work(state: dict) -> dict:
    return {**state, "steps": [{k: v for k, v in s.items() if k != "seconds"} for s in state["steps"]],
            "members": [{k: v for k, v in m.items() if k not in _WHEN_AND_WHERE} for m in state["members"]]}


def test_in_process_boosting_matches_the_ray_driver(ray_session, ray_cfg, tmp_path):
    # On the CPU and one thread each, so that both sides compute bit for bit the same.
    common = ["ensemble.method=adagan", "ensemble.members=3", "train.steps=20", "boosting.classifier_epochs=1",
              "tracking.enabled=false", "train.device=cpu", "cluster.gpus_per_member=0",
              "cluster.cpus_per_member=1"]
    on_ray, here = ray_cfg("grid", *common), ray_cfg("grid", *common, f"output.root={tmp_path}/here")
    ray_run = prepare(on_ray)[1]
    run_train(on_ray)
    dataset, run = prepare(here)
    train_boosting(here, dataset, run)
    ray_state = json.loads(state_path(ray_run, "grid").read_text())
    state = json.loads(state_path(run, "grid").read_text())
    assert state["step"] == 3
    assert _same_work(state) == _same_work(ray_state)  # mixture weights, step records, member seeds, sha256
    for step in (2, 3):
        assert np.array_equal(np.load(data_weights_path(run, "grid", step)),
                              np.load(data_weights_path(ray_run, "grid", step)))
    assert run.manifest()["mixtures"] == ray_run.manifest()["mixtures"]
