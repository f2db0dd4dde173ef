"""`raygan plan`: the arithmetic of waves, GPU fractions, GPU-hours and cost; the measured probe."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from raygan.config import ConfigError, load_config
from raygan.tools.plan import TASK_START_S, format_plan, make_plan, packing, probe, waves

REPO = Path(__file__).resolve().parents[2]


def _measured(K: int = 10, step_s: float = 0.01) -> dict:
    return {"step_s": step_s, "sample_s": 0.001, "classifier_step_s": 0.002, "device": "cuda",
            "class_sizes": {str(k): 100 for k in range(K)}, "steps": 10, "cpu_threads": None,
            "data": "test", "sample_shape": [1, 8, 8], "family": "dcgan", "batch_size": 32}


def _cfg(*overrides):
    return load_config(overrides=["train.steps=2000", "ensemble.members=5", *overrides])


@pytest.mark.parametrize("gpus, fraction, per_gpu, at_once", [
    (8, 1.0, 1, 8), (2, 0.25, 4, 8), (3, 0.3, 3, 9), (1, 0.5, 2, 2), (4, 2.0, 1, 2), (5, 2.0, 1, 2)])
def test_packing_counts_members_that_run_at_once(gpus, fraction, per_gpu, at_once):
    assert packing(gpus, fraction) == {"per_gpu": per_gpu, "gpus_per_member": fraction,
                                       "at_once": at_once}


@pytest.mark.parametrize("gpus, fraction, words", [
    (0, 1.0, "at least one GPU"), (4, 0.0, "trains members on CPUs"), (4, 1.5, "whole number"),
    (1, 2.0, "fewer than one member")])
def test_packing_refuses_what_cannot_be_scheduled(gpus, fraction, words):
    with pytest.raises(ConfigError, match=words):
        packing(gpus, fraction)


def test_waves():
    assert waves(50, 8) == [8] * 6 + [2]
    assert waves(8, 8) == [8] and waves(3, 8) == [3]


def test_plan_whole_gpus():
    plan = make_plan(_cfg("cluster.gpus_per_member=1"), _measured(), gpus=8, gpu_hour_cost=2.0)
    member_s = 2000 * 0.01
    assert plan["tasks"] == 50 and plan["member_s"] == pytest.approx(member_s)
    assert plan["gpu_hours"] == pytest.approx(50 * member_s / 3600)  # K x T x steps x step time
    assert plan["waves"] == 7 and plan["wave_sizes"] == [8] * 6 + [2]
    assert plan["train_wall_s"] == pytest.approx(7 * (member_s + TASK_START_S))
    billed = (6 * 8 + 2) * (member_s + TASK_START_S) / 3600  # the last wave holds 2 GPUs
    assert plan["billed_gpu_hours"] == pytest.approx(billed)
    assert plan["cost_usd"] == pytest.approx(2.0 * billed)


def test_plan_quarter_gpus_share_and_bill_whole_gpus():
    plan = make_plan(_cfg("cluster.gpus_per_member=0.25", "cluster.gpu_hour_cost=1.5"), _measured(),
                     gpus=2)
    wave_s = 2000 * 0.01 + TASK_START_S
    assert plan["members_per_gpu"] == 4 and plan["at_once"] == 8 and plan["waves"] == 7
    assert plan["billed_gpu_hours"] == pytest.approx((6 * 2 + 1) * wave_s / 3600)
    assert plan["cost_usd"] == pytest.approx(1.5 * plan["billed_gpu_hours"])  # cost from the config
    # a GPU saturated by its four members runs them one after another at worst
    assert plan["train_wall_saturated_s"] == pytest.approx(6 * (4 * 20 + TASK_START_S) +
                                                           (2 * 20 + TASK_START_S))
    assert plan["train_wall_s"] == pytest.approx(7 * wave_s)


def test_plan_boosting_runs_steps_in_sequence_and_conditional_members_cover_all_classes():
    boost = make_plan(_cfg("ensemble.method=adagan", "cluster.gpus_per_member=1"), _measured(),
                      gpus=8)
    assert boost["wave_sizes"] == [8, 2] * 5  # each of the T steps: the 10 classes in two waves
    ccgan = make_plan(_cfg("gan.family=ccgan", "cluster.gpus_per_member=1"), _measured(), gpus=8)
    assert ccgan["tasks"] == 5 and ccgan["waves"] == 1
    no_cost = make_plan(_cfg(), _measured(), gpus=1)
    assert no_cost["cost_usd"] is None and no_cost["gpus_per_member"] == 1.0
    rounds = make_plan(_cfg("train.recursive_rounds=2"), _measured(), gpus=1)
    assert rounds["steps_per_member"] == 3 * 2000


def test_evaluation_and_synthesis_estimates():
    plan = make_plan(_cfg("eval.repeats=3", "eval.epochs=2", "eval.batch_size=64"), _measured(),
                     gpus=2, cpus=4)
    assert plan["classifier_runs"] == 3 * (1 + 5)  # TRTR + TSTR for T = 1..5, R times
    assert plan["classifier_steps_per_run"] == 2 * 16  # ceil(1000 / 64) batches x 2 epochs
    assert plan["eval_s"] == pytest.approx(18 * 32 * 0.002)
    assert plan["synthetic_samples"] == 1000 and plan["synth_wall_s"] == pytest.approx(1.0 / 4)


def test_the_probe_measures_a_real_member_and_a_stand_in(tmp_path):
    cfg = load_config(overrides=["data.name=digits", "data.grouping=II", "gan.width=8", "gan.z_dim=8",
                                 "train.batch_size=16", "eval.batch_size=16"])
    measured = probe(cfg, steps=3)
    assert measured["step_s"] > 0 and measured["sample_s"] > 0 and measured["classifier_step_s"] > 0
    assert measured["data"].startswith("real digits") and measured["sample_shape"] == [1, 8, 8]
    assert measured["class_sizes"] == {"0-4": 630, "5-9": 627}
    mnist = load_config(overrides=["data.name=mnist", f"data.root={tmp_path}/absent",
                                   "data.grouping=II", "data.train_per_class=200", "gan.width=8",
                                   "gan.z_dim=8", "train.batch_size=16", "eval.batch_size=16"])
    stand_in = probe(mnist, steps=2)
    assert stand_in["data"].startswith("random stand-in of mnist")
    assert stand_in["sample_shape"] == [1, 28, 28] and stand_in["class_sizes"] == {"0-4": 200,
                                                                                 "5-9": 200}
    with pytest.raises(ConfigError, match="probe at least 1 step"):
        probe(cfg, steps=0)


def test_plan_command_prints_json_and_never_imports_ray():
    code = ("import sys, json, io, contextlib; from raygan.cli import main; buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            "    rc = main(['plan', 'configs/digits.yaml', '--gpus', '4', '--probe-steps', '2',\n"
            "               '--gpu-hour-cost', '1', '--set', 'gan.width=8', '--json'])\n"
            "assert rc == 0 and 'ray' not in sys.modules, 'plan imported ray'\n"
            "print(buf.getvalue())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    plan = json.loads(out.stdout)
    assert plan["tasks"] == 50 and plan["waves"] == 13 and plan["cost_usd"] > 0
    bad = subprocess.run([sys.executable, "-m", "raygan.cli", "plan", "configs/digits.yaml",
                          "--gpus", "0"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "at least one GPU" in bad.stderr


def test_plan_counts_pack_tasks_where_members_pack():
    packed = make_plan(_cfg("cluster.members_per_task=4", "cluster.gpus_per_member=1"), _measured(),
                       gpus=8, gpu_hour_cost=1.0)
    member_s = 2000 * 0.01
    assert packed["members"] == 50 and packed["members_per_task"] == 4
    assert packed["tasks"] == 13 and packed["wave_sizes"] == [8, 5]  # ceil(50 / 4) packs
    assert packed["gpu_hours"] == pytest.approx(13 * member_s / 3600)
    assert packed["train_wall_s"] == pytest.approx(2 * (member_s + TASK_START_S))
    # at worst a pack's four members take four members' time on a GPU they saturate
    assert packed["train_wall_saturated_s"] == pytest.approx(2 * (4 * member_s + TASK_START_S))
    assert packed["billed_gpu_hours"] == pytest.approx(13 * (member_s + TASK_START_S) / 3600)
    text = format_plan(packed)
    assert "in 13 tasks" in text and "members per task" in text and "cluster.members_per_task=4" in text
    assert "pack time" in text and "packs at once" in text
    # auto: what fit the probe's GPU, spread over the GPUs (50 members on 8 GPUs: 7 a pack)
    auto = make_plan(_cfg("cluster.gpus_per_member=1"), {**_measured(), "pack_fit": 37}, gpus=8)
    assert auto["members_per_task"] == 7 and auto["tasks"] == 8 and auto["waves"] == 1
    assert make_plan(_cfg(), {**_measured(), "pack_fit": 3}, gpus=8)["members_per_task"] == 3
    # a probe without a GPU knows no GPU's fit: auto plans one member per task, and says so
    cpu_probe = make_plan(_cfg(), _measured(), gpus=8)
    assert cpu_probe["members_per_task"] == 1 and cpu_probe["tasks"] == 50
    assert "measured on the GPU when the run starts" in format_plan(cpu_probe)
    # boosting packs the 10 members of a step (spread over 8 GPUs: 2 a pack, 5 packs a step);
    # 5 conditional members spread over 8 GPUs one each
    boost = make_plan(_cfg("ensemble.method=adagan"), {**_measured(), "pack_fit": 37}, gpus=8)
    assert boost["members_per_task"] == 2 and boost["wave_sizes"] == [5] * 5 and boost["tasks"] == 25
    ccgan = make_plan(_cfg("gan.family=ccgan"), {**_measured(), "pack_fit": 37}, gpus=8)
    assert ccgan["members_per_task"] == 1 and ccgan["tasks"] == 5
    packed_ccgan = make_plan(_cfg("gan.family=ccgan", "cluster.members_per_task=2"), _measured(), gpus=8)
    assert packed_ccgan["members_per_task"] == 2 and packed_ccgan["tasks"] == 3


def test_plan_prints_the_worker_groups_and_plans_data_parallel_members():
    plan = make_plan(_cfg("cluster.gpus_per_member=1"), _measured(), gpus=8)
    assert plan["gpu_group_max"] == 8  # the busiest wave keeps 8 GPUs
    assert "gpu: minReplicas 0, maxReplicas 8 of 1 GPU" in format_plan(plan)
    wide = make_plan(_cfg("cluster.gpus_per_member=1", "cluster.workers_per_member=2"), _measured(), gpus=8)
    assert wide["at_once"] == 4 and wide["wave_sizes"] == [4] * 12 + [2]  # 2 GPUs per member
    assert wide["member_s"] == pytest.approx(2000 * 0.01 / 2)  # linear scaling, the same GPU-hours
    assert wide["gpu_hours"] == pytest.approx(plan["gpu_hours"]) and wide["gpu_group_max"] == 8
    assert "2 data-parallel workers" in format_plan(wide)
