"""The jobs behind `raygan train|synthesize|evaluate|pipeline|sweep|audit` (and `python -m raygan ...`,
what `ray job submit` runs): resolve the config, check what can be checked, run one job function."""
from __future__ import annotations

import argparse
import sys

from raygan.config import ConfigError, load_config

JOBS = {"train": ("pipeline", "run_train"), "synthesize": ("pipeline", "run_synth"),
        "evaluate": ("pipeline", "run_evaluate"), "pipeline": ("pipeline", "run_pipeline"),
        "sweep": ("sweep", "run_sweep"),
        "audit": ("audit", "run_audit")}


def run_job(job: str, args: argparse.Namespace) -> int:
    import importlib

    module, function = JOBS[job]
    try:
        cfg = load_config(args.config, args.overrides, getattr(args, "config_preset", None))
        from raygan.metrics.quality import validate_metrics
        validate_metrics(cfg)  # unknown metric names, missing Inception weights: before any work
        print(f"# raygan {job}: resolved config\n{cfg.to_yaml()}", flush=True)
        if args.dry_run:
            return 0
        getattr(importlib.import_module(f"raygan.cluster.{module}"), function)(cfg, address=args.address)
    except ConfigError as err:
        print(f"raygan: config error: {err}", file=sys.stderr)
        return 2
    return 0
