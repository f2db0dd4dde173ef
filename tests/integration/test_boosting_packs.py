"""Packed boosting steps and packed conditional members on a real 2-CPU local Ray: AdaGAN's K class
members of step t trained as one pack task (the classes stepping in lockstep), a restart continuing
every class at its own next step, and ccgan's T conditional members as one pack task."""
from __future__ import annotations

import json
import shutil
from collections import Counter

import pyarrow.parquet as pq

from raygan.cluster.pipeline import run_synth, run_train
from raygan.runs import RunFolder, sha256_file

TWO_CLASSES = ["data.grouping=null", "data.classes={a: [0], b: [1]}", "tracking.enabled=false"]


def _one_task(entries: list[dict]) -> bool:
    return len({(e["node_id"], e["worker_pid"], e["task_started"]) for e in entries}) == 1


def test_adagan_packs_each_steps_class_members_and_a_restart_continues_each_class(raygan_logs, ray_session,
                                                                                   ray_cfg):
    cfg = ray_cfg("digits", *TWO_CLASSES, "ensemble.method=adagan", "cluster.members_per_task=2",
                  "boosting.classifier_epochs=1", "train.steps=20", "output.run=adagan_packed")
    raygan_logs.clear()
    run = RunFolder(run_train(cfg)["run_dir"])
    members = run.manifest()["members"]
    assert sorted(members) == ["a/0", "a/1", "b/0", "b/1"]
    assert all(e["status"] == "complete" and e["steps"] == 20 and e["pack_size"] == 2 for e in members.values())
    for t in (0, 1):  # step t + 1: both classes' members in one pack task
        assert _one_task([members[f"a/{t}"], members[f"b/{t}"]])
    assert not _one_task([members["a/0"], members["a/1"]])
    assert sum("in lockstep" in line for line in raygan_logs) == 1
    for name in ("a", "b"):
        state = json.loads((run.path / "boosting" / name / "state.json").read_text())
        assert state["step"] == 2 and [m["member"] for m in state["members"]] == [0, 1]
        assert (run.path / "boosting" / name / "data_weights_step2.npy").is_file()
        assert sum(run.manifest()["mixtures"][name]) == 1.0

    # a crash during step 2: class a finished it, class b did not (its member 1 is gone), and the
    # driver had recorded nothing in the manifest yet
    b1 = members["b/1"]
    b_weights = (run.path / "boosting" / "b" / "data_weights_step2.npy").read_bytes()
    a_files = {t: sha256_file(run.member_dir("a", t) / "generator.pt") for t in (0, 1)}
    state_file = run.path / "boosting" / "b" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "step": 1, "mixture_weights": [1.0],
                                      "members": state["members"][:1], "steps": state["steps"][:1]}))
    shutil.rmtree(run.member_dir("b", 1))
    manifest_file = run.path / "manifest.json"
    manifest_file.write_text(json.dumps({**json.loads(manifest_file.read_text()), "members": {},
                                         "mixtures": {}}))
    raygan_logs.clear()
    run_train(cfg)
    assert any("class a: 2 boosting steps already complete: skipped" in line for line in raygan_logs)
    assert any("class b: boosting from step 2 of 2" in line for line in raygan_logs)
    members = run.manifest()["members"]
    assert sorted(members) == ["a/0", "a/1", "b/0", "b/1"] and members["b/1"]["pack_size"] == 1
    # the redone step trained the member it trained before: same seed and data weights (in a pack of
    # one now, so equal up to float rounding)
    assert (run.path / "boosting" / "b" / "data_weights_step2.npy").read_bytes() == b_weights
    assert members["b/1"]["seed"] == b1["seed"] and members["b/1"]["resumed_from"] == 0
    assert abs(members["b/1"]["final_d_loss"] - b1["final_d_loss"]) < 1e-3
    assert {t: sha256_file(run.member_dir("a", t) / "generator.pt") for t in (0, 1)} == a_files
    assert json.loads(state_file.read_text())["step"] == 2


def test_ccgan_packs_its_conditional_members_into_one_task(ray_session, ray_cfg):
    cfg = ray_cfg("digits", *TWO_CLASSES, "gan.family=ccgan", "cluster.members_per_task=2", "train.steps=20",
                  "output.run=ccgan_packed")
    run = RunFolder(run_train(cfg)["run_dir"])
    members = run.manifest()["members"]
    assert sorted(members) == ["a/0", "a/1", "b/0", "b/1"]
    for key, e in members.items():
        name, t = key.split("/")
        assert e["status"] == "complete" and e["conditional"] is True and e["condition"] == "ab".index(name)
        assert e["generator"] == f"members/_conditional/{t}/generator.pt" and e["pack"] == 0
        assert e["pack_size"] == 2
    assert _one_task(list(members.values()))
    for t in (0, 1):
        assert (run.member_dir("_conditional", t) / "samples.png").is_file()
        assert sha256_file(run.member_dir("_conditional", t) / "generator.pt") == members[f"a/{t}"]["generator_sha256"]
    run_synth(cfg)
    table = pq.read_table(run.path / "shards")
    counts = Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))
    assert set(counts) == {("a", 0), ("a", 1), ("b", 0), ("b", 1)}
