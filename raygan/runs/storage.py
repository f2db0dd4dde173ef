"""The run folder: resolved config, manifest of what is done, per-member folders; atomic writes.

<root>/<experiment>/<run>/config.yaml, manifest.json, members/<class>/<member>/ ...
A rerun of the same run reads the manifest and skips what it says is complete.

The root may be a local path (used as it is) or any pyarrow filesystem URI (s3://bucket/prefix,
gs://..., file:///...). A URI run folder is worked on through a local mirror, a plain folder at
``mirror_root() / mirror_key(<parent URI>) / <run>``, so every reader and writer keeps using ``run.path``.
The mirror's name is a digest of the parent URI with its credentials redacted (raygan.secrets), so
no password or key names a folder on disk; the folder's ``.uri`` file holds that redacted URI.

- ``atomic_write_bytes`` / ``atomic_write_text`` upload a file right after the local rename when it lies
  in a mirror (manifest, checkpoints and generators reach storage as they are written). A process finds
  the URI of a mirror path from the URIs it opened itself (every process that opens a run by its URI or
  its config, Ray tasks included: raygan.cluster.runtime.task_setup), else from ``.uri`` when the URI
  carries no credentials; a mirror whose URI has credentials this process was not given is refused in
  one line. Mirrors made before the digest (named ``quote(<parent URI>)``) are still read as their URI's
  mirror when given by path; jobs now use the digest's folder (pulled from storage again).
- Readers pull what they need: the driver the bookkeeping (manifest, config, boosting state) when it
  opens the run, a member task its member folder before training (a retry on another node resumes from
  the last uploaded checkpoint), synthesis the generators, evaluation everything but checkpoints.
- Every file raygan writes into a run folder goes through these writers (figures and sample grids
  too, raygan.figures), so no stage pushes anything afterwards; ``RunFolder.push`` is for files put there
  by hand.

Local paths never touch pyarrow: the only extra work is one ``Path.relative_to`` test per write.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import os
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from raygan.config import ConfigError
from raygan.secrets import MASK, redact

MIRROR_ENV = "RAYGAN_MIRROR_DIR"


_CHUNK = 8 << 20


# Files this process uploaded or downloaded, with their mtime then: a push skips them while unchanged.
_IN_SYNC: dict[str, int] = {}
# The parent URIs (credentials included) of the mirrors this process opened, by mirror_key.
_OPENED: dict[str, str] = {}
# The file in a mirror's top folder that names its URI, credentials redacted.
_URI_FILE = ".uri"


# --- URIs and the local mirror --------------------------------------------------------------------
def is_uri(location: str | os.PathLike) -> bool:
    """A pyarrow filesystem URI (scheme://...), as opposed to a local path."""
    return "://" in str(location)


@functools.lru_cache(maxsize=8)
def _resolved_root(configured: str) -> Path:
    return Path(configured).expanduser().resolve()


def mirror_root() -> Path:
    """Where URI run folders are mirrored: $RAYGAN_MIRROR_DIR, else $XDG_CACHE_HOME/raygan/mirror
    ($XDG_CACHE_HOME defaults to ~/.cache).

    Keep it the same on every node: tasks are given the run's URI, but code that hands a task a
    mirror path relies on it (the default is the same for one user everywhere).
    """
    configured = os.environ.get(MIRROR_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "raygan", "mirror")
    return _resolved_root(configured)


def join_uri(uri: str, *names: str) -> str:
    """uri/name/...: joined onto the URI's path, its query (e.g. endpoint_override) kept at the end."""
    s = urlsplit(uri)
    path = "/".join([s.path.rstrip("/"), *[n.strip("/") for n in names if n]])
    return urlunsplit((s.scheme, s.netloc, path, s.query, ""))


def _split_uri(uri: str) -> tuple[str, str]:
    s = urlsplit(uri)
    parent, _, name = s.path.rstrip("/").rpartition("/")
    if not name:
        raise ConfigError(f"{uri!r} names no folder; a run folder URI looks like "
                          "s3://bucket/prefix/<experiment>/<run>")
    return urlunsplit((s.scheme, s.netloc, parent, s.query, "")), name


@functools.lru_cache(maxsize=32)
def _filesystem(uri: str):
    """(pyarrow FileSystem, path inside it) of a URI; cached, as S3 may ask the network for a region."""
    from pyarrow import fs as pafs
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ValueError...
        raise ConfigError(f"pyarrow cannot open {uri!r} ({err}); use a local path or a URI pyarrow "
                          "supports (file:///abs/path, s3://bucket/prefix, gs://bucket/prefix, "
                          "hdfs://host/path)") from err


def mirror_key(parent: str) -> str:
    """The name of the mirror folder of the folder URI ``parent``: a digest of the URI with its
    credentials redacted (the same bucket and prefix with other credentials shares the mirror)."""
    return "uri-" + hashlib.sha256(redact(parent).encode()).hexdigest()[:32]


def mirror_path(uri: str) -> Path:
    """The local mirror folder of the folder at ``uri`` (this process remembers the URI of it)."""
    parent, name = _split_uri(uri)
    key = mirror_key(parent)
    _OPENED[key] = parent
    top = mirror_root() / key
    if not (top / _URI_FILE).exists():  # for people and for processes that were not given the URI
        atomic_write_text(top / _URI_FILE, redact(parent) + "\n")
    return top / name


def _parent_uri(key: str) -> str:
    """The parent URI of the mirror folder ``key``: one this process opened, else the one its .uri file
    names when that has no credentials, else (a mirror from before the digest) the quoted URI itself."""
    if key in _OPENED:
        return _OPENED[key]
    try:
        named = (mirror_root() / key / _URI_FILE).read_text().strip()
    except OSError:
        named = None
    if named and MASK not in named:
        return named
    if named is None and is_uri(unquote(key)):
        return unquote(key)
    raise ConfigError(f"{mirror_root() / key} mirrors {named or 'a storage URI'}, whose credentials this "
                      "process was not given; open the run by its URI (output.root, or the URI given "
                      "to raygan report / audit / export) instead of its mirror folder")


def _in_mirror(path: Path) -> Optional[tuple[str, tuple[str, ...]]]:
    """(parent URI, path parts below it) when ``path`` lies in a mirror, else None (a local path)."""
    if not path.is_absolute():  # local run folders are usually relative: no further work
        return None
    try:
        rel = path.relative_to(mirror_root())
    except ValueError:
        return None
    if len(rel.parts) < 2 or rel.parts[1] == _URI_FILE:
        return None
    return _parent_uri(rel.parts[0]), rel.parts[1:]


def remote_of(path: str | os.PathLike) -> Optional[tuple[Any, str]]:
    """(pyarrow FileSystem, path inside it) that a mirrored local path stands for, else None."""
    found = _in_mirror(Path(path))
    if found is None:
        return None
    fs, base = _filesystem(found[0])
    return fs, "/".join([base.rstrip("/"), *found[1]])


def uri_of(path: str | os.PathLike) -> Optional[str]:
    found = _in_mirror(Path(path))
    return None if found is None else join_uri(found[0], *found[1])


# --- transfers ------------------------------------------------------------------------------------
def _is_object_store(fs) -> bool:
    return fs.type_name not in ("local", "mock", "subtree")


def _upload(fs, remote: str, data: bytes) -> None:
    if _is_object_store(fs):  # an object appears whole when its upload completes
        with fs.open_output_stream(remote) as out:
            out.write(data)
        return
    parent = remote.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{remote}.tmp{os.getpid()}"
    try:
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, remote)  # a rename: readers see the old file or the new one
    except BaseException:
        try:
            fs.delete_file(tmp)
        except OSError:  # never made, or storage gone too: the error above is the one to show
            pass
        raise


