"""The pipeline ends with evaluation and a report; ensembles beat a single GAN on digits."""
from __future__ import annotations

import json

import numpy as np
import pytest

from raygan.cluster.pipeline import run_pipeline
from raygan.reporting.report import write_report
from raygan.runs import RunFolder


def test_pipeline_ends_with_evaluation_and_report(ray_session, ray_cfg):
    cfg = ray_cfg("digits", "ensemble.members=2", "eval.repeats=2", "eval.epochs=3", "eval.mixing=true",
                  "eval.mixing_ratios=[0, 1]")
    result = run_pipeline(cfg)
    run = RunFolder(result["run_dir"])
    ev = json.loads((run.path / "eval" / "evaluation.json").read_text())
    assert [r["T"] for r in ev["tstr_curve"]] == [1, 2]
    assert ev["trtr"]["repeats"] == 2 and ev["trtr"]["test_acc_mean"] > 0.8  # 2 classes, real data
    for row in ev["tstr_curve"]:
        assert len(row["histories"]) == 2 and len(row["histories"][0]) == 3
        assert np.array(row["confusion"]).sum() == 270
    assert 0.0 <= ev["trts"] <= 1.0
    assert [m["ratio"] for m in ev["mixing"]] == [0.0, 1.0]
    report = (run.path / "report.md").read_text()
    assert "| real (TRTR) |" in report and "EnsGAN-2" in report and "best-test-epoch" in report
    for name in ("accuracy_vs_T.png", "training_curves.png", "member_grids.png"):
        assert (run.path / "plots" / name).stat().st_size > 5_000
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{cfg.output.root}/mlflow.db")
    exp = client.get_experiment_by_name("raygan/default")
    evals = [r for r in client.search_runs([exp.experiment_id])
             if r.data.tags.get("raygan.job") == "evaluate"]
    assert len(evals) == 1
    assert {"trtr_test_acc", "tstr_test_acc_T1", "tstr_test_acc_T2"} <= set(evals[0].data.metrics)
    assert "accuracy_vs_T.png" in {a.path for a in client.list_artifacts(evals[0].info.run_id)}


def test_report_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a raygan run folder"):
        write_report(tmp_path)


def test_digits_ensemble_of_five_beats_a_single_gan(ray_session, ray_cfg):
    """Seed 000's central claim at CI size: TSTR accuracy of EnsGAN-5 above a single GAN's."""
    cfg = ray_cfg("digits", "data.grouping=null", "gan.width=16", "train.steps=300",
                  "train.checkpoint_every=300", "ensemble.members=5", "eval.repeats=3",
                  "eval.epochs=8", "tracking.enabled=false")
    ev = run_pipeline(cfg)["evaluation"]
    by_t = {r["T"]: r for r in ev["tstr_curve"]}
    single, ensemble = by_t[1]["test_acc_mean"], by_t[5]["test_acc_mean"]
    assert ensemble > single + 0.03, (single, ensemble)
    assert ev["trtr"]["test_acc_mean"] > ensemble  # real data stays the upper line


def test_ray_fan_out_gives_the_in_process_numbers_and_only_the_driver_writes(ray_session, ray_cfg):
    """Every pack of classifiers and every quality set a Ray task: the numbers of evaluate_run in this
    process, and eval/evaluation.json and the manifest entry written by the driver."""
    from raygan.cluster.evaluation import evaluate_on_ray
    from raygan.data import load_dataset
    from raygan.ensemble.training import train_independent
    from raygan.evaluation.curves import evaluate_run
    from raygan.synthesis.shards import mixture_weights, write_shards

    # here one torch thread (tests/conftest.py), in the tasks cluster.cpus_per_member=1: the same sums;
    # a given pack size makes the same packs here and on Ray (auto spreads them over the task slots)
    cfg = ray_cfg("digits", "eval.repeats=2", "eval.epochs=1", "eval.filter_rho=0.5", "eval.pack_size=2",
                  "eval.metrics=[msssim]", "eval.metric_samples=40", "tracking.enabled=false")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    run.write_config(cfg)
    train_independent(cfg, ds, run)
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))
    here = evaluate_run(cfg, ds, run)
    (run.path / "eval" / "evaluation.json").unlink()
    run.update_manifest(evaluation=None)
    on_ray = evaluate_on_ray(cfg, ds, run, {"num_cpus": 1.0, "num_gpus": 0})
    assert on_ray == here
    assert [(r["T"], r["source"]) for r in on_ray["tstr_curve"]] == [(1, "regenerated"), (2, "shards")]
    assert all(len(r["histories"]) == 2 for r in on_ray["tstr_curve"])
    assert on_ray["classifier_packs"]["packed"] == 6  # TRTR and each T's filtered set: pairs
    assert json.loads((run.path / "eval" / "evaluation.json").read_text()) == json.loads(json.dumps(here))
    assert run.manifest()["evaluation"] == "eval/evaluation.json"
