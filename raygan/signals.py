"""How a job stops on a signal: SIGTERM (a scheduler, `kill`, `ray job stop`) and Ctrl-C (SIGINT).

Both unwind the job like an error, so every ``finally`` on the way runs: the shards' staging folder and
the atomic writers' temporary files are removed and the run-folder lock is released. raygan.cli.main
then shows one line and exits 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C). What was
finished (members, checkpoints, shards) is kept, and a rerun of the same command resumes from it.

Ctrl-C is Python's own KeyboardInterrupt. SIGTERM raises :class:`Stopped`, a KeyboardInterrupt, so
that no ``except Exception`` on the way swallows it and Ray's blocking calls (ray.get, ray.wait), which
turn a KeyboardInterrupt raised while they wait into a new one, end as they do on Ctrl-C; which signal
it was is recorded here as well, so the exit status stays right. ray.init installs its own
SIGTERM handling (a C++ handler that prints a stack dump, then a Python one that calls sys.exit, and the
process ends in an abort, exit 134): raygan.cluster.runtime.connect puts the handler that was there
before back once Ray is joined. A second SIGTERM while the first one unwinds ends the process at once.
"""
from __future__ import annotations

import signal
import threading
from typing import Any


class Stopped(KeyboardInterrupt):
    """The job was stopped by a signal (SIGTERM)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


# The signal that stopped this process's job, if one did (a KeyboardInterrupt alone: Ctrl-C).
_received: list[int] = []


def _raise_stopped(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second one ends the process, even while this one unwinds
    _received.append(signum)
    raise Stopped(signum)


def raise_on_sigterm() -> Any:
    """From now on SIGTERM raises Stopped in the main thread; returns the handler it replaced (None
    outside the main thread, where Python cannot set one)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_stopped)


def restore(handler: Any) -> None:
    """Put back a SIGTERM handler that raise_on_sigterm (or ray.init) replaced."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def stopped_line(stop: KeyboardInterrupt) -> tuple[int, str]:
    """(exit status, the one line shown) of a job stopped by SIGTERM or Ctrl-C."""
    signum = stop.signum if isinstance(stop, Stopped) else (_received or [signal.SIGINT])[-1]
    _received.clear()
    name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else signal.Signals(signum).name
    return 128 + signum, (f"raygan: stopped by {name}; temporary files removed and the run folder "
                          "unlocked; rerun the same command to resume (finished members and shards are "
                          "kept)")
