"""The whole memorisation audit of a run folder in one process, without Ray: inputs, the per-class
search, then privacy.json, the figure and the verdict (``finish`` is shared with the Ray path).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import torch

from raygan.audit.inputs import (
    ClassInputs,
    applicable,
    check_config,
    check_run,
    domain_model,
    inputs_key,
    load_inputs,
    up_to_date,
)
from raygan.audit.render import format_verdict, plot_closest_pairs
from raygan.audit.statistics import ClassAudit, audit_class, closest_pairs, summarise
from raygan.config import Config
from raygan.gan.train import resolve_device
from raygan.progress import track
from raygan.runs import RunFolder, atomic_write_text

logger = logging.getLogger(__name__)


def run_dp(cfg: Config, run: RunFolder) -> Optional[tuple[float, float]]:
    """The (epsilon, delta) the attacks check: the run's privacy ledger's (what its members spent), or
    None without privacy; a run trained under privacy whose ledger is missing checks the target."""
    ledger = run.manifest().get("privacy")
    if ledger:
        return float(ledger["epsilon"]), float(ledger["delta"])
    if cfg.privacy.epsilon is None:
        return None
    logger.warning("audit: privacy.epsilon is set but the run has no privacy ledger; the attacks check the "
                   "target epsilon at delta 0")
    return float(cfg.privacy.epsilon), 0.0


def finish(cfg: Config, run: RunFolder, inputs: list[ClassInputs], audits: list[ClassAudit], *,
           dataset_name: str) -> dict:
    """Summary, figure, audit/privacy.json (atomic) and the printed verdict."""
    privacy = summarise(audits, cfg, dataset_name=dataset_name, dp=run_dp(cfg, run))
    for c in inputs:
        privacy["classes"][c.name]["n_holdout"] = int(len(c.holdout))
    if "pixel" in cfg.audit.spaces:
        privacy["closest_pairs"] = closest_pairs(audits, cfg.ensemble.method, cfg.audit.pairs_in_figure)
        plot_closest_pairs(privacy["closest_pairs"], inputs, run.path / "audit" / "closest_pairs.png")
        privacy["figure"] = "audit/closest_pairs.png"
    privacy["inputs"] = inputs_key(cfg, run)
    atomic_write_text(run.path / "audit" / "privacy.json", json.dumps(privacy, indent=2))
    run.update_manifest(audit="audit/privacy.json")
    logger.info(format_verdict(privacy))
    return privacy


def audit_run(cfg: Config, run_dir: str | Path, *, device: str | torch.device = "auto", dataset=None,
              force: bool = False) -> Optional[dict]:
    """The whole audit in this process (no Ray); None when it does not apply (points, not images)."""
    check_config(cfg)
    run = check_run(run_dir)
    if not applicable(cfg):
        logger.info(f"audit: not applicable to {cfg.data.name} (points, not images); nothing written")
        return None
    if not force and up_to_date(cfg, run):
        logger.info(f"audit: {run.path / 'audit' / 'privacy.json'} is up to date with the shards; skipped")
        return json.loads((run.path / "audit" / "privacy.json").read_text())
    from raygan.data import load_dataset

    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    inputs = load_inputs(cfg, run, dataset)
    model = domain_model(dataset, run, resolve_device(device)) if "domain" in cfg.audit.spaces else None
    audits = [audit_class(c.name, c.train, c.holdout, c.synthetic, c.members, shard_index=c.shard_index,
                          spaces=cfg.audit.spaces, domain_model=model,
                          chunk_size=cfg.audit.chunk_size, device=device, canaries=c.canaries)
              for c in track(inputs, "audit", unit="class")]
    return finish(cfg, run, inputs, audits, dataset_name=dataset.name)

