"""`raygan export`: a run's synthetic shards as a folder of PNG files that other tools read, with provenance.

The imagefolder format is ``DIR/<class>/<member>-<index>.png``, one file per shard row, which
``torchvision.datasets.ImageFolder`` loads as it is: folder names are the run's class names, and since
ImageFolder numbers the folders in sorted order, export.json states both numberings (the run's labels and
ImageFolder's indices). ``DIR/provenance.csv`` holds one row per file (class, member, index, method,
seed, run, raygan version, config hash) and ``DIR/export.json`` the run, the counts per class and the
memorisation audit's verdict with its numbers.

What is exported is the shipped set (DESIGN principle 13): the shards' files are checked against the
manifest's sha256 records first, then read through raygan.data.shards (the one decoder) and written
again with raygan.synthesis.records.encode_png, which gives back the shards' own PNG bytes. A run whose
audit did not pass, or that has none, or whose audit predates its shards, is refused unless ``force``.
Everything is checked before any work; the files are written into a temporary sibling of DIR that is
renamed into place at the end and removed on failure, so DIR is either absent, empty or complete.
The config hash is the sha256 of the run's config.yaml (raygan records no other hash of the config).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from raygan import __version__, provenance
from raygan.config import ConfigError
from raygan.data.shards import ShardRows, read_shard_rows
from raygan.ensemble.collapse import kept_collapsed
from raygan.privacy.ledger import release_claim
from raygan.runs import RunFolder, atomic_write_bytes, atomic_write_text, sha256_file

logger = logging.getLogger(__name__)

FORMATS = ("imagefolder",)
NOT_AUDITED, OUT_OF_DATE = "not audited", "out of date"
PROVENANCE_COLUMNS = ["file", "class", "label", "imagefolder_index", "member", "index", "method", "seed",
                      "collapsed", "run", "raygan_version", "config_hash"]


def check_out(out: str | os.PathLike) -> Path:
    """The export folder: absent or empty, else a ConfigError naming the fix."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose another --out (a folder that does not exist yet)")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; choose another --out or delete it")
    return out


