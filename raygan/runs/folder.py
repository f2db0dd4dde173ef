"""The run folder: <root>/<experiment>/<run>/ with config.yaml, manifest.json (what is done) and
members/<class>/<member>/. A rerun reads the manifest and skips what is complete; a rerun whose settings
would change what was made is refused before anything is written (``check_compatible``: ``changes``
says which settings those are), as is one whose finished members' files differ from the manifest's
checksums or do not load safely (``check_members``). A URI run folder is a local mirror that ``pull``
and ``push`` keep equal to storage (raygan.runs.storage); ``pull`` skips files whose local copy has the
size and sha256 the manifest in storage records.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from raygan import provenance
from raygan.config import Config, ConfigError, from_dict
from raygan.config.loading import read_yaml
from raygan.config.names import check_class_names
from raygan.runs.manifest import _records, check_sha256, member_fix, mismatch, read_manifest
from raygan.runs.storage import (
    _IN_SYNC,
    _download,
    _filesystem,
    _is_temporary,
    _mark_in_sync,
    _split_uri,
    _upload,
    atomic_write_text,
    is_uri,
    join_uri,
    mirror_path,
    remote_of,
    sha256_file,
    uri_of,
)
from raygan.secrets import redact_tree


def _known(section: str) -> set[str]:
    """The keys a config section has in this version of raygan."""
    import dataclasses
    return {f.name for f in dataclasses.fields(Config.__dataclass_fields__[section].default_factory)}


# Training settings a rerun may change: they change neither members nor shards (a resume is bit-exact
# whatever the checkpoint interval). ensemble.members may change too: more members are trained, and
# synthesis makes shards for the new T. More divergence retries only give a member that was given up
# another attempt; the members already complete do not change.
_MAY_CHANGE = {("train", "device"), ("train", "num_threads"), ("train", "log_every"),
               ("train", "checkpoint_every"), ("train", "divergence_retries")}
# What the shards are made from besides the members: fixed once the manifest records shards.
# (A saved config without samples_ratio, from before it existed, reads it back as its default None.)
_SHARD_SETTINGS = [("ensemble", "weights"), ("ensemble", "samples_per_class"), ("ensemble", "samples_ratio"),
                   ("synth", "seed"), ("synth", "truncation"), ("synth", "chunk_size")]


def _steps_may_grow(cfg: dict) -> bool:
    """More train.steps continue every member from its checkpoint, as an uninterrupted run to the new
    steps would: true of independent, non-progressive (pggan lays its growing over train.steps),
    non-recursive (later rounds train on earlier rounds' samples), non-private (each member's noise is
    solved for train.steps) members."""
    from raygan.gan.models import PROGRESSIVE

    return (cfg["ensemble"]["method"] == "independent" and cfg["gan"]["family"] not in PROGRESSIVE
            and not cfg["train"]["recursive_rounds"] and cfg["privacy"]["epsilon"] is None)


def changes(old: dict, new: dict, *, has_shards: bool) -> list[str]:
    """The settings of ``new`` (Config.to_dict) that would change what ``old`` made: data, gan, train
    (but _MAY_CHANGE, and train.steps growing where _steps_may_grow), ensemble.method, boosting.* of a
    boosting method, privacy.* (and under privacy ensemble.members, which sets every member's noise),
    and once shards exist _SHARD_SETTINGS."""
    keys = [(s, k) for s in ("data", "gan", "train") for k in new[s] if (s, k) not in _MAY_CHANGE]
    keys.append(("ensemble", "method"))
    keys += [("privacy", k) for k in new["privacy"]]
    if new["privacy"]["epsilon"] is not None:
        keys.append(("ensemble", "members"))
    if new["ensemble"]["method"] != "independent":
        keys += [("boosting", k) for k in new["boosting"]]
    if has_shards:
        keys += _SHARD_SETTINGS
    out = []
    for s, k in keys:
        was, now = old.get(s, {}).get(k), new[s][k]
        grows = (s, k) == ("train", "steps") and isinstance(was, int) and now > was and _steps_may_grow(new)
        if was != now and not grows:
            out.append(f"{s}.{k}: {was!r} -> {now!r}")
    return out


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
        if remote is None:
            return 0
        records = _records(remote[0], self._join(remote[1], "manifest.json"))
        return sum(self._pull_one(*remote, self._rel(i), set(exclude), delete, records) for i in items)

    def _pull_one(self, fs, base: str, rel: str, exclude: set[str], delete: bool, records: dict) -> int:
        from pyarrow import fs as pafs

        src, dst = self._join(base, rel), self.path / rel
        info = fs.get_file_info(src)
        if info.type == pafs.FileType.File:
            return self._download_unless_current(fs, info, dst, records)
        kept: set[Path] = set()
        fetched = 0
        if info.type == pafs.FileType.NotFound:
            if delete and dst.is_file() and dst.name not in exclude:
                dst.unlink()
                _IN_SYNC.pop(str(dst), None)
        else:
            for f in fs.get_file_info(pafs.FileSelector(src, recursive=True)):
                inside = f.path[len(src) + 1:]
                if f.type != pafs.FileType.File or f.base_name in exclude or _is_temporary(inside):
                    continue
                fetched += self._download_unless_current(fs, f, dst / inside, records)
                kept.add(dst / inside)
        if delete and dst.is_dir():
            for local in dst.rglob("*"):
                if local.is_file() and local not in kept and local.name not in exclude \
                        and not _is_temporary(local.relative_to(dst).as_posix()):
                    local.unlink()
                    _IN_SYNC.pop(str(local), None)
        return fetched

    def _download_unless_current(self, fs, info, path: Path, records: dict) -> int:
        """Download a file (returns 1) unless the local copy has the size in storage and the sha256 the
        manifest in storage records for it (returns 0). A download that differs from that record is
        removed again and refused (ConfigError): storage holds a changed file."""
        rel = path.relative_to(self.path).as_posix()
        record = records.get(rel)
        if record is not None and path.is_file() and path.stat().st_size == info.size \
                and record.get("bytes", info.size) == info.size and sha256_file(path) == record["sha256"]:
            _mark_in_sync(path)
            return 0
        _download(fs, info.path, path)
        if record is not None and (actual := sha256_file(path)) != record["sha256"]:
            path.unlink()
            raise mismatch(self._join(self.location, rel), actual, record["sha256"], path)
        return 1

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
        already has the given sha256); with ``sha256``, a file that differs from it is a ConfigError
        naming the file and the fix, on local and URI runs alike."""
        path = self.path / self._rel(rel)
        remote = self.remote()
        if remote is None:
            if sha256:
                check_sha256(path, sha256, where=self._join(self.location, self._rel(rel)))
            return path
        if sha256 and path.is_file() and sha256_file(path) == sha256:
            return path  # the mirror's copy is the recorded one: no download, no second hash
        fs, base = remote
        _download(fs, self._join(base, self._rel(rel)), path)
        if sha256 and (actual := sha256_file(path)) != sha256:
            path.unlink()  # not left in the mirror, where a later reader could take it
            raise mismatch(self._join(self.location, self._rel(rel)), actual, sha256, path)
        return path

    def pull_bookkeeping(self) -> None:
        """What the driver reads to know what is done: manifest, config, boosting state."""
        self.pull("manifest.json", "config.yaml", "boosting")

    def pull_outputs(self) -> None:
        """Everything a later stage (evaluate, report, audit, sweep) may read; not the checkpoints."""
        self.pull(".", exclude=("checkpoint.pt",), delete=False)

    # --- config -----------------------------------------------------------------------------------
    def saved_config(self) -> Optional[dict]:
        """The run's config.yaml as Config.to_dict, or None before the first job wrote it. A key the
        saved config lacks was added to raygan later: the run used that field's default."""
        path = self.path / "config.yaml"
        if not path.exists():
            return None
        try:
            raw = read_yaml(path.read_text(), str(path)) or {}  # raygan's safe YAML reader (1e-4 a number)
            return from_dict({s: {k: v for k, v in (values or {}).items() if k in _known(s)}
                              for s, values in raw.items() if s in Config.__dataclass_fields__}).to_dict()
        except (AttributeError, TypeError) as err:
            raise ConfigError(f"{path} is not a raygan config ({type(err).__name__}); restore it, or "
                              "start over with a new output.run") from err

    def check_compatible(self, cfg: Config) -> None:
        """Refuse to resume a run folder whose members or shards were made with other settings
        (``changes``), or whose finished members' files are not intact (``check_members``); the jobs
        call it before they write anything."""
        old = self.saved_config()
        if old is not None:
            # config.yaml holds URIs with their credentials masked (raygan.secrets): compare alike.
            diffs = changes(old, redact_tree(cfg.to_dict()), has_shards="shards" in self.manifest())
            if diffs:
                raise ConfigError(f"run folder {self.location} holds a run with other settings "
                                  f"({'; '.join(diffs)}); choose a new output.run or delete the folder")
        self.check_members()

    def check_members(self) -> None:
        """Every complete member's generator file on this machine has the sha256 the manifest records
        and is read by torch.load(weights_only=True), else a one-line ConfigError naming the file and the
        fix: a job never builds on, samples or ships a changed file. A URI run's files are checked as
        they are fetched (``fetch``: a mirror's copy that differs from the manifest is fetched anew, then
        checked); here only the safe loading of mirror copies that match."""
        from raygan.runs.torch_files import load_torch_file  # torch is imported only to check members

        seen = set()
        for entry in self.manifest()["members"].values():
            rel = entry.get("generator") if isinstance(entry, dict) else None
            if not rel or entry.get("status") != "complete" or rel in seen or not (self.path / rel).is_file():
                continue
            seen.add(rel)
            sha = entry.get("generator_sha256")
            if self.is_remote and sha and sha256_file(self.path / rel) != sha:
                continue
            if sha:
                check_sha256(self.path / rel, sha, where=self._join(self.location, rel))
            load_torch_file(self.path / rel, fix=member_fix(self.path / rel))

    def write_config(self, cfg: Config) -> None:
        """config.yaml (after check_compatible passed); members it makes incomplete are marked so in
        the manifest: those to continue to more train.steps, and those whose folder was deleted."""
        path, text = self.path / "config.yaml", cfg.to_yaml()
        if not (path.exists() and path.read_text() == text):  # a rerun rewrites nothing
            atomic_write_text(path, text)
        manifest, marked = self.manifest(), 0
        for entry in manifest["members"].values():
            if entry.get("status") != "complete":
                continue
            if not self._has_file(entry.get("generator", "")):
                entry["status"], marked = "missing", marked + 1
            elif entry.get("steps", cfg.train.steps) < cfg.train.steps:
                entry["status"], marked = "extending", marked + 1
        if marked:
            self._write_manifest(manifest)

    # --- manifest ---------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    def manifest(self) -> dict[str, Any]:
        if self.manifest_path.exists():
            return read_manifest(self.manifest_path)
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
        """The manifest entry of a complete member whose generator file is there (a member whose folder
        was deleted, to retrain it, is not complete)."""
        entry = self.manifest()["members"].get(f"{class_name}/{member}")
        if not entry or entry.get("status") != "complete":
            return None
        return entry if self._has_file(entry.get("generator", "")) else None

    def _has_file(self, rel: str) -> bool:
        """The file is in the run folder: in storage for a URI run (a mirror may keep a deleted one)."""
        remote = self.remote()
        if remote is None:
            return bool(rel) and (self.path / rel).is_file()
        from pyarrow import fs as pafs

        return bool(rel) and remote[0].get_file_info(self._join(remote[1], rel)).type == pafs.FileType.File

    def member_dir(self, class_name: str, member: int) -> Path:
        # the data and config checks refuse such names before any work; this is the last line
        check_class_names([class_name], where="a class of this run", fix="rename the class")
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
