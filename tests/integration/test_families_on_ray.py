"""GAN families on the Ray layer: conditional members (task grid per member) and truncation in shards."""
from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq

from raygan.cluster.pipeline import run_synth, run_train
from raygan.runfolder import RunFolder


def test_conditional_members_run_as_one_task_each_and_fill_every_class(ray_session, ray_cfg):
    cfg = ray_cfg("digits", "gan.family=ccgan", "synth.truncation=1.5", "tracking.enabled=false")
    logs: list[str] = []
    run_train(cfg, log=logs.append)
    run = RunFolder.for_config(cfg)
    members = run.manifest()["members"]
    assert set(members) == {"0-4/0", "5-9/0", "0-4/1", "5-9/1"}
    # one task per member: both classes of a member came from the same worker and the same model
    for t in (0, 1):
        a, b = members[f"0-4/{t}"], members[f"5-9/{t}"]
        assert a["generator"] == b["generator"] and a["worker_pid"] == b["worker_pid"]
        assert (a["condition"], b["condition"]) == (0, 1)
    assert sum("conditional member" in line and "steps in" in line for line in logs) == 2

    run_synth(cfg, log=logs.append)
    table = pq.read_table(run.path / "shards")
    counts = Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))
    sizes = {"0-4": 630, "5-9": 627}
    assert counts == {(name, t): sizes[name] // 2 + (t < sizes[name] % 2)
                      for name in sizes for t in (0, 1)}
    assert run.manifest()["shards"]["spec"]["truncation"] == 1.5
    # the rerun of the same spec writes nothing
    logs.clear()
    run_train(cfg, log=logs.append)
    run_synth(cfg, log=logs.append)
    assert any("unchanged" in line for line in logs)
