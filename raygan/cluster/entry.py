"""Shared entry for `jobs/*.py` (ray job submit) and the `raygan train|synth|pipeline` commands."""
from __future__ import annotations

import argparse
import sys

from raygan.config import ConfigError, load_config

JOBS = {"train": ("pipeline", "run_train"), "synthesize": ("pipeline", "run_synth"),
        "evaluate": ("pipeline", "run_evaluate"), "pipeline": ("pipeline", "run_pipeline"),
        "sweep": ("sweep", "run_sweep"),
        "audit": ("audit", "run_audit")}


def job_parser(job: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"jobs/{job}.py", description=f"raygan {job} job")
    p.add_argument("--config", default=None, help="YAML file of deltas from the defaults")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override, e.g. --set ensemble.members=5 (repeatable)")
    p.add_argument("--preset", dest="config_preset", default=None,
                   help="a preset named in the config file's presets: section (e.g. paper)")
    p.add_argument("--address", default=None, help="Ray cluster address (else RAY_ADDRESS, else local)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    return p


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


def job_main(job: str, argv: list[str] | None = None) -> int:
    return run_job(job, job_parser(job).parse_args(argv))
