"""Bad input and unreachable services, as a user meets them: one line naming the problem and the fix,
exit 2 (1 for an unexpected error), in seconds, nothing written, no credential shown anywhere."""
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from raygan.cli import main

REPO = Path(__file__).resolve().parents[2]
# Not the bare word "secret": MLflow's own store schema has a table named secrets.
SECRET = "pw-s3cr3t-77"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _main(argv: list[str]) -> int:
    """raygan.cli.main's exit code, whether it returns it or a job raises SystemExit with it."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _raygan(args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "raygan", *args], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env={**os.environ, **env})
    return out, time.monotonic() - t0


def _one_error_line(err: str, prefix: str = "raygan: config error: ") -> str:
    lines = [line for line in err.splitlines() if line.startswith("raygan:")]
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    assert "Traceback" not in err, err
    return lines[0]


def test_bad_config_is_one_line_exit_2_before_anything_is_written(tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "dup.yaml").write_text("train:\n  steps: 5\n  steps: 6\n")
    (inputs / "a_file").write_text("x")
    root = tmp_path / "a" / "b" / "runs"
    cases = [
        (["--config", str(inputs / "dup.yaml")], "dup.yaml: line 3: key 'steps' is given twice"),
        (["--set", "eval.max_ensemble=9"], "eval.max_ensemble=9 is above ensemble.members=5"),
        (["--set", "eval.mixing_ratios=[-0.5]"], "eval.mixing_ratios[0] = -0.5 is not allowed"),
        (["--set", "audit.spaces=[bogus]"], "audit.spaces[0] = 'bogus' is not allowed"),
        (["--set", "cluster.gpus_per_member=1.5"], "cluster.gpus_per_member=1.5: above 1"),
        (["--set", "output.experiment=../../x"], "output.experiment='../../x' would leave"),
        (["--set", f"output.run={tmp_path}/abs"], "would leave or blur the run folder"),
        (["--set", "sweep.name=../../x"], "sweep.name='../../x' would leave"),
        (["--set", f"output.root={inputs}/a_file/runs"], "a_file is a file"),
    ]
    for args, message in cases:
        t0 = time.monotonic()
        code = _main(["train", "--set", f"output.root={root}", *args])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert message in _one_error_line(err), (args, err)
        assert time.monotonic() - t0 < 20
    assert _files(tmp_path) == ["inputs", "inputs/a_file", "inputs/dup.yaml"]


def test_unexpected_error_is_one_line_exit_1_and_debug_shows_the_traceback(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "config.yaml").mkdir(parents=True)  # a folder where raygan expects a file
    assert _main(["report", str(run)]) == 1
    line = _one_error_line(capsys.readouterr().err, prefix="raygan: error: IsADirectoryError: ")
    assert line.endswith("(rerun with --debug for the traceback)")
    assert _main(["--debug", "report", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "IsADirectoryError" in err
    # a corrupt manifest (raygan.runs' ConfigError) is bad input: exit 2 with its path
    (run / "config.yaml").rmdir()
    (run / "config.yaml").write_text("data: {name: digits}\n")
    (run / "manifest.json").write_text('{"members": {"0/0": ')
    assert _main(["report", str(run)]) == 2
    assert "manifest.json" in _one_error_line(capsys.readouterr().err)


def test_unreachable_ray_address_fails_in_seconds_and_writes_nothing(tmp_path):
    # A fresh process, as a user runs it: in this one the test session's Ray may be joined already.
    root = tmp_path / "runs"
    address = f"127.0.0.1:{_closed_port()}"
    argv = ["train", "--set", f"output.root={root}", "--set", "tracking.enabled=false"]
    for args, env in ((argv + ["--address", address], {}), (argv, {"RAY_ADDRESS": address})):
        out, seconds = _raygan(args, tmp_path, PYTHONPATH=str(REPO), **env)
        assert out.returncode == 2, out.stderr
        line = _one_error_line(out.stderr)
        assert f"cannot reach the Ray cluster at {address} (Connection refused)" in line
        assert seconds < 30
    assert not root.exists()


def test_sigterm_while_joining_a_silent_ray_address_ends_the_job_and_leaves_nothing(tmp_path):
    root = tmp_path / "runs"
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        proc = subprocess.Popen(
            [sys.executable, "-m", "raygan", "train", "--set", f"output.root={root}"], cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO),
                 "RAY_ADDRESS": f"127.0.0.1:{silent.getsockname()[1]}"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            for line in proc.stderr:  # Ray says when ray.init starts connecting
                if "Connecting to existing Ray cluster" in line:
                    break
            time.sleep(1.0)
            assert proc.poll() is None  # still trying to join
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 128 + signal.SIGTERM
            assert time.monotonic() - t0 < 10
            assert "raygan: stopped by SIGTERM while joining the Ray cluster" in proc.stderr.read()
        finally:
            proc.kill()
            proc.wait()
    assert _files(tmp_path) == []


def test_gpus_on_a_cluster_without_gpus_or_autoscaler_are_refused_before_any_task(
        tmp_path, capsys, monkeypatch):
    import ray

    token = Path.home() / ".ray" / "auth_token"  # made by conftest.pytest_configure where Ray uses one
    if token.exists():  # Ray caches the token per process: a Ray started here must use the session's
        monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no autoscaler config of the cluster launcher
    started = not ray.is_initialized()  # the whole suite: the integration tests' session Ray (no GPU)
    if started:
        ray.init(num_cpus=1, include_dashboard=False)
        capsys.readouterr()  # Ray's start-up lines (its handler may hold an earlier test's stream)
    try:
        assert _main(["train", "--set", "cluster.gpus_per_member=1", "--set", "tracking.enabled=false",
                      "--set", f"output.root={tmp_path}/runs"]) == 2
    finally:
        if started:
            ray.shutdown()
    line = _one_error_line(capsys.readouterr().err)
    assert "cluster.gpus_per_member=1 asks for GPUs, but the cluster's largest node has 0 GPU and no " \
           "autoscaler can add one; set cluster.gpus_per_member=0" in line
    assert not (tmp_path / "runs").exists()


def test_credentials_never_reach_output_files_logs_errors_or_mlflow(tmp_path, capsys):
    from raygan.config import load_config
    from raygan.runs import RunFolder
    from raygan.tracking import Tracker

    # an unreachable tracking server with a password: one line in seconds, the password nowhere
    uri = f"http://user:{SECRET}@127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    assert _main(["train", "--set", f"tracking.tracking_uri={uri}", "--set",
                  f"output.root={tmp_path}/runs"]) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert f"the MLflow tracking server {uri.replace(SECRET, '***')} cannot be reached" in line
    assert "tracking_uri: http://user:***@127.0.0.1" in captured.out  # the printed resolved config
    assert SECRET not in captured.out + captured.err and time.monotonic() - t0 < 20
    assert _files(tmp_path) == []
    # pyarrow's own error text quotes the URI it was given
    assert _main(["train", "--set", f"output.root=file://user:{SECRET}@localhost{tmp_path}/x"]) == 2
    captured = capsys.readouterr()
    assert "file://user:***@localhost" in _one_error_line(captured.err)
    assert SECRET not in captured.out + captured.err
    # a real tiny job's bookkeeping: config.yaml, an MLflow parent run with every param, log lines
    cfg = load_config(overrides=[
        f"data.root=s3://AKIDKEY:{SECRET}@bucket/data?X-Amz-Signature={SECRET}",
        f"output.root={tmp_path}/runs", f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db"])
    run = RunFolder.for_config(cfg)
    run.write_config(cfg)
    tracker = Tracker(cfg, "train")
    with tracker.parent(run.path):
        logging.getLogger("raygan.test").info(f"reading {cfg.data.root}")
        tracker.log_metrics({"members": 0})
    captured = capsys.readouterr()
    assert "reading s3://AKIDKEY:***@bucket/data?X-Amz-Signature=***" in captured.out
    found = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert found == [] and SECRET not in captured.out + captured.err
    params = tracker.mlflow.get_run(tracker.parent_id).data.params
    assert params["data.root"] == "s3://AKIDKEY:***@bucket/data?X-Amz-Signature=***"
    assert (run.path / "config.yaml").read_text().count("***") == 2
