"""raygan: ensembles of GANs that turn a private labelled image set into a shareable synthetic one.

The listing of this package reads as the pipeline: ``config`` -> ``data`` -> ``gan`` -> ``ensemble`` ->
``synthesis`` -> ``evaluation`` / ``metrics`` -> ``audit`` -> ``reporting``; ``runs`` is the run folder
every stage reads and writes, ``tools`` holds plan and bench, and ``cluster`` is the only package that
imports Ray. ``python -m raygan <command>`` is the ``raygan`` command.
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.2.0"


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
    """What made a run: raygan's version and, for a git checkout (an editable install), its commit."""
    commit = None
    source = Path(__file__).resolve().parent.parent
    if (source / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                 text=True, timeout=10)
            commit = out.stdout.strip() or None if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"version": __version__, "git_commit": commit}
