"""Input that used to be refused only after a local Ray had started, or inside a task (issue 25 item 7),
refused by the `raygan` command before Ray starts: one line, exit 2, nothing written."""
from __future__ import annotations

import pytest
import torch
from cli_calls import files, run_main, sets

TINY = ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
        "train.steps=2", "train.batch_size=16", "train.checkpoint_every=2", "train.log_every=2",
        "ensemble.members=1", "output.sample_grid=4", "tracking.enabled=false", "cluster.members_per_task=1"]





@pytest.fixture
def ray_must_not_start(monkeypatch):
    """This process as a fresh `raygan` run sees it: no Ray yet, and starting one fails the test (the
    test session's Ray, if any, is left alone)."""
    import ray

    def started(*args, **kwargs):
        raise AssertionError("a local Ray was started before the refusal")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", started)


def _refused(capsys, argv: list[str], message: str) -> None:
    assert run_main(argv) == 2, capsys.readouterr().err
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("raygan:")]
    assert len(lines) == 1 and lines[0].startswith("raygan: config error: ") and message in lines[0], err
    assert "Traceback" not in err


def test_adam_betas_of_one_are_refused_at_load(tmp_path, capsys, ray_must_not_start):
    for key in ("gan.beta1", "gan.beta2"):
        _refused(capsys, ["train", *sets(*TINY, f"output.root={tmp_path}/runs", f"{key}=1.0")],
                 f"{key}: 1.0 is out of range; it must be < 1.0")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpus_this_machine_lacks_are_refused_before_a_local_ray_starts(tmp_path, capsys, ray_must_not_start):
    root = f"output.root={tmp_path}/runs"
    _refused(capsys, ["train", *sets(*TINY, root, "train.device=cuda")],
             "train.device=cuda, but torch sees no CUDA device on this machine and no cluster is named "
             "(a local Ray would start here); set train.device=auto (CUDA where there is one) or cpu")
    _refused(capsys, ["pipeline", *sets(*TINY, root, "cluster.gpus_per_member=1")],
             "cluster.gpus_per_member=1 asks for GPUs, but this machine has 0 GPU and no cluster is named")
    assert not (tmp_path / "runs").exists()


def test_synthesize_and_sweep_without_the_members_they_need_are_refused_before_ray(
        tmp_path, capsys, ray_must_not_start):
    root = f"output.root={tmp_path}/runs"
    _refused(capsys, ["synthesize", *sets(*TINY, root)],
             "has no trained member(s) [0] in")
    assert not (tmp_path / "runs").exists()
    from raygan.config import load_config
    from raygan.data import load_dataset
    from raygan.ensemble.training import train_independent
    from raygan.runs import RunFolder

    cfg = load_config(overrides=[*TINY, root])  # one member per class, trained here without Ray
    run = RunFolder.for_config(cfg)
    train_independent(cfg, load_dataset(cfg.data), run)
    before = files(tmp_path)
    _refused(capsys, ["sweep", *sets(*TINY, root, "sweep.members=[2]", "sweep.epochs=[1]")],
             "has 1 of the 2 trained members of class 0-4 the sweep needs")
    assert files(tmp_path) == before


def test_data_parallel_members_that_cannot_run_are_refused_before_ray(tmp_path, capsys, ray_must_not_start):
    root = f"output.root={tmp_path}/runs"
    # more workers than a local Ray on this machine would ever have (no cluster named, no autoscaler)
    _refused(capsys, ["train", *sets(*TINY, root, "cluster.workers_per_member=4096", "train.batch_size=4096")],
             "cluster.workers_per_member=4096 x cluster.cpus_per_member=1 CPUs, but a local Ray here would have")
    # a family that cannot run under DistributedDataParallel: refused when the config loads
    _refused(capsys, ["train", *sets(*TINY, root, "cluster.workers_per_member=2", "gan.family=pggan")],
             "cluster.workers_per_member=2: gan.family=pggan cannot train under DistributedDataParallel")
    assert not (tmp_path / "runs").exists()