def _mark_in_sync(path: Path) -> None:
    try:
        _IN_SYNC[str(path)] = path.stat().st_mtime_ns
    except FileNotFoundError:
        pass


def _download(fs, remote: str, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(remote) as src, open(tmp, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno in _FULL:  # not storage's errors: this disk's
            raise write_error(err, path) from err
        raise
    _mark_in_sync(path)


# The run-folder lock (raygan.runs.lock): it names a process of this machine, so it never syncs.
LOCK_FILE = "raygan.lock"


def _is_temporary(name: str) -> bool:
    """Files that never sync: atomic writes' temporaries, shards.tmp/ and the run-folder lock."""
    return ".tmp" in name or name.rsplit("/", 1)[-1] == LOCK_FILE


class WriteError(OSError):
    """A file of a run could not be written (a full disk, a quota, no permission): its path and the fix."""

    def __str__(self) -> str:
        fix = "free space on that disk" if self.errno in _FULL else "check that folder (permissions, a " \
              "file in the way)"
        return (f"cannot write {self.filename} ({self.strerror}); {fix} or choose another output.root, "
                "then rerun the same command (finished work is kept)")


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_error(err: OSError, path: str | os.PathLike) -> WriteError:
    """``err`` (raised while writing ``path``) as a WriteError naming the path."""
    return WriteError(err.errno, err.strerror or str(err), str(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``data`` into ``path`` by a temporary file and a rename; on any failure (a full disk, a signal)
    the temporary file is removed, and an OSError names the path (WriteError)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise write_error(err, path) from err
        raise
    remote = remote_of(path)
    if remote is not None:  # a URI run folder: storage gets the file now, not at the end of a stage
        _upload(*remote, data)
        _mark_in_sync(path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_remote(fs, remote: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(remote) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()

