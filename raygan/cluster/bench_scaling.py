"""`raygan bench ray-scaling`: K x T tiny members one after another in one process vs as Ray tasks.

Both sides run the same `train_units` calls (one unit alone) with one torch thread per member; the Ray side is timed
from submission to the last result (worker start-up included), on a local Ray with --workers CPUs.
Parallel efficiency = (sequential time / Ray time) / workers; the target is >= 0.8.
"""
from __future__ import annotations

import platform
import shutil
import tempfile
import time
from datetime import date

import torch

from raygan.config import load_config
from raygan.data import load_dataset
from raygan.ensemble.members import member_grid
from raygan.ensemble.training import class_unit, train_units
from raygan.runs import RunFolder


def bench_ray_scaling(args) -> str:
    import ray

    from raygan.cluster.pipeline import run_train

    root = tempfile.mkdtemp(prefix="raygan-bench-")
    overrides = ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=16",
                 "gan.z_dim=32", f"train.steps={args.steps}", "train.batch_size=32",
                 f"train.checkpoint_every={args.steps}", f"ensemble.members={args.members}",
                 "tracking.enabled=false", "cluster.cpus_per_member=1", "train.device=cpu",
                 f"cluster.num_cpus={args.workers}", f"output.root={root}"]
    try:
        cfg = load_config(overrides=overrides + ["output.run=sequential"])
        dataset = load_dataset(cfg.data)
        grid = member_grid(dataset, cfg.ensemble.members)
        torch.set_num_threads(1)
        run = RunFolder.for_config(cfg)
        t0 = time.perf_counter()
        for k, name, t in grid:
            train_units([class_unit(cfg, run, dataset.train[name], class_name=name, class_index=k, member=t)],
                        cfg, run, pack=False)
        sequential = time.perf_counter() - t0

        ray_cfg = load_config(overrides=overrides + ["output.run=ray"])
        ray.init(num_cpus=args.workers, include_dashboard=False)
        try:
            t0 = time.perf_counter()
            run_train(ray_cfg)
            parallel = time.perf_counter() - t0
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    workers = min(args.workers, len(grid))
    speedup = sequential / parallel
    efficiency = speedup / workers
    return "\n".join([
        f"### ray-scaling ({date.today().isoformat()}, {workers} CPU workers, "
        f"{platform.machine()})",
        "",
        f"Command: `raygan bench ray-scaling --members {args.members} --steps {args.steps} "
        f"--workers {args.workers}`",
        f"Setting: {len(grid)} members (2 classes x {args.members}) of DCGAN-8 (width 16), "
        f"{args.steps} steps at batch 32, one torch thread per member.",
        "",
        "| run | seconds |",
        "|---|---|",
        f"| one after another in one process | {sequential:.1f} |",
        f"| Ray tasks on a local Ray ({args.workers} CPUs, worker start-up included) | {parallel:.1f} |",
        "",
        f"Speed-up {speedup:.2f} on {workers} workers: parallel efficiency **{efficiency:.2f}** "
        f"(target >= 0.8).",
        "",
    ])
