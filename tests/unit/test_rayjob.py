"""jobs/rayjob.yaml (issue 29): a KubeRay ray.io/v1 RayJob with the fields KubeRay requires, a CPU-only
head, an autoscaling GPU worker group, the run folder on object storage and the cluster deleted when the
job ends; and it runs what `ray job submit` runs in docs/cluster.md (the same entrypoint and runtime
environment) on the same image as cluster.yaml (jobs/Dockerfile). Read from the files; nothing starts."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from raygan.cluster.entry import JOBS
from raygan.config import load_config
from raygan.runs.storage import is_uri

REPO = Path(__file__).resolve().parents[2]
RAYJOB = yaml.safe_load((REPO / "jobs/rayjob.yaml").read_text())
DOCKERFILE = (REPO / "jobs/Dockerfile").read_text()
CLUSTER = yaml.safe_load((REPO / "cluster.yaml").read_text())


def _submit_command() -> list[str]:
    """docs/cluster.md's `ray job submit ... -- <entrypoint>` (continuation lines joined), as tokens."""
    text = (REPO / "docs/cluster.md").read_text().replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if ln.strip().startswith("ray job submit --address")][:1]
    return shlex.split(line)


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def test_the_fields_kuberays_rayjob_requires():
    assert RAYJOB["apiVersion"] == "ray.io/v1" and RAYJOB["kind"] == "RayJob" and RAYJOB["metadata"]["name"]
    spec = RAYJOB["spec"]
    cluster = spec["rayClusterSpec"]
    head, workers = cluster["headGroupSpec"], cluster["workerGroupSpecs"]
    groups = [head, *workers]
    for group in groups:  # HeadGroupSpec: rayStartParams, template; WorkerGroupSpec also groupName, min/max
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())  # a map of strings
        assert all(c["name"] and c["image"] for c in _containers(group))
    for group in workers:
        assert group["groupName"] and 0 <= group["minReplicas"] <= group["maxReplicas"]
    assert isinstance(spec["entrypoint"], str) and isinstance(spec["runtimeEnvYAML"], str)


def test_cpu_head_autoscaling_gpu_workers_and_the_cluster_goes_with_the_job():
    spec = RAYJOB["spec"]
    cluster = spec["rayClusterSpec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert cluster["enableInTreeAutoscaling"] is True
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0"
    assert not any("nvidia.com/gpu" in c["resources"]["limits"] for c in _containers(head))
    [gpu] = [g for g in cluster["workerGroupSpecs"]
             if any(c["resources"]["limits"].get("nvidia.com/gpu", 0) >= 1 for c in _containers(g))]
    assert gpu["minReplicas"] == 0 and gpu["maxReplicas"] >= 1  # from zero, as cluster.yaml's gpu type
    gpu_type = next(t for t in CLUSTER["available_node_types"].values() if t["resources"].get("GPU"))
    assert gpu["maxReplicas"] == gpu_type["max_workers"]
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 60 * CLUSTER["idle_timeout_minutes"]


def test_entrypoint_and_runtime_env_are_what_ray_job_submit_runs():
    tokens = _submit_command()
    entrypoint = tokens[tokens.index("--") + 1:]
    assert shlex.split(RAYJOB["spec"]["entrypoint"]) == entrypoint
    options = tokens[:tokens.index("--")]
    submitted = {"working_dir": options[options.index("--working-dir") + 1]}
    runtime_env = yaml.safe_load(RAYJOB["spec"]["runtimeEnvYAML"])
    assert runtime_env.keys() == submitted.keys()
    # `--working-dir .` ships the checkout: in the RayJob it is the image's copy of it
    copied = re.search(r"^COPY .*\. (\S+)$", DOCKERFILE, re.M).group(1)
    assert submitted["working_dir"] == "." and runtime_env["working_dir"] == copied
    assert re.search(r"^WORKDIR (\S+)$", DOCKERFILE, re.M).group(1) == copied
    # a raygan job on a config whose run folder is on object storage, with GPU members
    assert entrypoint[:3] == ["python", "-m", "raygan"] and entrypoint[3] in JOBS
    cfg = load_config(REPO / entrypoint[entrypoint.index("--config") + 1])
    assert is_uri(cfg.output.root) and cfg.cluster.gpus_per_member >= 1


def test_the_image_is_cluster_yamls_with_raygan_installed_the_same_way():
    image = re.search(r"^FROM (\S+)$", DOCKERFILE, re.M).group(1)
    assert image == CLUSTER["docker"]["image"]
    images = {c["image"] for g in [RAYJOB["spec"]["rayClusterSpec"]["headGroupSpec"],
                                   *RAYJOB["spec"]["rayClusterSpec"]["workerGroupSpecs"]] for c in _containers(g)}
    assert len(images) == 1 and images.pop().endswith(":" + image.split(":")[1].split("-")[0])
    assert RAYJOB["spec"]["rayClusterSpec"]["rayVersion"] == image.split(":")[1].split("-")[0]
    runs = re.findall(r"^RUN (.+)$", DOCKERFILE, re.M)
    assert runs == CLUSTER["setup_commands"]


def test_docs_show_the_kubectl_steps():
    text = (REPO / "docs/cluster.md").read_text()
    assert "kubectl apply -f jobs/rayjob.yaml" in text and "docker build -f jobs/Dockerfile" in text
