"""The run folder: resolved config, manifest of what is done, per-member folders; atomic writes.

<root>/<experiment>/<run>/config.yaml, manifest.json, members/<class>/<member>/ ...
A rerun of the same run reads the manifest and skips what it says is complete.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from .config import Config, ConfigError

# Settings a run may change between reruns without invalidating finished members.
_MAY_CHANGE = {("train", "device"), ("train", "num_threads"), ("train", "log_every"),
               ("ensemble", "members"), ("ensemble", "weights"), ("ensemble", "samples_per_class")}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def for_config(cls, cfg: Config) -> "RunFolder":
        return cls(Path(cfg.output.root) / cfg.output.experiment / cfg.output.run)

    # --- config -----------------------------------------------------------------------------------
    def check_compatible(self, cfg: Config) -> None:
        """Refuse to resume a run folder that was made with settings its members depend on."""
        path = self.path / "config.yaml"
        if not path.exists():
            return
        old = yaml.safe_load(path.read_text())
        new = cfg.to_dict()
        diffs = [f"{s}.{k}: {old[s].get(k)!r} -> {v!r}" for s in ("data", "gan", "train")
                 for k, v in new[s].items() if (s, k) not in _MAY_CHANGE and old.get(s, {}).get(k) != v]
        if diffs:
            raise ConfigError(f"run folder {self.path} holds a run with other settings "
                              f"({'; '.join(diffs)}); choose a new output.run or delete the folder")

    def write_config(self, cfg: Config) -> None:
        path, text = self.path / "config.yaml", cfg.to_yaml()
        if not (path.exists() and path.read_text() == text):  # a rerun rewrites nothing
            atomic_write_text(path, text)

    # --- manifest ---------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        if self.manifest_path.exists():
            return json.loads(self.manifest_path.read_text())
        return {"members": {}}

    def update_manifest(self, **sections: Any) -> dict:
        manifest = self.manifest()
        manifest.update(sections)
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
        return manifest

    def record_member(self, entry: dict) -> None:
        manifest = self.manifest()
        manifest["members"][f"{entry['class']}/{entry['member']}"] = entry
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))

    def member_entry(self, class_name: str, member: int) -> dict | None:
        entry = self.manifest()["members"].get(f"{class_name}/{member}")
        return entry if entry and entry.get("status") == "complete" else None

    def member_dir(self, class_name: str, member: int) -> Path:
        return self.path / "members" / class_name / str(member)
