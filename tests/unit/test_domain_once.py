"""The run's domain classifier is trained once per run folder (issue 28): whoever asks first (quality
metrics, audit, t-SNE) trains it, every later user loads it, on another node of a URI run too."""
from __future__ import annotations

import torch

import raygan.metrics.domain as domain
from raygan.config import load_config
from raygan.data import load_dataset
from raygan.runs import MIRROR_ENV, RunFolder


def _count_trainings(monkeypatch) -> list:
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return train(*args, **kwargs)

    train = domain.train_classifier
    monkeypatch.setattr(domain, "train_classifier", counted)
    return calls


def test_a_node_whose_mirror_lacks_the_cache_fetches_it_instead_of_training(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    dataset = load_dataset(load_config(overrides=["data.classes={a: [0], b: [1]}"]).data)
    run = RunFolder.at(f"file://{tmp_path}/store/exp/run")
    calls = _count_trainings(monkeypatch)
    first = domain.run_domain_classifier(dataset, run.path)
    assert (tmp_path / "store/exp/run" / domain.CACHE).is_file()  # stored with the run
    (run.path / domain.CACHE).unlink()  # another node: its mirror has no copy yet
    second = domain.run_domain_classifier(dataset, run.path)
    assert len(calls) == 1
    for name, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[name])
