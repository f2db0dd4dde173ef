"""raygan.ensemble.boosting_loop: the AdaGAN / reweighting step loop with fake callables (order of the
steps, the state saved after each, a restart continuing at the next step) and one step's weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from raygan.config import load_config
from raygan.ensemble import boosting
from raygan.ensemble.boosting_loop import (
    data_weights_path,
    load_state,
    mixture_so_far,
    run_boosting,
    run_lockstep,
    state_path,
    step_weights,
)
from raygan.ensemble.mixture import Mixture
from raygan.runs import RunFolder
from raygan.seeds import member as member_seed

N = 8  # real points of the fake class


def _cfg(tmp_path, *overrides):
    return load_config(overrides=["ensemble.method=adagan", "ensemble.members=3",
                                  f"output.root={tmp_path}/runs", *overrides])


class _Fakes:
    """compute_weights / train_member stand-ins that record their calls and what was on disk then."""

    def __init__(self, run: RunFolder, fail_member: int | None = None):
        self.run, self.fail_member, self.calls = run, fail_member, []

    def compute_weights(self, *, state: dict, step: int):
        self.calls.append(("weights", step, [e["member"] for e in state["members"]]))
        weights = np.arange(1, N + 1, dtype=np.float64) * step
        info = {"beta": 1.0 / step, "effective_sample_size": 5.0, "zero_fraction": 0.0,
                "not_json": np.zeros(2)}  # dropped from the step record
        return weights / weights.sum(), info

    def train_member(self, *, member: int, data_weights):
        self.calls.append(("member", member, None if data_weights is None else data_weights.clone()))
        if member == self.fail_member:
            raise RuntimeError("member task lost")
        return {"class": "a", "member": member, "generator": f"members/a/{member}/generator.pt"}


def test_steps_run_in_order_with_uniform_weights_first_and_the_state_saved_after_each(tmp_path, raygan_logs):
    cfg, run = _cfg(tmp_path), RunFolder(tmp_path / "run")
    fakes, on_disk = _Fakes(run), []
    state = run_boosting(cfg, run, "a", 0, compute_weights=fakes.compute_weights,
                         train_member=fakes.train_member,
                         on_step=lambda s: on_disk.append((s["step"], json.loads(state_path(run, "a").read_text()))))
    assert [c[:2] for c in fakes.calls] == [("member", 0), ("weights", 2), ("member", 1), ("weights", 3),
                                             ("member", 2)]
    assert fakes.calls[0][2] is None  # step 1: uniform data weights
    # each step's weights see the members trained before it, and go to the member as float32
    assert fakes.calls[1][2] == [0] and fakes.calls[3][2] == [0, 1]
    assert fakes.calls[2][2].dtype == torch.float32
    assert [step for step, _ in on_disk] == [1, 2, 3]
    assert all(saved["step"] == step and len(saved["members"]) == step for step, saved in on_disk)
    assert state == json.loads(state_path(run, "a").read_text()) == load_state(run, "a")
    assert state["mixture_weights"] == pytest.approx([1 / 3] * 3)
    assert set(state) == {"class", "step", "mixture_weights", "members", "steps"}
    assert state["steps"][0] == {"step": 1, "beta": 1.0, "uniform_data_weights": True,
                                 "mixture_weights": [1.0], "seconds": state["steps"][0]["seconds"]}
    assert "not_json" not in state["steps"][1] and state["steps"][1]["effective_sample_size"] == 5.0
    assert not data_weights_path(run, "a", 1).exists()
    for step in (2, 3):
        saved = np.load(data_weights_path(run, "a", step))
        assert saved.dtype == np.float64 and saved.sum() == pytest.approx(1.0)
    lines = [line for line in raygan_logs if line.startswith("[boosting]")]
    assert lines == ["[boosting] class a step 1/3: beta 1.000, uniform data weights, mixture [1.0]",
                     "[boosting] class a step 2/3: beta 0.500, ESS 5.0, mixture [0.5, 0.5]",
                     "[boosting] class a step 3/3: beta 0.333, ESS 5.0, mixture [0.333, 0.333, 0.333]"]


def test_a_restarted_loop_continues_at_the_next_step_and_redoes_nothing(tmp_path):
    cfg, run = _cfg(tmp_path), RunFolder(tmp_path / "run")
    crashed = _Fakes(run, fail_member=1)
    with pytest.raises(RuntimeError, match="member task lost"):
        run_boosting(cfg, run, "a", 0, compute_weights=crashed.compute_weights,
                     train_member=crashed.train_member)
    assert load_state(run, "a")["step"] == 1  # step 2 did not finish: its state was not saved
    again = _Fakes(run)
    state = run_boosting(cfg, run, "a", 0, compute_weights=again.compute_weights,
                         train_member=again.train_member)
    assert [c[:2] for c in again.calls] == [("weights", 2), ("member", 1), ("weights", 3), ("member", 2)]
    assert [e["member"] for e in state["members"]] == [0, 1, 2] and state["step"] == 3
    done = _Fakes(run)
    assert run_boosting(cfg, run, "a", 0, compute_weights=done.compute_weights,
                        train_member=done.train_member) == state
    assert done.calls == []


def test_the_state_layout_is_the_one_old_run_folders_have(tmp_path):
    run = RunFolder(tmp_path / "run")
    assert state_path(run, "a") == run.path / "boosting" / "a" / "state.json"
    assert data_weights_path(run, "a", 2) == run.path / "boosting" / "a" / "data_weights_step2.npy"
    assert load_state(run, "a") == {"class": "a", "step": 0, "mixture_weights": [], "members": [],
                                    "steps": []}


class _Points(nn.Module):
    """A generator of 2-D points: what Mixture.sample needs (z_dim, forward)."""

    def __init__(self, shift: float):
        super().__init__()
        self.z_dim, self.shift = 2, shift

    def forward(self, z):
        return z + self.shift


@pytest.mark.parametrize("method", ["adagan", "reweight"])
def test_step_weights_sample_the_mixture_with_the_step_seed(tmp_path, method):
    cfg = _cfg(tmp_path, f"ensemble.method={method}", "boosting.classifier_epochs=1")
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    generators, mixture_weights = [_Points(0.0), _Points(2.0)], [0.5, 0.5]
    weights, info = step_weights(cfg, data, generators, mixture_weights, class_index=1, step=3, device="cpu")
    # the seed every run before raygan.seeds used: member index 10_000 + step
    seed = member_seed(cfg.train.seed, 1, 10_003)
    samples, _ = Mixture(generators, np.asarray(mixture_weights)).sample(64, seed=seed)
    b = cfg.boosting
    if method == "adagan":
        expected, expected_info = boosting.adagan_step_weights(data, samples, beta=1 / 3, rule=b.rule, seed=seed,
                                                               epochs=1, topk_fraction=b.topk_fraction)
        assert info == expected_info
    else:
        expected = boosting.feature_distance_weights(data, samples, transform=b.reweight_transform)
        assert set(info) == {"beta", "transform", "effective_sample_size", "zero_fraction"}
    assert weights.dtype == np.float64 and np.array_equal(weights, expected)


def test_lockstep_steps_every_class_at_its_own_next_step_and_a_diverged_member_keeps_the_mixture(tmp_path):
    cfg, run = _cfg(tmp_path), RunFolder(tmp_path / "run")
    # class b crashed after its first step: the classes resume at different steps
    run_boosting(cfg, run, "b", 1, compute_weights=_Fakes(run).compute_weights,
                 train_member=lambda *, member, data_weights: {"class": "b", "member": member,
                                                              "generator": f"members/b/{member}/generator.pt"})
    state_b = load_state(run, "b")
    state_b = {**state_b, "step": 1, "mixture_weights": [1.0], "members": state_b["members"][:1],
               "steps": state_b["steps"][:1]}
    state_path(run, "b").write_text(json.dumps(state_b))
    rounds, asked = [], []

    def compute_weights(asks):
        asked.append([(name, step, [e["member"] for e in state["members"]]) for _, name, state, step in asks])
        return [(np.full(N, 1.0 / N), {"beta": 0.5, "effective_sample_size": float(N)}) for _ in asks]

    def train_step(heads):
        rounds.append([(k, name, t, w is not None) for k, name, t, w in heads])
        # class a's member 1 diverged in every attempt
        return [{"class": name, "member": t, "status": "diverged" if (name, t) == ("a", 1) else "complete",
                 "generator": f"members/{name}/{t}/generator.pt"} for _, name, t, _ in heads]

    states = run_lockstep(cfg, run, [(0, "a"), (1, "b")], compute_weights=compute_weights, train_step=train_step)
    # every round: each unfinished class one step on, its members trained together
    assert rounds == [[(0, "a", 0, False), (1, "b", 1, True)], [(0, "a", 1, True), (1, "b", 2, True)],
                      [(0, "a", 2, True)]]
    assert asked == [[("b", 2, [0])], [("a", 2, [0]), ("b", 3, [0, 1])], [("a", 3, [0, 1])]]
    a = states["a"]
    assert a == load_state(run, "a") and a["step"] == 3 and states["b"]["step"] == 3
    # the diverged step left the mixture as it was (weight 0); step 3 mixed as usual
    assert a["mixture_weights"] == pytest.approx([2 / 3, 0.0, 1 / 3])
    assert a["steps"][1]["member_diverged"] is True and "member_diverged" not in a["steps"][2]
    kept, weights = mixture_so_far({**a, "members": a["members"][:2], "mixture_weights": [1.0, 0.0]})
    assert [e["member"] for e in kept] == [0] and weights == [1.0]
