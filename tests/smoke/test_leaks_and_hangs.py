"""Credentials that must never show, and addresses that must never hang (issue 25, items 4 and 5), with
real services: an `mlflow server` subprocess reached with a password in its URI, and an HTTP server
where a Ray address should be."""
from __future__ import annotations

import http.server
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from raygan.config import load_config

REPO = Path(__file__).resolve().parents[2]
SECRET = "pw-s3cr3t-25"  # not a word MLflow's own output holds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real MLflow tracking server on 127.0.0.1 (it checks no password; the client still sends one).
    Its backend is a file store, which starts in half the time of a sqlite one (no migrations)."""
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "-w", "1",
         "--backend-store-uri", str(tmp_path / "server-store"),
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"})
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_a_password_in_the_tracking_uri_never_reaches_stdout_stderr_or_logs(
        mlflow_server, tmp_path, capfd, caplog):
    from mlflow import MlflowClient

    from raygan.cluster.sweep_mlflow import SweepMLflowLogger
    from raygan.tracking import Tracker

    caplog.set_level(logging.DEBUG)
    uri = f"http://user:{SECRET}@127.0.0.1:{mlflow_server}"
    cfg = load_config(overrides=[f"tracking.tracking_uri={uri}", f"output.root={tmp_path}/runs"])
    tracker = Tracker(cfg, "train")
    run_dir = tmp_path / "runs" / "default" / "run"
    with tracker.parent(run_dir):
        tracker.log_metrics({"members": 1})
        entry = {"class": "a", "member": 0, "seed": 1, "steps": 2, "seconds": 0.1,
                 "final_d_loss": 1.0, "final_g_loss": 1.0}
        tracker.log_member(entry, run_dir)  # a child run, ended inside the parent
    # a sweep's trial run (the Tune callback's own MlflowClient), created and ended
    sweep = SweepMLflowLogger(tracking_uri=uri, experiment_name="raygan/default", storage=str(tmp_path),
                              tags={}, metrics=("val_acc",), step_key="epoch")

    class Trial:
        trial_id, config = "t0", {"lr": 0.1}

        def __str__(self) -> str:
            return "trial_t0"

    sweep.log_trial_start(Trial())
    sweep.log_trial_end(Trial())
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text, (out + err)[-2000:]
    # ... and the runs are on the server, finished
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{mlflow_server}")
    assert client.get_run(tracker.parent_id).info.status == "FINISHED"
    assert client.get_run(sweep._existing_run("t0")).info.status == "FINISHED"


def test_a_mirror_folder_names_no_credential(tmp_path, monkeypatch):
    from raygan.config import ConfigError
    from raygan.runs import MIRROR_ENV, mirror_path, storage, uri_of

    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    uri = f"s3://AKIDKEY:{SECRET}@bucket/prefix/exp/run?endpoint_override=127.0.0.1:9000"
    path = mirror_path(uri)
    names = [str(p) for p in (tmp_path / "mirror").rglob("*")] + [str(path)]
    assert not any(SECRET in n or "AKIDKEY" in n for n in names), names
    assert (path.parent / ".uri").read_text() == \
        "s3://AKIDKEY:***@bucket/prefix/exp?endpoint_override=127.0.0.1:9000\n"
    assert uri_of(path / "manifest.json") == \
        f"s3://AKIDKEY:{SECRET}@bucket/prefix/exp/run/manifest.json?endpoint_override=127.0.0.1:9000"
    # the same bucket and prefix with other credentials: the same mirror
    assert mirror_path(uri.replace(SECRET, "other")) == path
    # a process not given the credentials (a fresh one) is told to open the run by its URI
    monkeypatch.setattr(storage, "_OPENED", {})
    with pytest.raises(ConfigError, match=r"whose credentials this process was not given; open the run by"):
        uri_of(path / "manifest.json")
    # a URI without credentials is found from the mirror alone, in any process
    plain = mirror_path(f"file://{tmp_path}/store/exp/run")
    monkeypatch.setattr(storage, "_OPENED", {})
    assert uri_of(plain) == f"file://{tmp_path}/store/exp/run"


def test_a_ray_address_where_an_http_server_answers_is_refused_in_seconds(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "raygan", "train", "--set", f"output.root={tmp_path}/runs",
             "--set", "tracking.enabled=false"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": address})
        seconds = time.monotonic() - t0
    finally:
        server.shutdown()
    lines = [line for line in out.stderr.splitlines() if line.startswith("raygan:")]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"raygan: config error: the Ray address {address} answers HTTP "
                               "(HTTP/1.0 200 OK): that is the dashboard / job server port, not the GCS "
                               "port (usually 6379); use 127.0.0.1:6379 or ray://127.0.0.1:10001"), lines
    assert "Traceback" not in out.stderr and "Connecting to existing Ray cluster" not in out.stderr
    assert seconds < 30 and not (tmp_path / "runs").exists()


def test_joining_an_address_that_never_answers_ends_in_one_line_after_the_bound(tmp_path):
    """ray.init on a port that accepts and stays silent retries for ever: raygan's join is bounded
    (120 s; 3 s here), ending the process with one line."""
    code = ("import sys, ray\nfrom raygan.cluster.join import bounded_join\n"
            "with bounded_join(sys.argv[1], timeout_s=3):\n    ray.init(address=sys.argv[1])\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-c", code, address], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
        seconds = time.monotonic() - t0
    lines = [line for line in out.stderr.splitlines() if line.startswith("raygan:")]
    assert out.returncode == 2 and lines == [
        f"raygan: config error: no Ray cluster answered at {address} within 3s; give its GCS port "
        "(usually 6379) or ray://host:10001, and its token (RAY_AUTH_TOKEN) if it wants one; fix "
        "--address / cluster.address / RAY_ADDRESS"], out.stderr
    assert seconds < 40
