"""The manifest of a run folder and the checksums it records: reading it (a corrupt one is a one-line
ConfigError), checking a file against its sha256 before use, what to do about a bad member file, and
the records ``RunFolder.pull`` compares local copies with.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from raygan.config import ConfigError
from raygan.runs.storage import sha256_file, uri_of


def read_manifest(path: Path) -> dict[str, Any]:
    """A manifest.json, or a one-line ConfigError when it is not the JSON object raygan writes."""
    try:
        manifest = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); restore it from storage or a backup, or "
                          "start over with a new output.run") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("members", {}), dict):
        raise ConfigError(f"{path} is not a raygan manifest (no members object); restore it or start "
                          "over with a new output.run")
    manifest.setdefault("members", {})
    return manifest


def check_run_exists(path: Path, location: str) -> None:
    """A one-line ConfigError unless the run folder holds a run (config.yaml or manifest.json): a job that
    reads a run (evaluate) names the folder and the jobs that make it, not a later stage's file."""
    if not (Path(path) / "manifest.json").exists() and not (Path(path) / "config.yaml").exists():
        raise ConfigError(f"run folder {location} does not exist (no config.yaml or manifest.json there): "
                          "nothing was trained under this output.root, output.experiment and output.run; "
                          "run `raygan train` and `raygan synthesize` (or `raygan pipeline`) with this "
                          "config first, or point output.* at an existing run")


def member_fix(path: Path) -> str:
    """What to do about a bad file of a run folder: for a member's file, retrain that member."""
    path = Path(path)
    if len(path.parents) > 3 and path.parents[2].name == "members":
        return (f"retrain that member by deleting its folder {path.parent} and rerunning raygan train "
                "(the manifest then counts it as not done)")
    if path.parent.name == "shards":
        return "remake the shards with `raygan synthesize` for this run"
    return "delete the file and rerun the job that makes it"


def check_sha256(path: Path, expected: str, *, where: Optional[str] = None) -> None:
    """ConfigError unless ``path`` is there and its sha256 is ``expected`` (the manifest's record)."""
    name = where or str(path)
    if not Path(path).is_file():
        raise ConfigError(f"{name} is missing; {member_fix(Path(path))}")
    actual = sha256_file(path)
    if actual != expected:
        raise mismatch(name, actual, expected, Path(path))


def mismatch(name: str, actual: str, expected: str, path: Path) -> ConfigError:
    """The one-line error for a file whose sha256 is not the manifest's record."""
    return ConfigError(f"{name} has sha256 {actual[:12]}..., not the {expected[:12]}... the run's manifest "
                       f"records (changed or replaced since it was made); {member_fix(path)}")


def verify_member_file(path: Path) -> None:
    """A generator file of a local run folder, checked against its manifest's sha256 before use.

    A URI run's mirror is left to RunFolder.fetch, which checks what it is given: a worker's mirror may
    hold an older manifest than storage's.
    """
    path = Path(path)
    if len(path.parents) <= 3 or path.parents[2].name != "members" or uri_of(path.absolute()) is not None:
        return
    run = path.parents[3]
    if not (run / "manifest.json").is_file():
        return
    rel = path.relative_to(run).as_posix()
    for entry in read_manifest(run / "manifest.json")["members"].values():
        if entry.get("generator") == rel and entry.get("status") == "complete" and entry.get("generator_sha256"):
            check_sha256(path, entry["generator_sha256"])
            return


def _records(fs, manifest: str) -> dict[str, dict]:
    """{relative path: {"sha256", "bytes" if known}} of the files the manifest in storage records
    (generators and shards); empty when storage has no readable manifest."""
    try:
        with fs.open_input_stream(manifest) as f:
            found = json.loads(f.read())
    except (OSError, ValueError):  # not there yet, or not JSON: nothing is skipped
        return {}
    out = {e["generator"]: {"sha256": e["generator_sha256"]} for e in found.get("members", {}).values()
           if isinstance(e, dict) and e.get("status") == "complete" and e.get("generator")
           and e.get("generator_sha256")}  # a member being retrained has a new file coming
    for name, info in ((found.get("shards") or {}).get("files") or {}).items():
        out[f"shards/{name}"] = {"sha256": info["sha256"], **({"bytes": info["bytes"]} if "bytes" in info else {})}
    return out
