"""One real local Ray (2 CPUs, with the dashboard's job server) for the whole test session."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from raygan.config import load_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session():
    import ray

    port = _free_port()
    # Workers must find raygan the way the driver does; a job's driver joins through RAY_ADDRESS.
    ctx = ray.init(num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                   dashboard_port=port, runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}})
    # The URL the dashboard really bound (Ray moves on if the asked-for port was taken meanwhile).
    url = ctx.dashboard_url or f"127.0.0.1:{port}"
    yield {"dashboard": url if url.startswith("http") else f"http://{url}",
           "gcs": ctx.address_info["address"]}
    ray.shutdown()  # stops exactly what ray.init started; never `ray stop`


@pytest.fixture
def ray_cfg(tmp_path):
    """Tiny configs that train in seconds; every run in its own folder and MLflow store."""
    def make(base: str, *overrides):
        presets = {
            "digits": ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8",
                       "gan.z_dim=16", "train.batch_size=32"],
            "grid": ["data.name=grid2d", "gan.family=mlp2d", "gan.z_dim=2", "data.grid_points=2000",
                     "train.batch_size=100"],
        }
        return load_config(overrides=[*presets[base], "train.steps=30", "train.checkpoint_every=10",
                                      "train.log_every=10", "ensemble.members=2",
                                      "output.sample_grid=16", "synth.chunk_size=256",
                                      f"output.root={tmp_path}/runs", *overrides])
    return make


def _start_sweep_driver(cfg, gcs: str, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """``run_sweep(cfg)`` as its own driver process on the session's Ray, to be SIGKILLed mid-sweep
    (Ray then ends that job's trial actors); returns the process and its log file.
    TUNE_GLOBAL_CHECKPOINT_S=1 makes Tune write its experiment state every second, so a kill lands
    after the state of the trials seen by the test was stored."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(cfg.to_yaml())
    code = ("from raygan.config import load_config\nfrom raygan.cluster.sweep import run_sweep\n"
            f"run_sweep(load_config({str(config_path)!r}), address={gcs!r})\n")
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    env.pop("RAY_ADDRESS", None)
    child_log = tmp_path / "child.log"
    with open(child_log, "w") as log:
        child = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
    return child, child_log


@pytest.fixture
def start_sweep_driver():
    """_start_sweep_driver(cfg, gcs, tmp_path) -> (process, log file): a sweep driver to kill."""
    return _start_sweep_driver
