"""GAN searches (sweep.target=gan) on the shared 2-CPU Ray: a 2 x 2 grid end to end with MLflow and
the best trial's config file, a sweep whose driver is killed mid-trial and resumed, and a changed space
refused on a rerun."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from raygan.cli import main
from raygan.cluster.sweep import run_sweep
from raygan.config import ConfigError, load_config

# digits with the II grouping, dcgan width 4-8, one member per class, a 2-epoch classifier
GAN_SWEEP = ["sweep.target=gan", "ensemble.members=1", "train.steps=20", "sweep.gan_rungs=2",
             "eval.epochs=2", "sweep.max_concurrent=2", "eval.metric_samples=200"]
GRID = "sweep.gan_space={gan.width: [4, 8], train.batch_size: [16, 32]}"


def _runs(cfg, name):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{Path(cfg.output.root).resolve()}/mlflow.db")
    exp = client.get_experiment_by_name(f"raygan/{cfg.output.experiment}")
    return client, client.search_runs([exp.experiment_id], filter_string=f"tags.`raygan.sweep` = '{name}'")


def test_gan_grid_sweep_trains_scores_logs_and_writes_the_best_config(ray_session, ray_cfg, raygan_logs,
                                                                      capsys):
    cfg = ray_cfg("digits", *GAN_SWEEP, GRID, "sweep.name=g2x2", "gan.width=4")
    out = run_sweep(cfg)  # dispatched on sweep.target; no trained run folder exists (none needed)

    assert out["restored"] is False
    assert out["counts"] == {"TERMINATED": 4, "ERROR": 0, "total": 4}
    trials = out["trials"]
    assert {(t["config"]["gan.width"], t["config"]["train.batch_size"]) for t in trials} == \
        {(4, 16), (4, 32), (8, 16), (8, 32)}
    storage = Path(out["storage"])
    for t in trials:
        assert t["gan_steps"] in (10, 20) and t["rungs_run"] == t["gan_steps"] // 10  # ASHA: rung 1 or 2
        assert 0.0 <= t["val_tstr"] <= 1.0 and 0.0 <= t["classifier_score"] <= 1.0 and t["domain_fd"] > 0
        assert t["train_size"] == 630 + 627  # N_g = N real per class
        folder = storage / "trials" / t["trial_id"]  # the trial's own run folder, members inside
        rungs = json.loads((folder / "rungs.json").read_text())["rungs"]
        assert [r["gan_steps"] for r in rungs] == [10, 20][:t["rungs_run"]]
        manifest = json.loads((folder / "manifest.json").read_text())
        assert sorted(manifest["members"]) == ["0-4/0", "5-9/0"]
        assert {e["steps"] for e in manifest["members"].values()} == {t["gan_steps"]}
    run_dir = Path(cfg.output.root) / "default" / "run"
    best = json.loads((run_dir / "eval" / "gan_sweep_best.json").read_text())
    assert best["best"]["trial_id"] == out["best"]["trial_id"] and best["best"]["complete"]
    assert best["best"]["val_tstr"] == max(t["val_tstr"] for t in trials if t["complete"])
    assert len(json.loads((run_dir / "eval" / "gan_sweep_trials.json").read_text())["trials"]) == 4
    assert any(line.startswith("best config: ") and "raygan pipeline --config" in line for line in raygan_logs)

    # MLflow, written by the driver: one FINISHED run per trial, one val_tstr point per rung
    client, runs = _runs(cfg, "g2x2")
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    by_id = {t["trial_id"]: t for t in trials}
    for r in runs:
        trial = by_id[r.data.tags["raygan.trial_id"]]
        assert int(r.data.params["gan.width"]) == trial["config"]["gan.width"]
        history = client.get_metric_history(r.info.run_id, "val_tstr")
        assert [m.step for m in history] == [10, 20][:trial["rungs_run"]]
        assert r.data.metrics["val_tstr"] == pytest.approx(trial["val_tstr"])

    # the best config: the sweep's deltas + the best point, no sweep section, a new run name
    best_file = Path(out["best_config"])
    assert best_file == run_dir / "eval" / "gan_sweep_best.yaml"
    deltas = load_config(best_file)
    assert deltas.gan.width == best["best"]["config"]["gan.width"]
    assert deltas.train.batch_size == best["best"]["config"]["train.batch_size"]
    assert deltas.train.steps == 20 and deltas.ensemble.members == 1 and deltas.data.grouping == "II"
    assert deltas.sweep == load_config().sweep and deltas.output.run == "run-g2x2-best"
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["pipeline", "--config", str(best_file), "--dry-run"])
    assert done.value.code == 0
    assert "run: run-g2x2-best" in capsys.readouterr().out

    # a rerun restores the finished sweep: nothing trained, no new MLflow run; another space is refused
    again = run_sweep(cfg)
    assert again["restored"] is True and again["counts"]["TERMINATED"] == 4
    assert len(_runs(cfg, "g2x2")[1]) == 4
    changed = cfg.replace(sweep={"gan_space": {"gan.width": [4, 6], "train.batch_size": [16, 32]}})
    with pytest.raises(ConfigError, match="started with other settings"):
        run_sweep(changed)


def _mid_trial(storage: Path) -> dict[str, list]:
    """trial id -> its rungs.json records, for the trials part-way through (some rungs, not all) that
    Tune's stored experiment state already lists (so that a restore finds them)."""
    states = sorted(storage.glob("experiment_state-*.json"), key=os.path.getmtime)
    try:
        stored = json.loads(states[-1].read_text())["trial_data"] if states else []
        listed = {json.loads(t[0])["trial_id"] for t in stored}
    except (json.JSONDecodeError, OSError):  # caught mid-write: look again
        return {}
    found = {}
    for path in storage.glob("trials/*/rungs.json"):
        try:
            rungs = json.loads(path.read_text())["rungs"]
        except (json.JSONDecodeError, OSError):
            continue
        if 0 < len(rungs) < 4 and path.parent.name in listed:
            found[path.parent.name] = rungs
    return found


