"""Packed members on a real 2-CPU local Ray: several (class, member) GANs to one task
(cluster.members_per_task) and the setting's validation. A killed pack retried and resumed, each member
from its own checkpoint, with shards byte-equal to an uninterrupted run: tests/integration/test_chaos.py."""
from __future__ import annotations

import csv
from collections import Counter

import pyarrow.parquet as pq
import pytest

from raygan.cluster.pipeline import run_synth, run_train
from raygan.config import ConfigError, load_config
from raygan.runs import RunFolder

# Two classes of different sizes (label 0; labels 1 and 7), three members each.
CLASSES = ["data.grouping=null", "data.classes={a: [0], b: [1, 7]}", "ensemble.members=3",
           "tracking.enabled=false"]


def _first_logged(run: RunFolder, key: str, every: int) -> tuple[float, float]:
    """Mean d_loss, g_loss of a member's first train.log_every steps (its first logged losses)."""
    with open(run.path / "members" / key / "losses.csv") as f:
        rows = list(csv.DictReader(f))[:every]
    return (sum(float(r["d_loss"]) for r in rows) / every, sum(float(r["g_loss"]) for r in rows) / every)


def test_packs_of_four_train_six_members_in_two_tasks(raygan_logs, ray_session, ray_cfg):
    cfg = ray_cfg("digits", *CLASSES, "cluster.members_per_task=4", "output.run=packed")
    raygan_logs.clear()
    trained = run_train(cfg)
    run = RunFolder(trained["run_dir"])
    members = run.manifest()["members"]
    assert sorted(members) == ["a/0", "a/1", "a/2", "b/0", "b/1", "b/2"]
    assert all(e["status"] == "complete" and e["steps"] == 30 for e in members.values())
    # member_grid's order in packs of 4: a/0-a/2 and b/0 together (two classes in one model), then b/1-2
    packs = {key: e["pack"] for key, e in members.items()}
    assert packs == {"a/0": 0, "a/1": 0, "a/2": 0, "b/0": 0, "b/1": 1, "b/2": 1}
    assert {key: e["pack_size"] for key, e in members.items()} == {**{k: 4 for k in packs if packs[k] == 0},
                                                                  "b/1": 2, "b/2": 2}
    for pack in (0, 1):  # one task per pack: one worker process, one node
        held = [e for e in members.values() if e["pack"] == pack]
        assert len({(e["node_id"], e["worker_pid"], e["task_started"]) for e in held}) == 1
    assert sum("submitting 6 members as 2 pack tasks" in line for line in raygan_logs) == 1
    assert sum("steps in" in line and "[pack " in line for line in raygan_logs) == 6
    for key in members:
        assert (run.path / "members" / key / "generator.pt").is_file()
        assert (run.path / "members" / key / "samples.png").is_file()

    synth = run_synth(cfg)
    table = pq.read_table(run.path / "shards")
    counts = Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))
    assert set(counts) == {(k[0], int(k[2])) for k in members}
    sizes = {"a": 0, "b": 0}
    for (name, _), n in counts.items():
        sizes[name] += n
    assert sizes["b"] > sizes["a"] > 0 and synth["shards"]["rows"] == sum(sizes.values())

    # the same members trained one per task start like their packed selves
    single = run_train(ray_cfg("digits", *CLASSES, "ensemble.members=1", "cluster.members_per_task=1",
                               "output.run=single"))
    alone = RunFolder(single["run_dir"])
    assert all("pack" not in e for e in alone.manifest()["members"].values())
    for key in ("a/0", "b/0"):
        assert _first_logged(run, key, 10) == pytest.approx(_first_logged(alone, key, 10), rel=1e-3,
                                                            abs=1e-3)


@pytest.mark.parametrize("overrides, message", [
    (["cluster.members_per_task=0"], "cluster.members_per_task: 0 is out of range; it must be >= 1"),
    (["cluster.members_per_task=2.5"], "cluster.members_per_task: expected int"),
    (["cluster.members_per_task=auto"], "or null for auto"),
    (["cluster.members_per_task=4", "gan.family=pggan"], "gan.family=pggan trains one member per task"),
    (["cluster.members_per_task=2", "train.recursive_rounds=1"], "train.recursive_rounds"),
])
def test_members_per_task_is_validated_before_any_work(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(overrides=overrides)


def test_members_per_task_defaults_to_auto_and_one_is_allowed_everywhere():
    assert load_config().cluster.members_per_task is None
    for extra in (["gan.family=pggan"], ["ensemble.method=reweight"], ["gan.family=ccgan"]):
        assert load_config(overrides=["cluster.members_per_task=1", *extra]).cluster.members_per_task == 1
    # boosting steps and conditional members pack (test_boosting_packs.py trains them)
    for extra in (["ensemble.method=adagan"], ["ensemble.method=reweight"], ["gan.family=ccgan"]):
        assert load_config(overrides=["cluster.members_per_task=4", *extra]).cluster.members_per_task == 4
