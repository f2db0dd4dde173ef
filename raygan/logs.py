"""raygan's log output: one handler on the ``raygan`` logger, plain lines on standard output.

Every module logs through ``logging.getLogger(__name__)``; the commands call :func:`configure` once
with the level of ``--log-level``, and Ray tasks call it again in their worker (the level travels in
the environment), so a member's lines reach the driver through Ray's log forwarding.
"""
from __future__ import annotations

import logging
import os
import sys

LEVEL_ENV = "RAYGAN_LOG_LEVEL"
LEVELS = ("debug", "info", "warning", "error")


class _Lines(logging.Formatter):
    """Information as the message alone; anything else with its level in front."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


def configure(level: str | None = None) -> None:
    """Send raygan's records at ``level`` (default: $RAYGAN_LOG_LEVEL, else info) to standard output."""
    level = (level or os.environ.get(LEVEL_ENV) or "info").lower()
    if level not in LEVELS:
        level = "info"
    os.environ[LEVEL_ENV] = level  # local Ray workers inherit it
    logger = logging.getLogger("raygan")
    if not any(getattr(h, "raygan", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(_Lines("%(message)s"))
        handler.raygan = True
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
