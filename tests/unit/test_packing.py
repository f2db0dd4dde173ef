"""Packs (cluster.members_per_task): the grouping, auto's choice on CPUs and GPUs, the memory probe."""
from __future__ import annotations

import math

import pytest
import torch

from raygan.cluster import packing
from raygan.cluster.packing import CPU_PACK_SIZE, auto_pack_size, choose_pack_size, group_packs, pack_fit, task_slots
from raygan.config import load_config

CPU = {"num_cpus": 1.0, "num_gpus": 0.0}
GRID = [(0, "a", 0), (0, "a", 1), (0, "a", 2), (1, "b", 0), (1, "b", 1), (1, "b", 2)]


def _never() -> int:
    raise AssertionError("auto probed a GPU it does not need")


def test_packs_follow_member_grid_order_and_only_the_last_is_short():
    assert group_packs(GRID, 4) == [GRID[:4], GRID[4:]]  # a pack may hold several classes
    assert group_packs(GRID, 1) == [[g] for g in GRID]
    assert group_packs(GRID, 6) == group_packs(GRID, 50) == [GRID]
    assert group_packs(GRID, 4) == group_packs(list(GRID), 4)  # deterministic: a rerun packs alike
    with pytest.raises(ValueError, match="at least one member"):
        group_packs(GRID, 0)


@pytest.mark.parametrize("resources, cluster, slots", [
    (CPU, {"CPU": 2.0}, 2), ({"num_cpus": 2.0, "num_gpus": 0}, {"CPU": 7.0}, 3),
    ({"num_cpus": 1.0, "num_gpus": 0.25}, {"CPU": 16.0, "GPU": 2.0}, 8),
    ({"num_cpus": 1.0, "num_gpus": 1.0}, {"CPU": 2.0, "GPU": 4.0}, 2),  # the CPUs run out first
    ({"num_cpus": 1.0, "num_gpus": 2.0}, {"CPU": 8.0, "GPU": 5.0}, 2),
    ({"num_cpus": 1.0, "num_gpus": 1.0}, {"CPU": 8.0}, None)])  # GPU workers not started yet
def test_task_slots(resources, cluster, slots):
    assert task_slots(resources, cluster) == slots


def test_auto_spreads_members_over_the_slots_up_to_the_fit():
    assert auto_pack_size(30, 15, 2) == 15
    assert auto_pack_size(100, 15, 2) == 15
    assert auto_pack_size(6, 15, 2) == 3
    assert auto_pack_size(2, 15, 2) == 1
    assert auto_pack_size(40, 15, None) == 15 and auto_pack_size(4, 15, None) == 4


def test_auto_on_cpus_packs_the_benchmarked_size_and_never_idles_a_cpu():
    cfg = load_config()  # the default is auto (null)
    assert cfg.cluster.members_per_task is None
    size, why = choose_pack_size(cfg, 200, CPU, {"CPU": 2.0}, _never)
    assert size == CPU_PACK_SIZE and "raygan bench pack" in why
    assert choose_pack_size(cfg, 50, CPU, {"CPU": 2.0}, _never)[0] == 25  # spread over both CPUs
    assert choose_pack_size(cfg, 6, CPU, {"CPU": 2.0}, _never)[0] == 3  # 2 packs, one per CPU
    assert choose_pack_size(cfg, 2, CPU, {"CPU": 2.0}, _never)[0] == 1
    assert choose_pack_size(cfg, 50, CPU, {"CPU": 64.0}, _never)[0] == 1  # 64 CPUs: one each
    assert choose_pack_size(load_config(overrides=["cluster.members_per_task=4"]), 50, CPU,
                            {"CPU": 64.0}, _never) == (4, "cluster.members_per_task=4")


def test_auto_keeps_one_member_per_task_where_members_do_not_pack():
    for overrides in (["gan.family=pggan"], ["train.recursive_rounds=1"]):
        size, why = choose_pack_size(load_config(overrides=overrides), 50, CPU, {"CPU": 2.0}, _never)
        assert size == 1 and why.startswith("auto: "), overrides
    # boosting steps and conditional members pack like independent members (50 for 2 slots: 25)
    for overrides in (["ensemble.method=adagan"], ["ensemble.method=reweight"], ["gan.family=ccgan"]):
        assert choose_pack_size(load_config(overrides=overrides), 50, CPU, {"CPU": 2.0}, _never)[0] == 25


