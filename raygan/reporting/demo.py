"""`raygan demo`'s report: what the pipeline did on the bundled digits, and an overview image.

The demo itself is the pipeline job on a local Ray (raygan.cluster.entry.run_demo, with the other
jobs); this module only reads its run folder: the manifest, and the parquet shards with plain pyarrow.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from raygan.config import Config
from raygan.data.shards import png_bytes
from raygan.reporting.stages import stage_line
from raygan.runs import RunFolder, atomic_write_text
from raygan.synthesis.grids import save_sample_grid
from raygan.synthesis.records import decode_png


def overview_from_shards(shards_dir: Path, path: Path, per_class: int = 10) -> int:
    """A grid with one row per class, decoded straight from the parquet shards; returns rows read."""
    table = pq.read_table(shards_dir, columns=["image", "label"])
    labels = np.asarray(table["label"].to_pylist())
    images = png_bytes(table["image"])  # Hugging Face's Image struct, or the bare bytes of older shards
    rows = []
    for label in sorted(set(labels.tolist())):
        for i in np.flatnonzero(labels == label)[:per_class]:
            arr = decode_png(images[i]).astype(np.float32) / 127.5 - 1.0
            rows.append(torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)))
    save_sample_grid(torch.stack(rows), path)
    return table.num_rows


def demo_summary(cfg: Config, result: dict, seconds: float) -> str:
    run = RunFolder(Path(result["run_dir"]))
    manifest = run.manifest()
    shards = manifest["shards"]
    overview = run.path / "plots" / "overview.png"
    n_rows = overview_from_shards(run.path / "shards", overview) if "image" in shards["columns"] \
        else shards["rows"]
    first = next(iter(shards["counts"]))
    trained = result["trained_now"]
    lines = [
        "",
        "raygan demo: summary",
        f"  data            {cfg.data.name}: {len(shards['counts'])} classes (real val/test splits "
        "held out, never seen by a GAN)",
        f"  ensemble        {cfg.ensemble.method}, T = {cfg.ensemble.members} members per class, "
        f"{len(result['members'])} members ({trained} trained now, "
        f"{len(result['members']) - trained} reused) as Ray tasks",
        f"  synthetic set   {n_rows} rows in {len(shards['files'])} parquet files; N_g = N real per "
        f"class, p_t N_g from member t: e.g. class {first} -> {shards['counts'][first]}",
        f"  shards          {run.path / 'shards'} (read with pyarrow.parquet.read_table)",
        f"  member grids    {run.path}/members/<class>/<member>/samples.png",
        f"  overview        {overview} (one row per class, decoded from the shards)",
        f"  time            {seconds:.0f}s",
    ]
    ev = result.get("evaluation")
    if ev:
        curve = "  ".join(f"T={r['T']}: {100 * r['test_acc_mean']:.1f} ± {100 * r['test_acc_std']:.1f}"
                          for r in ev["tstr_curve"])
        lines[-1:-1] = [
            f"  accuracy        {ev['classifier']} on the real test split, {ev['repeats']} repeats: "
            f"real (TRTR) {100 * ev['trtr']['test_acc_mean']:.1f} %; synthetic (TSTR) {curve} %",
            f"  report          {result['report']}",
        ]
    privacy = run.path / "audit" / "privacy.json"
    if privacy.exists():
        audit = json.loads(privacy.read_text())
        if audit["verdict"] == "pass":
            auroc = audit["mia_auroc"].get("pixel")
            text = (f"PASS: no copies of training images found; membership-inference AUROC "
                    f"{'n/a' if auroc is None else format(auroc, '.2f')} (0.5 = no leak)")
        else:
            text = f"WARN: {audit['reasons'][0]}"
        lines[-1:-1] = [f"  audit           {text}; {privacy}"]
    if result.get("timing"):  # eval/timing.json, from raygan.reporting.stages
        lines.append(f"  stages          {stage_line(result['timing'])}")
    summary = "\n".join(lines)
    atomic_write_text(run.path / "summary.txt", summary + "\n")
    return summary
