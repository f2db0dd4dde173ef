"""The run folder: <root>/<experiment>/<run>/ with config.yaml, manifest.json (what is done) and
members/<class>/<member>/. A rerun reads the manifest and skips what is complete; a rerun whose settings
would change what was made is refused (``check_compatible``). A URI run folder is a local mirror that
``pull`` and ``push`` keep equal to storage (raygan.runs.storage).
"""
from __future__ import annotations
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional
import yaml
from raygan.config import Config, ConfigError, from_dict
from raygan.runs.storage import (_IN_SYNC, _download, _filesystem, _is_temporary, _mark_in_sync, _split_uri, _upload,
                                 atomic_write_text, is_uri, join_uri, mirror_path, remote_of, sha256_file, uri_of)
from raygan import provenance


def _known(section: str) -> set[str]:
    """The keys a config section has in this version of raygan."""
    import dataclasses
    return {f.name for f in dataclasses.fields(Config.__dataclass_fields__[section].default_factory)}


# Settings a run may change between reruns without invalidating finished members.
_MAY_CHANGE = {("train", "device"), ("train", "num_threads"), ("train", "log_every"),
               ("ensemble", "members"), ("ensemble", "weights"), ("ensemble", "samples_per_class")}


class RunFolder:
    """A run folder at a local path, or the local mirror of one at a URI (``uri`` is then set)."""

    def __init__(self, path: str | os.PathLike, uri: Optional[str] = None):
        self.path = Path(path)
        self.uri = uri or uri_of(self.path)

    @classmethod
    def at(cls, location: str | os.PathLike) -> "RunFolder":
        """The run folder at a local path or a URI (what ``location`` gives back)."""
        if is_uri(location):
            return cls(mirror_path(str(location)), uri=str(location))
        return cls(Path(location))

    @classmethod
    def for_config(cls, cfg: Config) -> "RunFolder":
        root = cfg.output.root
        if not is_uri(root):
            return cls(Path(root) / cfg.output.experiment / cfg.output.run)
        check_remote_output(cfg)
        run = cls.at(join_uri(root, cfg.output.experiment, cfg.output.run))
        run.pull_bookkeeping()  # a rerun (maybe on a fresh head node) sees what is done
        return run

    @property
    def location(self) -> str:
        """The URI of a remote run folder, else its local path: what tasks are given to open it."""
        return self.uri or str(self.path)

    @property
    def is_remote(self) -> bool:
        return self.uri is not None

    def remote(self) -> Optional[tuple[Any, str]]:
        """(pyarrow FileSystem, the run folder's path inside it), or None for a local run folder."""
        return remote_of(self.path) if self.uri else None

    # --- syncing a URI run folder (no-ops for a local one) ----------------------------------------
    def _rel(self, item: str | os.PathLike) -> str:
        p = Path(item)
        rel = (p.relative_to(self.path) if p.is_absolute() else p).as_posix()
        return "" if rel == "." else rel

    @staticmethod
    def _join(base: str, rel: str) -> str:
        return f"{base}/{rel}" if rel else base

    def pull(self, *items: str | os.PathLike, exclude: Iterable[str] = (), delete: bool = True) -> int:
        """Make the local copies of these files or folders equal to storage; returns files fetched.

        With ``delete``, local files that storage lacks are removed (a deleted remote run starts over),
        temporaries of other writers excepted; file names in ``exclude`` are neither fetched nor removed.
        """
        remote = self.remote()
        return sum(self._pull_one(*remote, self._rel(i), set(exclude), delete) for i in items) if remote else 0

    def _pull_one(self, fs, base: str, rel: str, exclude: set[str], delete: bool) -> int:
        from pyarrow import fs as pafs

        src, dst = self._join(base, rel), self.path / rel
        info = fs.get_file_info(src)
        if info.type == pafs.FileType.File:
            _download(fs, src, dst)
            return 1
        kept: set[Path] = set()
        if info.type == pafs.FileType.NotFound:
            if delete and dst.is_file() and dst.name not in exclude:
                dst.unlink()
                _IN_SYNC.pop(str(dst), None)
        else:
            for f in fs.get_file_info(pafs.FileSelector(src, recursive=True)):
                inside = f.path[len(src) + 1:]
                if f.type != pafs.FileType.File or f.base_name in exclude or _is_temporary(inside):
                    continue
                _download(fs, f.path, dst / inside)
                kept.add(dst / inside)
        if delete and dst.is_dir():
            for local in dst.rglob("*"):
                if local.is_file() and local not in kept and local.name not in exclude \
                        and not _is_temporary(local.relative_to(dst).as_posix()):
                    local.unlink()
                    _IN_SYNC.pop(str(local), None)
        return len(kept)

    def push(self, *items: str | os.PathLike, only_changed: bool = True,
             exclude: Iterable[str] = ()) -> int:
        """Upload these local files or folders (recursively); returns files uploaded.

        ``only_changed`` skips files this process uploaded or downloaded and has not changed since
        (what atomic_write_* already sent): a push after a stage sends only its images and plots.
        """
        remote = self.remote()
        if remote is None:
            return 0
        sent = 0
        for path in self._local_files(items, set(exclude)):
            if only_changed and _IN_SYNC.get(str(path)) == path.stat().st_mtime_ns:
                continue
            _upload(remote[0], f"{remote[1]}/{path.relative_to(self.path).as_posix()}", path.read_bytes())
            _mark_in_sync(path)
            sent += 1
        return sent

    def _local_files(self, items, exclude: set[str]) -> Iterator[Path]:
        """The files under these items, temporaries and excluded folder names left out."""
        for item in items:
            local = self.path / self._rel(item)
            files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
            for path in files:
                rel = path.relative_to(self.path).as_posix()
                if not (_is_temporary(rel) or any(part in exclude for part in Path(rel).parts)):
                    yield path

    def fetch(self, rel: str | os.PathLike, sha256: Optional[str] = None) -> Path:
        """The local path of a file of the run, downloaded first when remote (unless the local copy
        already has the given sha256)."""
        path = self.path / self._rel(rel)
        remote = self.remote()
        if remote is not None and not (sha256 and path.is_file() and sha256_file(path) == sha256):
            fs, base = remote
            _download(fs, self._join(base, self._rel(rel)), path)
        return path

    def pull_bookkeeping(self) -> None:
        """What the driver reads to know what is done: manifest, config, boosting state."""
        self.pull("manifest.json", "config.yaml", "boosting")

    def pull_outputs(self) -> None:
        """Everything a later stage (evaluate, report, audit, sweep) may read; not the checkpoints."""
        self.pull(".", exclude=("checkpoint.pt",), delete=False)

    # --- config -----------------------------------------------------------------------------------
    def check_compatible(self, cfg: Config) -> None:
        """Refuse to resume a run folder that was made with settings its members depend on."""
        path = self.path / "config.yaml"
        if not path.exists():
            return
        # A key the saved config lacks was added to raygan later: the run used that field's default.
        old = from_dict({s: {k: v for k, v in (values or {}).items() if k in _known(s)}
                         for s, values in yaml.safe_load(path.read_text()).items()
                         if s in Config.__dataclass_fields__}).to_dict()
        new = cfg.to_dict()
        diffs = [f"{s}.{k}: {old[s].get(k)!r} -> {v!r}" for s in ("data", "gan", "train")
                 for k, v in new[s].items() if (s, k) not in _MAY_CHANGE and old.get(s, {}).get(k) != v]
        if diffs:
            raise ConfigError(f"run folder {self.location} holds a run with other settings "
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
        self._write_manifest(manifest)
        return manifest

    def _write_manifest(self, manifest: dict) -> None:
        # Which raygan wrote it last (version, git commit of a checkout): a run folder describes itself.
        manifest["raygan"] = provenance()
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))

    def record_member(self, *entries: dict) -> None:
        """Add finished members to the manifest in one write (a conditional member: one per class)."""
        for path, entry in {self.path / e["generator"]: e for e in entries}.items():
            if self.uri is not None and not (path.is_file() and
                                             sha256_file(path) == entry.get("generator_sha256")):
                # The member trained on another node: its files (grid, losses) come to this mirror.
                self.pull(path.parent, exclude=("checkpoint.pt",))
        manifest = self.manifest()
        for entry in entries:
            manifest["members"][f"{entry['class']}/{entry['member']}"] = entry
        self._write_manifest(manifest)

    def member_entry(self, class_name: str, member: int) -> dict | None:
        entry = self.manifest()["members"].get(f"{class_name}/{member}")
        return entry if entry and entry.get("status") == "complete" else None

    def member_dir(self, class_name: str, member: int) -> Path:
        return self.path / "members" / class_name / str(member)


def check_remote_output(cfg: Config) -> None:
    """A URI output.root: its filesystem must open, and MLflow needs a store that is not under it."""
    _filesystem(_split_uri(join_uri(cfg.output.root, cfg.output.experiment, cfg.output.run))[0])
    if not cfg.tracking.enabled:
        return
    uri = cfg.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or uri.startswith("sqlite:"):
        raise ConfigError(f"output.root is the URI {cfg.output.root!r}, where MLflow's default sqlite "
                          "store and its artifacts cannot live; set tracking.tracking_uri (or "
                          "MLFLOW_TRACKING_URI) to a tracking server such as http://<host>:5000, or "
                          "tracking.enabled=false")