def test_auto_on_gpus_asks_the_probe_and_spreads():
    gpu = {"num_cpus": 1.0, "num_gpus": 1.0}
    cfg = load_config()
    assert choose_pack_size(cfg, 50, gpu, {"CPU": 16.0, "GPU": 2.0}, lambda: 40)[0] == 25
    assert choose_pack_size(cfg, 50, gpu, {"CPU": 16.0, "GPU": 2.0}, lambda: 10)[0] == 10
    assert choose_pack_size(cfg, 50, gpu, {"CPU": 16.0}, lambda: 12)[0] == 12  # autoscaling
    assert choose_pack_size(cfg, 4, gpu, {"CPU": 16.0, "GPU": 4.0}, _never)[0] == 1


def test_pack_fit_on_cpu_is_the_benchmarked_constant():
    cfg = load_config(overrides=["gan.width=8"])
    assert pack_fit(cfg, torch.zeros(10, 1, 8, 8), torch.device("cpu")) == CPU_PACK_SIZE


def test_pack_fit_on_cuda_divides_free_memory_by_the_probed_peak_per_member(monkeypatch):
    """The arithmetic of the GPU probe, with torch.cuda's counters stood in (no GPU here)."""
    mib, calls = 2 ** 20, []
    cuda = torch.cuda
    for name in ("synchronize", "reset_peak_memory_stats", "empty_cache"):
        monkeypatch.setattr(cuda, name, lambda *a, **k: None)
    monkeypatch.setattr(cuda, "memory_allocated", lambda *a: 100 * mib)  # e.g. what was there
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda *a: 100 * mib + 2 * 50 * mib)
    monkeypatch.setattr(cuda, "mem_get_info", lambda *a: (1000 * mib, 2000 * mib))
    monkeypatch.setattr(packing, "train_units",
                        lambda units, cfg, run, pack, device=None: calls.append((units, cfg, pack)) or [])
    cfg = load_config(overrides=["gan.width=8", "train.steps=3000"])
    data = torch.zeros(64, 1, 8, 8)
    assert pack_fit(cfg, data, torch.device("cuda")) == math.floor(0.8 * 1000 / 50)
    assert pack_fit(cfg, data, torch.device("cuda"), gpu_share=0.25) == math.floor(0.8 * 250 / 50)
    units, probe_cfg, pack = calls[0]
    assert [u.folder.name for u in units] == ["0", "1"] and probe_cfg.train.steps == packing.PROBE_STEPS
    assert pack  # the probe trains what a pack task trains
    monkeypatch.setattr(cuda, "mem_get_info", lambda *a: (10 * mib, 2000 * mib))
    assert pack_fit(cfg, data, torch.device("cuda")) == 1  # never fewer than one member


def test_the_driver_records_each_pack_and_reports_a_diverged_member(monkeypatch, tmp_path, raygan_logs):
    """raygan.cluster.train's pack loop with the Ray calls stood in: one pack of a/0, a/1 whose a/1
    diverged, one of b/0: the complete members are recorded, the diverged one is reported and not."""
    from raygan.cluster import train as ray_train
    from raygan.runs import RunFolder
    from raygan.tracking import Tracker

    cfg = load_config(overrides=["tracking.enabled=false", f"output.root={tmp_path}"])
    run = RunFolder.for_config(cfg)

    def complete(name: str, t: int, pack: int, size: int) -> dict:
        return {"class": name, "member": t, "status": "complete", "steps": 5, "seconds": 0.1,
                "final_d_loss": 1.0, "final_g_loss": 0.5, "generator": f"members/{name}/{t}/generator.pt",
                "pack_size": size, "pack": pack}

    results = {0: [complete("a", 0, 0, 2), {"class": "a", "member": 1, "status": "diverged",
                                            "error": "GAN training diverged at step 3", "pack": 0}],
               1: [complete("b", 0, 1, 1)]}
    submitted = []
    monkeypatch.setattr(ray_train, "submit_units", lambda *a, pack, heads, **k: submitted.append(heads)
                        or pack)
    monkeypatch.setattr(ray_train, "wait_all", lambda refs, on_done: [on_done(i, results[i]) for i in refs])
    todo = [(0, "a", 0), (0, "a", 1), (1, "b", 0)]
    entries = ray_train._train_packs(cfg, run, Tracker(cfg, "train"), todo, 2, CPU, {}, first=0,
                                     total=3)
    assert submitted == [todo[:2], todo[2:]]
    assert [(e["class"], e["member"]) for e in entries] == [("a", 0), ("b", 0)]
    assert sorted(run.manifest()["members"]) == ["a/0", "b/0"] and run.member_entry("a", 1) is None
    warnings = [line for line in raygan_logs if "diverged" in line]
    assert any("class a member 1" in line and "step 3" in line for line in warnings)
    assert sum("[pack " in line for line in raygan_logs) == 2