def test_killed_gan_sweep_resumes_its_trial_from_its_folder(ray_session, ray_cfg, tmp_path, start_sweep_driver):
    # One trial of four rungs (ASHA never stops a lone trial), so that the kill lands inside it.
    cfg = ray_cfg("digits", *GAN_SWEEP, "sweep.gan_space={gan.width: [4]}", "sweep.name=killed",
                  "train.steps=120", "sweep.gan_rungs=4")
    storage = Path(cfg.output.root, "default", "run", "tune", "killed").resolve()
    child, child_log = start_sweep_driver(cfg, ray_session["gcs"], tmp_path)
    try:
        deadline, at_kill = time.monotonic() + 120, {}
        while time.monotonic() < deadline and not at_kill:
            assert child.poll() is None, f"the sweep ended before the kill:\n{child_log.read_text()[-3000:]}"
            at_kill = _mid_trial(storage)
            time.sleep(0.05)
        assert at_kill, f"no trial seen mid-way in time:\n{child_log.read_text()[-3000:]}"
    finally:
        child.kill()
        child.wait()

    out = run_sweep(cfg)
    assert out["restored"] is True
    assert out["counts"] == {"TERMINATED": 1, "ERROR": 0, "total": 1}
    [(trial_id, before)] = at_kill.items()
    assert out["trials"][0]["trial_id"] == trial_id and out["trials"][0]["gan_steps"] == 120
    held = json.loads((storage / "trials" / trial_id / "rungs.json").read_text())
    # it went on from the rungs its folder held: those kept as they were, the resume noted
    assert held["rungs"][:len(before)] == before and held["resumes"][0] >= len(before)
    assert [r["gan_steps"] for r in held["rungs"]] == [30, 60, 90, 120]
    manifest = json.loads((storage / "trials" / trial_id / "manifest.json").read_text())
    assert {e["steps"] for e in manifest["members"].values()} == {120}
    client, runs = _runs(cfg, "killed")  # one MLflow run for the trial, also after the restore
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "gan_steps")][-1] == 120
