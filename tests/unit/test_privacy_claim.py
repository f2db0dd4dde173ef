"""The released set says what it promises (issue 26 item 4): a run trained under differential privacy
carries its ledger's claim (epsilon, delta, adjacency, unit, accountant, what was declared public) in
report.md, MLflow, the export's export.json and the shards' Hugging Face metadata; a run without
privacy says that it has no formal guarantee, and its shards carry no claim."""
import json

import pyarrow.parquet as pq
from mlflow.tracking import MlflowClient

from raygan.cluster.pipeline import log_privacy_claim
from raygan.config import from_dict
from raygan.ensemble.training import train_independent
from raygan.evaluation.job import prepare
from raygan.privacy.ledger import NO_CLAIM, read_ledger, release_claim
from raygan.reporting.report import claim_markdown, write_report
from raygan.synthesis.shards import mixture_weights, write_shards
from raygan.tools.export import export_run
from raygan.tracking import Tracker

TINY = {"data": {"classes": {"zero": [0], "one": [1]}}, "gan": {"width": 8, "z_dim": 16},
        "train": {"steps": 4, "batch_size": 16, "log_every": 2, "checkpoint_every": 2, "device": "cpu",
                  "divergence_retries": 0},
        "ensemble": {"members": 2}, "synth": {"chunk_size": 128}, "output": {"sample_grid": 4}}


def test_a_dp_run_carries_its_claim_everywhere_the_set_goes(tmp_path):
    cfg = from_dict({**TINY, "privacy": {"epsilon": 8.0, "accountant": "rdp"},
                     "tracking": {"enabled": True},
                     "output": {**TINY["output"], "root": str(tmp_path / "runs")}})
    dataset, run = prepare(cfg)
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    ledger = read_ledger(run.path)
    write_shards(cfg, dataset, run, mixture_weights(cfg, dataset, run))

    # the shards: datasets' description is the claim's sentence, the claim itself under raygan.privacy
    files = sorted((run.path / "shards").glob("*.parquet"))
    assert files
    for f in files:
        meta = pq.read_schema(f).metadata
        claim = json.loads(meta[b"raygan.privacy"])
        assert claim["epsilon"] == ledger["epsilon"] and claim["delta"] == ledger["delta"]
        assert claim["unit"] == "record" and claim["adjacency"].startswith("add/remove")
        assert claim["accountant"] == "rdp" and claim["declared_public"] == ledger["declared_public"]
        info = json.loads(meta[b"huggingface"])["info"]
        assert info["description"] == claim["statement"] and f"({ledger['epsilon']:.4g}," in info["description"]
        assert info["features"]["label"]["names"] == ["zero", "one"]

    # report.md
    report = write_report(run.path).read_text()
    assert "## Differential privacy" in report
    assert f"epsilon {ledger['epsilon']:.4g} (target 8)" in report and "accountant: rdp" in report

    # export.json (forced: this run has no audit)
    summary = export_run(run.path, tmp_path / "export", force=True)
    saved = json.loads((tmp_path / "export" / "export.json").read_text())
    assert saved["privacy"] == summary["privacy"] == release_claim(ledger)

    # MLflow: the train job's parent run gets epsilon, delta and privacy.json
    tracker = Tracker(cfg, "train")
    with tracker.parent(run.path):
        log_privacy_claim(run, tracker)
    client = MlflowClient(f"sqlite:///{cfg.output.root}/mlflow.db")
    [parent] = client.search_runs([client.get_experiment_by_name("raygan/default").experiment_id])
    assert parent.data.metrics["privacy_epsilon"] == ledger["epsilon"]
    assert parent.data.metrics["privacy_delta"] == ledger["delta"]
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["privacy.json"]


def test_a_run_without_privacy_claims_no_guarantee():
    claim = release_claim(None)
    assert claim == {"differential_privacy": False, "statement": NO_CLAIM}
    text = claim_markdown(claim)
    assert "## Differential privacy" in text and "no formal privacy guarantee" in text and "- epsilon" not in text
