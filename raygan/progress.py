"""One progress bar per long stage (members, synthesis, classifiers, audit), through tqdm.

A bar is drawn only where a person watches: when standard error is a terminal, or when
``RAYGAN_PROGRESS=1`` forces it (``RAYGAN_PROGRESS=0`` silences it on a terminal too). Off a terminal
nothing is written, so logs and captured output stay as they were. While a bar is shown, raygan's log
lines go through tqdm.write (tqdm's logging_redirect_tqdm), so a line never lands in the middle of a
bar. A bar reads nothing but a clock: it draws no random numbers and changes no result.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import contextmanager
from typing import IO, Callable, Iterator, Optional, Sequence, TypeVar

ENV = "RAYGAN_PROGRESS"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
T = TypeVar("T")


class _Quiet:
    """The bar of a stage nobody watches: counts nothing, writes nothing."""

    def update(self, n: int = 1) -> None:
        pass


def enabled(stream: Optional[IO] = None) -> bool:
    """Whether bars are drawn on ``stream`` (default standard error): $RAYGAN_PROGRESS when it says
    1/0 (true/false, yes/no, on/off), else whether the stream is a terminal."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


@contextmanager
def progress(total: int, desc: str, *, initial: int = 0, unit: str = "it",
             stream: Optional[IO] = None) -> Iterator:
    """A bar of ``total`` steps (``initial`` of them done before, e.g. members a rerun skips) showing
    "n/total", the elapsed time and an ETA; ``.update(n)`` as work finishes. Quiet where
    :func:`enabled` says so."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        yield _Quiet()
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, dynamic_ncols=True,
              mininterval=0.5) as bar, logging_redirect_tqdm(loggers=[logging.getLogger("raygan")]):
        yield bar


def track(items: Sequence[T], desc: str, *, unit: str = "it", stream: Optional[IO] = None) -> Iterator[T]:
    """``items`` one by one under a :func:`progress` bar that counts each once its loop body is done."""
    with progress(total=len(items), desc=desc, unit=unit, stream=stream) as bar:
        for item in items:
            yield item
            bar.update(1)


@contextmanager
def polled(count: Callable[[], int], total: int, desc: str, *, unit: str = "it", interval_s: float = 1.0,
           stream: Optional[IO] = None) -> Iterator:
    """A :func:`progress` bar for one blocking call that reports nothing while it runs (Ray Data's
    write): a thread reads ``count()`` (e.g. files written so far) every ``interval_s`` and moves the
    bar to it. Where bars are off, no thread starts and ``count`` is never called."""
    with progress(total=total, desc=desc, unit=unit, stream=stream) as bar:
        if isinstance(bar, _Quiet):
            yield bar
            return
        stop = threading.Event()

        def advance() -> None:
            try:
                n = min(int(count()), total)
            except Exception:  # a failed look (storage busy) only delays the bar
                return
            if n > bar.n:
                bar.update(n - bar.n)

        def poll() -> None:
            while not stop.wait(interval_s):
                advance()

        thread = threading.Thread(target=poll, name="raygan-progress", daemon=True)
        thread.start()
        try:
            yield bar
        finally:
            stop.set()
            thread.join()
            advance()
