"""Shared fixtures: small configs that train in seconds on a CPU."""
from __future__ import annotations

import logging
import os

import pytest
import torch

from raygan.config import load_config


def pytest_configure(config):
    """Ray's authentication token (~/.ray/auth_token), made once before any test: a Ray of this version
    makes one at its first start where none exists and caches it per process. Under pytest-xdist (CI:
    -n 2) two workers' first starts would each write one, and a test that starts a Ray under another
    HOME (test_bad_input) must find the real one to point RAY_AUTH_TOKEN_PATH at; otherwise the
    session Ray started later in that process cannot reach its own GCS."""
    if hasattr(config, "workerinput") or os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return
    try:
        from ray._private.authentication.authentication_token_setup import (
            _get_default_token_path,
            generate_and_save_token,
        )
    except ImportError:  # a Ray without token authentication
        return
    if not _get_default_token_path().exists():
        generate_and_save_token()


@pytest.fixture(autouse=True)
def _one_thread():
    # Tests run many tiny models; one thread avoids oversubscribing the 2-core CI machine.
    torch.set_num_threads(1)


@pytest.fixture
def tiny_digits_cfg(tmp_path):
    def make(*overrides):
        return load_config(overrides=[
            "data.name=digits", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
            "train.steps=20", "train.batch_size=16", "train.checkpoint_every=10",
            "train.log_every=10", "ensemble.members=2", "output.sample_grid=16",
            f"output.root={tmp_path}/runs", *overrides])
    return make


class _LogLines:
    """raygan's log messages captured by caplog, read as a list of lines."""

    def __init__(self, caplog):
        self._caplog = caplog

    def _lines(self) -> list[str]:
        return [r.getMessage() for r in self._caplog.records if r.name.startswith("raygan")]

    def __iter__(self):
        return iter(self._lines())

    def __getitem__(self, i):
        return self._lines()[i]

    def __len__(self) -> int:
        return len(self._lines())

    def clear(self) -> None:
        self._caplog.clear()


@pytest.fixture
def raygan_logs(caplog):
    caplog.set_level(logging.INFO, logger="raygan")
    return _LogLines(caplog)
