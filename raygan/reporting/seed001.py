"""Seed 001's Table 1 from a protocol sweep: our grid beside the paper's numbers (Ray-free).

Slim, "Boosting generative networks for incremental learning", Table 1: a ResNet trained on the
samples of one BigGAN (CIFAR-10), on a fixed set or on the fly, with or without data transformations,
sample filtering (rho = 0.9) and the truncated normal (tau = 1.5); the real baseline 94.26 %. The
paper gives "the best accuracy over the whole training session" (the best test epoch); raygan's figure
is the test accuracy at the best *validation* epoch, and the paper's kind is shown beside it.

``write_table1`` takes the sweep's trial rows (raygan.sweeps.classifier.trial_row), groups them by
cell (and by every other swept setting but the seed), and writes <run>/eval/table1_seed001.md and
.json: mean +- std over the sweep.num_samples repeats of each cell, its training data's source
(shards or regenerated), the filter's kept fraction, and the real baseline (the reference classifier).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from raygan.config import Config
from raygan.config.protocol_cells import protocol_cells, signature
from raygan.runs import atomic_write_text

logger = logging.getLogger(__name__)

PAPER = 'Slim, "Boosting generative networks for incremental learning", Table 1 (one BigGAN, CIFAR-10)'
PAPER_BASELINE = 94.26
# (on the fly, transformations, filtering, truncation) -> accuracy (%), in the table's column order.
PAPER_TABLE1 = {
    (False, False, False, False): 62.26, (False, True, False, False): 79.76,
    (False, False, True, False): 67.98, (False, False, False, True): 59.35,
    (False, True, True, False): 83.84, (False, True, True, True): 78.02,
    (True, False, False, False): 59.48, (True, True, False, False): 84.25,
    (True, False, True, False): 66.50, (True, False, False, True): 56.98,
    (True, True, True, False): 88.56, (True, True, True, True): 83.85,
}
_FIGURES = (("test", "test_acc_at_best_val"), ("best_test", "best_test_acc"), ("val", "best_val_acc"))


def _stats(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std())} if len(a) else {"mean": None, "std": None}


def _setting(config: dict) -> dict:
    """The swept settings of a trial other than its cell and seed (one table per distinct setting)."""
    return {k: v for k, v in sorted(config.items()) if k not in ("protocol", "seed", "synthetic_only")}


def table1_cells(cells: list[dict], trials: list[dict]) -> list[dict]:
    """One entry per setting: {"setting", "cells": [cell + the paper's figure + ours over repeats]}."""
    settings: dict[str, dict] = {}
    for t in trials:
        setting = _setting(t["config"])
        group = settings.setdefault(json.dumps(setting, sort_keys=True), {"setting": setting, "trials": {}})
        group["trials"].setdefault(t["config"]["protocol"]["name"], []).append(t)
    out = []
    for group in settings.values():
        rows = []
        for cell in cells:
            runs = group["trials"].get(cell["name"], [])
            done = [t for t in runs if t["status"] == "TERMINATED" and t.get("test_acc_at_best_val") is not None]
            row = {**cell, "paper": PAPER_TABLE1.get(signature(cell)), "repeats": len(done),
                   "errors": len(runs) - len(done),
                   "sources": sorted({t["train_source"] for t in done if t.get("train_source")}),
                   "epochs_run": sorted({t["epochs_run"] for t in done if t.get("epochs_run") is not None})}
            for name, key in _FIGURES:
                row[name] = _stats([100.0 * t[key] for t in done if t.get(key) is not None])
            kept = [t["kept_fraction"] for t in done if t.get("kept_fraction") is not None]
            row["kept_fraction"] = float(np.mean(kept)) if kept else None
            rows.append(row)
        out.append({"setting": group["setting"], "cells": rows})
    return out


def _pm(stats: dict) -> str:
    return "n/a" if stats["mean"] is None else f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def _on(value, text: str) -> str:
    return f"✓ {text}" if value else "-"


def format_table1(table: dict) -> str:
    """Markdown: Table 1's layout (a column per cell, fixed set then on the fly, the baseline last),
    the paper's row beside ours, one table per swept setting."""
    base = table.get("baseline") or {}
    parts = [f"{PAPER}, ours beside the paper's. Ours: {table['dataset']}, "
             "accuracy (%) on the real test split, mean ± std over the repeats; \"ours\" is the test "
             "accuracy at the best real-validation epoch, \"best epoch\" the best test epoch's (the "
             "paper's figure). Baseline: the reference classifier (eval.* settings, one run) trained "
             "on the real training split, which is also the filter's classifier."]
    for group in table["settings"]:
        cells = group["cells"]
        setting = ", ".join(f"{k}={v}" for k, v in group["setting"].items())
        columns = [("on the fly" if c["on_the_fly"] else "fixed set") for c in cells] + ["baseline"]
        rows = [
            ("Cell", [c["name"] for c in cells] + ["real"]),
            ("Data transformations", [_on(c["augment"] != "none", c["augment"]) for c in cells]
             + [base.get("augment", "-")]),
            ("Sample filtering", [_on(c["filter_rho"] is not None, f"{c['filter_rho']:g}" if
                                      c["filter_rho"] is not None else "") for c in cells] + [""]),
            ("Truncated normal", [_on(c["truncation"] is not None, f"{c['truncation']:g}" if
                                      c["truncation"] is not None else "") for c in cells] + [""]),
            ("Paper (%)", [f"{c['paper']:.2f}" if c["paper"] is not None else "n/a" for c in cells]
             + [f"{PAPER_BASELINE:.2f}"]),
            ("Ours (%)", [_pm(c["test"]) for c in cells]
             + [f"{100 * base['test_acc']:.2f}" if base else "n/a"]),
            ("Ours, best epoch (%)", [_pm(c["best_test"]) for c in cells]
             + [f"{100 * base['best_test_acc']:.2f}" if base else "n/a"]),
            ("Ours, validation (%)", [_pm(c["val"]) for c in cells]
             + [f"{100 * base['val_acc']:.2f}" if base else "n/a"]),
            ("Repeats", [f"{c['repeats']}" + (f" ({c['errors']} failed)" if c["errors"] else "") for c in cells]
             + ["1"]),
            ("Epochs run", [",".join(map(str, c["epochs_run"])) or "-" for c in cells]
             + [str(base.get("epochs", "-"))]),
            ("Training data", [",".join(c["sources"]) or "-" for c in cells] + ["real"]),
            ("Kept by the filter", [f"{100 * c['kept_fraction']:.1f} %" if c["kept_fraction"] is not None
                                    else "-" for c in cells] + ["-"]),
        ]
        lines = [f"\n{setting}\n", "| | " + " | ".join(columns) + " |",
                 "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {label} | " + " | ".join(values) + " |" for label, values in rows]
        parts.append("\n".join(lines))
    return "\n".join(parts) + "\n"


def write_table1(run_dir: Path, cfg: Config, trials: list[dict], *, baseline: Optional[dict]) -> dict:
    """Write <run>/eval/table1_seed001.md and .json from the sweep's trials; returns the table and paths."""
    table = {"paper": PAPER, "paper_baseline": PAPER_BASELINE, "dataset": cfg.data.name,
             "sweep": cfg.sweep.name, "repeats": cfg.sweep.num_samples, "baseline": baseline,
             "settings": table1_cells(protocol_cells(cfg), trials)}
    text = format_table1(table)
    md, js = Path(run_dir) / "eval" / "table1_seed001.md", Path(run_dir) / "eval" / "table1_seed001.json"
    atomic_write_text(js, json.dumps(table, indent=2))
    atomic_write_text(md, text)
    logger.info(f"sweep {cfg.sweep.name}: seed 001's Table 1 beside ours in {md} (and {js.name})")
    return {"markdown": str(md), "json": str(js), "table": text}


__all__ = ["PAPER", "PAPER_BASELINE", "PAPER_TABLE1", "format_table1", "table1_cells", "write_table1"]