@dataclass
class Audit:
    """The run's audit as export sees it: verdict pass / warn / not audited / out of date."""
    verdict: str
    privacy: Optional[dict]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def read_audit(run: RunFolder, checksums: dict[str, str]) -> Audit:
    """audit/privacy.json; out of date when it was computed from other shards than these."""
    path = run.path / "audit" / "privacy.json"
    if not path.is_file():
        return Audit(NOT_AUDITED, None)
    try:
        privacy = json.loads(path.read_text())
        verdict = str(privacy["verdict"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not an audit result ({type(err).__name__}); rerun `raygan audit "
                          f"{run.location} --force`") from err
    if (privacy.get("inputs") or {}).get("shards") != checksums:
        return Audit(OUT_OF_DATE, privacy)
    return Audit(verdict, privacy)


def refusal(audit: Audit, location: str) -> str:
    """The one line that refuses to export a run whose audit did not pass."""
    if audit.verdict == NOT_AUDITED:
        return (f"{location} has no memorisation audit (audit/privacy.json); run `raygan audit {location}` "
                "first, or pass --force to export it unaudited")
    if audit.verdict == OUT_OF_DATE:
        return (f"the audit of {location} was computed from other shards than the run's current ones; "
                f"rerun `raygan audit {location}`, or pass --force to export it anyway")
    reasons = audit.privacy.get("reasons") or []
    why = f" ({len(reasons)} reason(s), first: {reasons[0]})" if reasons else ""
    return (f"the audit of {location} gave verdict {audit.verdict.upper()}{why}; review audit/privacy.json "
            f"and audit/closest_pairs.png and remake the run until `raygan audit` passes, or pass --force "
            "to export it anyway")


def audit_summary(audit: Audit) -> dict:
    """export.json's audit section: the verdict and the numbers it was made of."""
    out: dict = {"verdict": audit.verdict}
    p = audit.privacy
    if p is None:
        return out
    if audit.verdict == OUT_OF_DATE:
        out["verdict_of_older_shards"] = p.get("verdict")
    out.update({"reasons": p.get("reasons", []), "holdout": p.get("holdout"), "spaces": p.get("spaces"),
                "thresholds": p.get("thresholds"), "mia_auroc": p.get("mia_auroc"), "classes": {}})
    for name, c in (p.get("classes") or {}).items():
        out["classes"][name] = {"verdict": c.get("verdict"), "n_synthetic_audited": c.get("n_synthetic"),
                                "spaces": {space: {k: s["synthetic"].get(k) for k in (
                                    "fraction_below_p1", "fraction_below_p5", "near_duplicates",
                                    "mia_auroc")} for space, s in (c.get("spaces") or {}).items()}}
    return out


def check_run(run_dir: str | Path) -> tuple[RunFolder, dict, dict[str, str]]:
    """(run, manifest, shard checksums) of an image run with complete shards; else a ConfigError."""
    from raygan.audit.inputs import check_run as check_audit_run
    from raygan.audit.inputs import shard_checksums
    from raygan.data import is_points

    path = Path(run_dir)
    saved = RunFolder(path).saved_config() if (path / "config.yaml").is_file() else None
    if saved is not None and is_points(saved["data"]["name"]):
        raise ConfigError(f"{path} is a run on {saved['data']['name']}, whose samples are points, not "
                          "images; read its parquet shards (raygan.data.shards.read_shards) instead")
    run = check_audit_run(path)  # a folder with config.yaml and shards/*.parquet
    manifest = run.manifest()
    if not (manifest.get("shards") or {}).get("files"):
        raise ConfigError(f"{run.path} has shards that its manifest does not record; remake them with "
                          "`raygan synthesize` for this run")
    return run, manifest, shard_checksums(run)  # every file against the manifest's sha256


def _class_names(rows: ShardRows, manifest: dict, run: RunFolder) -> list[str]:
    """The class names in label order, once the rows per class and member are the manifest's."""
    counts = manifest["shards"].get("counts") or {}
    found: dict[str, dict[str, int]] = {}
    for k, t in zip(rows.y.tolist(), rows.member.tolist()):
        per = found.setdefault(rows.classes[k], {})
        per[str(t)] = per.get(str(t), 0) + 1
    if found != counts:
        raise ConfigError(f"the shards of {run.path} hold {found} rows per class and member, the manifest "
                          f"{counts}; remake them with `raygan synthesize` for this run")
    bad = [n for n in rows.classes if n in ("", ".", "..") or any(c in n for c in "/\\\0")]
    if bad:
        raise ConfigError(f"class name(s) {bad} cannot name a folder; export needs class names without "
                          "slashes (set them in the run's data config and remake the run)")
    return rows.classes


def collapsed_members(manifest: dict) -> list[dict]:
    """The members that collapse detection flagged and that were kept (ensemble.on_collapse=warn): their
    rows are in the shards (whose files say so too, raygan.synthesis.shards.collapse_flag)."""
    return [{"class": e["class"], "member": int(e["member"]), "diversity": e["diversity"],
             "threshold": e["collapse"]["threshold"]}
            for _, e in sorted(manifest.get("members", {}).items()) if kept_collapsed(e)]


def write_imagefolder(folder: Path, rows: ShardRows, *, run_fields: dict,
                      flagged: frozenset = frozenset()) -> list[dict]:
    """One PNG per row under folder/<class>/; returns the provenance rows in file order (``flagged``:
    the (class, member) pairs of collapsed members kept in the set, whose rows say collapsed=true)."""
    from raygan.synthesis.records import encode_png

    index_of = {name: i for i, name in enumerate(sorted(rows.classes))}  # ImageFolder's numbering
    out, batch = [], 256
    for start in range(0, len(rows.y), batch):
        pngs = encode_png(rows.x[start:start + batch])
        for i, png in enumerate(pngs, start=start):
            name = rows.classes[int(rows.y[i])]
            rel = f"{name}/{int(rows.member[i])}-{int(rows.index[i])}.png"
            if (folder / rel).exists():
                raise ValueError(f"two shard rows map to {rel}: (member, index) must be unique per class")
            atomic_write_bytes(folder / rel, png)
            out.append({"file": rel, "class": name, "label": int(rows.y[i]),
                        "imagefolder_index": index_of[name], "member": int(rows.member[i]),
                        "index": int(rows.index[i]), "method": rows.method[i], "seed": int(rows.seed[i]),
                        "collapsed": str((name, int(rows.member[i])) in flagged).lower(), **run_fields})
    return out


def _csv(records: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PROVENANCE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def export_run(run_dir: str | Path, out: str | os.PathLike, *, location: Optional[str] = None,
               force: bool = False, fmt: str = "imagefolder") -> dict:
    """Export the shards of the run at ``run_dir`` (``location``: its URI, for a mirrored run) to ``out``;
    returns export.json's content. Refused before any work: an unknown format, a non-empty ``out``, a
    points run, shards unlike the manifest, and unless ``force`` a run whose audit did not pass."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    out = check_out(out)
    run, manifest, checksums = check_run(run_dir)
    location = location or str(run.path)
    if out.resolve().is_relative_to(run.path.resolve()):
        raise ConfigError(f"--out {out} lies inside the run folder {run.path}; choose an --out outside it")
    audit = read_audit(run, checksums)
    if not audit.passed and not force:
        raise ConfigError(refusal(audit, location))
    rows = read_shard_rows(run.path / "shards")
    if rows.x.dim() != 4:
        raise ConfigError(f"the shards of {run.path} hold points, not images; read its parquet shards "
                          "(raygan.data.shards.read_shards) instead")
    classes = _class_names(rows, manifest, run)
    made_by = (manifest.get("raygan") or {}).get("version") or __version__
    config_hash = f"sha256:{sha256_file(run.path / 'config.yaml')}"
    staging = out.parent / f".{out.name}.tmp{os.getpid()}"  # a sibling: the final rename stays on one disk
    if staging.exists():  # left by a killed export of a process with this pid
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        collapsed = collapsed_members(manifest)
        records = write_imagefolder(staging, rows, run_fields={
            "run": location, "raygan_version": made_by, "config_hash": config_hash},
            flagged=frozenset((c["class"], c["member"]) for c in collapsed))
        counts = {name: sum(r["class"] == name for r in records) for name in classes}
        summary = {"format": fmt, "run": location, "raygan_version": made_by, "config_hash": config_hash,
                   "exported_by": provenance(), "files": len(records), "counts": counts,
                   "classes": classes, "labels": {name: k for k, name in enumerate(classes)},
                   "imagefolder_class_to_idx": {name: i for i, name in enumerate(sorted(classes))},
                   "shards": checksums, "audit": {**audit_summary(audit), "forced": not audit.passed},
                   "privacy": release_claim(manifest.get("privacy")), "collapsed_members": collapsed}
        atomic_write_text(staging / "provenance.csv", _csv(records))
        atomic_write_text(staging / "export.json", json.dumps(summary, indent=2))
        os.replace(staging, out)  # an empty out (checked above) is replaced whole
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.debug(f"export: {len(records)} files of {location} under {out} (audit {audit.verdict})")
    return summary


def summary_line(summary: dict, out: str | os.PathLike) -> str:
    """What `raygan export` prints: files per class, the folder and the verdict."""
    per = ", ".join(f"{name} {n}" for name, n in summary["counts"].items())
    verdict = summary["audit"]["verdict"]
    shown = verdict.upper() if verdict in ("pass", "warn") else verdict
    return f"export: {summary['files']} files ({per}) -> {out}; audit: {shown}"


__all__ = ["FORMATS", "NOT_AUDITED", "OUT_OF_DATE", "check_out", "export_run", "read_audit", "summary_line"]
