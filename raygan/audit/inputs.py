"""What the memorisation audit reads, checked before it starts (the audit itself: raygan.audit.run).

Whether a run can be audited at all (images only), that its folder holds a config and synthetic
shards, the per-class inputs (training split, real holdout split, synthetic rows sorted by member),
the run's domain classifier, and the key that tells whether audit/privacy.json is up to date (the
shards' sha256, checked against the manifest's record).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from raygan.audit.statistics import SPACES
from raygan.config import Config, ConfigError
from raygan.data import is_points
from raygan.runs import RunFolder, sha256_file


# --- the run folder ---------------------------------------------------------------------------------
def applicable(cfg: Config) -> bool:
    """Only images are audited: the 2D grid's points have no training images to copy."""
    return not is_points(cfg.data.name)


def check_run(run_dir: str | Path) -> RunFolder:
    """The run folder with its config and synthetic shards, or a ConfigError saying what to do."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"run folder {path} does not exist; pass <output.root>/<experiment>/<run> of "
                          "a trained run")
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{path} is not a raygan run folder (no config.yaml); pass "
                          "<output.root>/<experiment>/<run>")
    shards = path / "shards"
    if not shards.is_dir() or not any(shards.glob("*.parquet")):
        raise ConfigError(f"{shards} holds no synthetic shards; run `raygan synthesize` (or the "
                          "pipeline) for this run first")
    return RunFolder(path)


def check_config(cfg: Config) -> None:
    unknown = [s for s in cfg.audit.spaces if s not in SPACES]
    if unknown or not cfg.audit.spaces:
        raise ConfigError(f"audit.spaces: {cfg.audit.spaces!r}; choose one or more of {', '.join(SPACES)}")


def check_holdout(cfg: Config, dataset) -> None:
    """Every class has the 2 real holdout images the audit needs (its reference distances) in the split
    audit.holdout names; else one line saying which split would have them, or that neither does. The
    pipeline calls it before training, the audit before it reads anything else."""
    splits = {"test": dataset.test[1], "val": dataset.val[1]}
    chosen = cfg.audit.holdout
    other = "val" if chosen == "test" else "test"
    for k, name in enumerate(dataset.classes):
        have = {split: int((y == k).sum()) for split, y in splits.items()}
        have["val+test"] = have["val"] + have["test"]
        if have[chosen] >= 2:
            continue
        counts = f"class {name!r} has {have['test']} test and {have['val']} validation image(s)"
        fix = next((split for split in (other, "val+test") if split != chosen and have[split] >= 2), None)
        if fix:
            raise ConfigError(f"audit.holdout={chosen}: {counts}, and the audit needs at least 2 in its "
                              f"holdout split; set audit.holdout={fix}")
        raise ConfigError(f"audit.holdout={chosen}: {counts}, and the audit needs at least 2 in its holdout "
                          f"split, which neither split has; raise data.test_fraction (or data."
                          f"val_fraction with audit.holdout=val), add images to the class, or set "
                          f"audit.enabled=false")


def holdout_split(cfg: Config, dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the split audit.holdout names: test, val, or both (val+test, val first)."""
    if cfg.audit.holdout == "val+test":
        return tuple(torch.cat([v, t]) for v, t in zip(dataset.val, dataset.test))
    return dataset.test if cfg.audit.holdout == "test" else dataset.val


@dataclass
class ClassInputs:
    name: str
    train: torch.Tensor
    holdout: torch.Tensor
    synthetic: torch.Tensor
    members: np.ndarray      # sorted ascending
    shard_index: np.ndarray
    canaries: object = None  # data.canaries: the class's raygan.data.canaries.ClassCanaries


def load_inputs(cfg: Config, run: RunFolder, dataset=None) -> list[ClassInputs]:
    """Per class: the training split, the holdout split and the synthetic rows with their members."""
    import pyarrow.parquet as pq

    from raygan.data import load_dataset
    from raygan.data.shards import read_shards

    shard_checksums(run)  # before reading them: the set audited is the set the manifest records
    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    x, y, _ = read_shards(run.path / "shards", classes=dataset.classes)
    # read_shards sorts rows by (label, member, index) but returns no member column: read it, sorted alike
    keys = pq.read_table(str(run.path / "shards"), columns=["label", "member", "index"],
                         partitioning=None).sort_by([("label", "ascending"), ("member", "ascending"),
                                                     ("index", "ascending")])
    labels, members, index = (keys[c].to_numpy() for c in ("label", "member", "index"))
    if not np.array_equal(labels, y.numpy()):
        raise ValueError(f"{run.path / 'shards'}: labels disagree between the image and key columns")
    if tuple(x.shape[1:]) != tuple(dataset.sample_shape):
        raise ConfigError(f"synthetic images {tuple(x.shape[1:])} do not match the real ones "
                          f"{tuple(dataset.sample_shape)}; resynthesize the run with its own data config")
    check_holdout(cfg, dataset)
    hx, hy = holdout_split(cfg, dataset)
    out, cap = [], cfg.audit.max_synthetic_per_class
    for k, name in enumerate(dataset.classes):
        holdout = hx[hy == k]
        rows = np.flatnonzero(labels == k)
        if not len(rows):
            raise ConfigError(f"{run.path / 'shards'} holds no synthetic rows of class {name}; "
                              "resynthesize the run (raygan synthesize)")
        if cap is not None:  # the first `cap` rows of each member (rows are sorted by index)
            rank = np.arange(len(rows)) - np.searchsorted(members[rows], members[rows])
            rows = rows[rank < cap]
        out.append(ClassInputs(name, dataset.train[name], holdout, x[rows], members[rows], index[rows],
                               (dataset.canaries or {}).get(name)))
    return out


def domain_model(dataset, run: RunFolder, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The run's domain classifier (trained on the real training split once, cached in eval/)."""
    from raygan.metrics.domain import run_domain_classifier

    return run_domain_classifier(dataset, run.path, device=str(device)).cpu()


def shard_checksums(run: RunFolder) -> dict[str, str]:
    """sha256 of every shard file, checked against the manifest's record of the shards where it has one
    (a shard changed, added or lost since synthesis is a ConfigError: the audit would certify another set)."""
    files = {f.name: sha256_file(f) for f in sorted((run.path / "shards").glob("*.parquet"))}
    recorded = {name: info.get("sha256") for name, info in
                ((run.manifest().get("shards") or {}).get("files") or {}).items()}
    if recorded and files != recorded:
        bad = sorted(n for n in set(files) | set(recorded) if files.get(n) != recorded.get(n))
        raise ConfigError(f"{run.path / 'shards'}: {', '.join(bad)} differ(s) from the manifest's record of "
                          "the shards (changed, added or missing since synthesis); remake them with "
                          "`raygan synthesize` for this run")
    return files


def inputs_key(cfg: Config, run: RunFolder) -> dict:
    """What privacy.json was computed from (shard checksums, not mtimes, so a URI run's freshly pulled
    copies still match): a rerun with the same key skips the audit."""
    return {"shards": shard_checksums(run), "audit": cfg.to_dict()["audit"], "data": cfg.to_dict()["data"]}


def up_to_date(cfg: Config, run: RunFolder) -> bool:
    path = run.path / "audit" / "privacy.json"
    if not path.exists() or not (run.path / "audit" / "closest_pairs.png").exists():
        return False
    try:
        return json.loads(path.read_text()).get("inputs") == json.loads(json.dumps(inputs_key(cfg, run)))
    except json.JSONDecodeError:
        return False

