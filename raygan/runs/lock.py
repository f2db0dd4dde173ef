"""The run-folder lock: one job at a time writes a run folder.

A job that writes into a run folder (train, synthesize, evaluate, pipeline, audit) holds
``<run>/raygan.lock`` while it runs, a small JSON file naming the holder: host, pid, start time (UTC)
and job. It is taken by the job's driver process only (raygan.cluster.entry.run_job and the audit path
of the CLI), never by Ray tasks, which work for that driver. A second job on a locked run refuses at once
with a one-line :class:`RunLockedError` naming the holder. A lock whose holder is gone (same host, no
process with that pid) is stale, as a SIGKILLed driver leaves it: it is taken over with a log message.
A lock held on another host cannot be checked from here and is refused with the way to clear it.

The lock is created with O_CREAT | O_EXCL, so of two jobs starting together exactly one gets it. A URI
run folder is locked in its local mirror (raygan.runs.storage never syncs the lock): that keeps two jobs
of one machine apart, not jobs on different machines, which object stores give no atomic create for.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
from pathlib import Path
from typing import Iterator, Optional

from raygan.config import Config, ConfigError
from raygan.runs.storage import LOCK_FILE, is_uri, join_uri, mirror_path

logger = logging.getLogger(__name__)

# The jobs that write into cfg's run folder (the sweep writes its own folders under output.root).
LOCKED_JOBS = ("train", "synthesize", "evaluate", "pipeline", "audit")


class RunLockedError(ConfigError):
    """Another job holds the run folder's lock."""


def run_path(cfg: Config) -> Path:
    """The local folder of cfg's run (a URI run: its mirror), without opening storage."""
    root, exp, run = cfg.output.root, cfg.output.experiment, cfg.output.run
    return mirror_path(join_uri(root, exp, run)) if is_uri(root) else Path(root) / exp / run


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user has that pid
        return True
    return True


def _describe(holder: dict) -> str:
    return (f"job {holder.get('job', '?')} on host {holder.get('host', '?')} (pid {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')})")


def _read(path: Path) -> Optional[dict]:
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # half-written by a holder killed at that moment, or not ours: unknown holder
    return holder if isinstance(holder, dict) else {}


def _create(path: Path, holder: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(holder, f)
    return True


def _stale(holder: dict) -> bool:
    """The holder ran on this host and its process is gone."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid)


def acquire(folder: Path, *, job: str) -> Path:
    """Take the lock of the run folder ``folder`` for ``job``; returns the lock file's path.

    RunLockedError when a live holder has it; a stale holder's lock is taken over (logged).
    """
    path = Path(folder) / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "job": job}
    for _ in range(2):  # once more after clearing a stale lock
        if _create(path, me):
            return path
        holder = _read(path)
        if holder is None:  # released between our two looks
            continue
        if not _stale(holder):
            raise RunLockedError(f"run folder {folder} is in use by {_describe(holder)}; wait for that job "
                                 f"to end, or if it is gone delete {path}")
        logger.warning(f"run folder {folder}: taking over the stale lock of {_describe(holder)}, "
                       "whose process is gone")
        # Renamed away first: of two jobs taking over together, only one rename finds the file.
        aside = path.with_name(f"{LOCK_FILE}.stale{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(path, aside)
            aside.unlink()
    holder = _read(path) or {}
    raise RunLockedError(f"run folder {folder} is in use by {_describe(holder)}; wait for that job to end, "
                         f"or if it is gone delete {path}")


def release(path: Path) -> None:
    """Remove the lock if this process holds it (a takeover by another job is left alone)."""
    holder = _read(path)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(folder: Path, *, job: str) -> Iterator[Path]:
    """Hold the run folder's lock for the block. Folders the lock had to create are removed again when
    they are left empty (a job refused before any work leaves nothing behind)."""
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where a folder should be, no permission...
        _remove_empty(missing)
        raise ConfigError(f"cannot create the run folder {folder} ({err.strerror or err}); choose another "
                          "output.root") from err
    try:
        path = acquire(folder, job=job)
    except BaseException:
        _remove_empty(missing)
        raise
    try:
        yield path
    finally:
        release(path)
        _remove_empty(missing)


def _remove_empty(created: list[Path]) -> None:
    for p in created:  # deepest first
        try:
            p.rmdir()
        except OSError:  # not empty (the job wrote there) or gone: keep going up only while empty
            return


def job_lock(job: str, cfg: Config) -> contextlib.AbstractContextManager:
    """The lock of cfg's run folder for a job that writes into it; a no-op for other jobs."""
    if job not in LOCKED_JOBS:
        return contextlib.nullcontext()
    return run_lock(run_path(cfg), job=job)
