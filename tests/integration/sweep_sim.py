"""Sweeps on a simulated multi-node cluster, run as a script by test_sweep_multinode.py.

One ray.cluster_utils.Cluster (a head and two workers, one CPU each, so trials that run at the same
time run on different nodes) in this process, with its own RAY_TMPDIR (set by the test). Every node,
and every driver, has its own working folder and mirror ($RAYGAN_MIRROR_DIR, $XDG_CACHE_HOME): the run
folder is reachable only through its file:// URI, as shared storage would be. In turn:

  refused    a local output.root on this cluster: both sweeps refuse before any work
  train      train + synthesize the run on the URI (members on every node)
  classifier a 2 x 2 sweep in a child driver, SIGKILLed once a trial finished, then restored here
  gan        a tiny 2 x 2 GAN search; its trial folders in the sweep's storage

and prints one JSON line, RESULT {...}, for the test to check.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(sys.argv[1]).resolve() if __name__ == "__main__" else Path(".")
ROOT = f"file://{WORK}/shared/runs"
with socket.socket() as _s:  # MLflow's server (a URI output.root needs one; raygan.runs.folder)
    _s.bind(("127.0.0.1", 0))
    MLFLOW = f"http://127.0.0.1:{_s.getsockname()[1]}"


def _own_folder(name: str) -> dict:
    """The environment of a node or driver of its own: its mirror and cache in WORK/<name>."""
    folder = WORK / name
    folder.mkdir(parents=True, exist_ok=True)
    return {"RAYGAN_MIRROR_DIR": str(folder / "mirror"), "XDG_CACHE_HOME": str(folder / "cache")}


def _overrides(*extra: str) -> list[str]:
    return ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=4", "gan.z_dim=8",
            "train.batch_size=16", "train.steps=4", "train.checkpoint_every=4", "train.log_every=2",
            "ensemble.members=1", "ensemble.samples_per_class=200", "output.sample_grid=4", "cluster.max_retries=0",
            f"tracking.tracking_uri={MLFLOW}", f"output.root={ROOT}",
            "sweep.cpus_per_trial=1", "sweep.max_concurrent=3", "eval.seed=0", *extra]


CLASSIFIER = ["sweep.name=grid", "sweep.arch=[mlp]", "sweep.epochs=[1, 20]", "sweep.mixing_ratio=[0, 1]",
              "sweep.grace_period=20", "sweep.batch_size=[4]"]  # long trials: seconds
GAN = ["sweep.name=gan", "sweep.target=gan", "ensemble.members=1", "sweep.gan_rungs=1", "eval.epochs=1",
       "eval.metric_samples=50", "sweep.gan_space={gan.width: [4, 8], train.steps: [30, 40]}"]


def _cfg(*extra: str):
    from raygan.config import load_config
    return load_config(overrides=_overrides(*extra))


def _refused() -> dict:
    from raygan.cluster.sweep import run_sweep
    from raygan.config import ConfigError

    out = {}
    for name, extra in (("classifier", CLASSIFIER), ("gan", GAN)):
        local = WORK / "local" / name
        try:
            run_sweep(_cfg(*extra, f"output.root={local}"))
            out[name] = {"error": None}
        except ConfigError as err:
            out[name] = {"error": str(err), "written": local.exists()}
    return out


def _mlflow(name: str) -> list[dict]:
    from mlflow import MlflowClient

    client = MlflowClient(MLFLOW)
    exp = client.get_experiment_by_name("raygan/default")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`raygan.sweep` = '{name}'")
    return [{"status": r.info.status, "trial_id": r.data.tags.get("raygan.trial_id")} for r in runs]


def _statuses(storage: Path) -> dict:
    states = sorted(glob.glob(f"{storage}/experiment_state-*.json"), key=os.path.getmtime)
    try:
        data = json.loads(Path(states[-1]).read_text()) if states else {"trial_data": []}
    except (json.JSONDecodeError, OSError):  # caught mid-write
        return {}
    return {json.loads(t[0])["trial_id"]: json.loads(t[0])["status"] for t in data["trial_data"]}


def _killed_then_restored(address: str) -> dict:
    """The classifier sweep in a child driver (its own folder), killed once a trial has finished."""
    from raygan.cluster.sweep import run_sweep

    cfg = _cfg(*CLASSIFIER)
    config_path = WORK / "classifier.yaml"
    config_path.write_text(cfg.to_yaml())
    code = ("from raygan.config import load_config\nfrom raygan.cluster.sweep import run_sweep\n"
            f"run_sweep(load_config({str(config_path)!r}), address={address!r})\n")
    env = {**os.environ, **_own_folder("driver1"), "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    storage = WORK / "shared/runs/default/run/tune/grid"
    with open(WORK / "driver1.log", "w") as log:
        child = subprocess.Popen([sys.executable, "-c", code], cwd=WORK / "driver1", env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
    at_kill, deadline = {}, time.monotonic() + 240
    try:
        while time.monotonic() < deadline and child.poll() is None:
            at_kill = _statuses(storage)
            if "TERMINATED" in at_kill.values():
                break
            time.sleep(0.2)
    finally:
        child.kill()
        child.wait()
    out = run_sweep(cfg)
    return {"at_kill": at_kill, "child_rc": child.returncode, "restored": out["restored"],
            "counts": out["counts"], "storage": out["storage"], "mlflow": _mlflow("grid"),
            "trials": [{k: t.get(k) for k in ("trial_id", "node_id", "train_source", "train_size",
                                              "epochs_run", "config")} for t in out["trials"]],
            "child_log": (WORK / "driver1.log").read_text()[-1500:]}


def _mlflow_server() -> subprocess.Popen:
    port = MLFLOW.rsplit(":", 1)[1]
    # One worker and no job runner: the server only records a few runs here.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", port,
                             "--workers", "1", "--backend-store-uri", f"sqlite:///{WORK}/mlflow.db",
                             "--artifacts-destination", f"file://{WORK}/mlartifacts"], env=env,
                            stdout=open(WORK / "mlflow.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for(url: str, seconds: float) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def main() -> dict:
    os.environ.update(_own_folder("driver0"))
    os.chdir(WORK / "driver0")
    server = _mlflow_server()  # starts while the cluster does
    import ray
    from ray.cluster_utils import Cluster

    from raygan.cluster.pipeline import run_synth, run_train
    from raygan.cluster.sweep import run_sweep

    t0 = time.time()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "env_vars": _own_folder("node0")})
    for i in (1, 2):
        cluster.add_node(num_cpus=1, env_vars=_own_folder(f"node{i}"))
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    times = {"cluster": time.time() - t0}
    try:
        _wait_for(MLFLOW, 120)
        times["mlflow"] = time.time() - t0
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        refused = _refused()
        times["refused"] = time.time() - t0
        base = _cfg()
        run_train(base)
        run_synth(base)
        times["trained"] = time.time() - t0
        classifier = _killed_then_restored(cluster.address)
        times["classifier"] = time.time() - t0
        gan = run_sweep(_cfg(*GAN))
        times["gan"] = time.time() - t0
        shared = Path(gan["storage"].removeprefix("file://"))
        return {"nodes": nodes, "refused": refused, "classifier": classifier,
                "gan": {"counts": gan["counts"], "storage": gan["storage"], "restored": gan["restored"],
                        "mlflow": _mlflow("gan"),
                        "trials": [{k: t.get(k) for k in ("trial_id", "node_id", "folder", "gan_steps")}
                                   for t in gan["trials"]],
                        "manifests": sorted(p.parent.name for p in shared.glob("trials/*/manifest.json")),
                        "driver_mirror_trials": [str(p) for p in (WORK / "driver0").rglob("rungs.json")]},
                "seconds": {k: round(v, 1) for k, v in times.items()}}
    finally:
        ray.shutdown()
        cluster.shutdown()
        os.killpg(server.pid, signal.SIGKILL)  # the server and its workers


if __name__ == "__main__":
    print("RESULT " + json.dumps(main()), flush=True)
