"""raygan's log output: one handler on the ``raygan`` logger, plain lines on standard output.

Every module logs through ``logging.getLogger(__name__)``; the commands call :func:`configure` once
with the level of ``--log-level``, and Ray tasks call it again in their worker (the level travels in
the environment), so a member's lines reach the driver through Ray's log forwarding.
"""
from __future__ import annotations

import logging
import os
import sys

from raygan.secrets import redact

LEVEL_ENV = "RAYGAN_LOG_LEVEL"
LEVELS = ("debug", "info", "warning", "error")


class _Lines(logging.Formatter):
    """Information as the message alone; anything else with its level in front; credentials in any
    URI redacted (raygan.secrets)."""

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


class RedactingFilter(logging.Filter):
    """Redacts the records of other libraries' handlers (MLflow's, urllib3's retries quote URIs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def redact_handlers(*names: str) -> None:
    """Put a RedactingFilter on the handlers of these loggers (and of the root logger), once each."""
    for name in ("", *names):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


class _Stdout(logging.StreamHandler):
    """Writes to whatever sys.stdout is now (a test's capture, a redirected stream), not the stream
    that was current when logging was configured."""

    raygan = True

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(level: str | None = None) -> None:
    """Send raygan's records at ``level`` (default: $RAYGAN_LOG_LEVEL, else info) to standard output."""
    level = (level or os.environ.get(LEVEL_ENV) or "info").lower()
    if level not in LEVELS:
        level = "info"
    os.environ[LEVEL_ENV] = level  # local Ray workers inherit it
    logger = logging.getLogger("raygan")
    if not any(getattr(h, "raygan", False) for h in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(_Lines("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    redact_handlers("mlflow", "py.warnings")
