"""Differential privacy for solo members (issue 26): DP-SGD on the discriminator (raygan.privacy.dpsgd),
one accountant over the ensemble (raygan.privacy.accountant) and the ledger (raygan.privacy.ledger), on
tiny digits members (8x8, width 8, a few steps)."""
import dataclasses
import functools
import json
import math

import pytest
import torch
from opacus.accountants import RDPAccountant

from raygan.cluster.packing import choose_pack_size
from raygan.config import ConfigError, DataConfig, GANConfig, TrainConfig, from_dict
from raygan.data import load_dataset
from raygan.ensemble.training import train_independent
from raygan.evaluation.job import prepare
from raygan.gan.losses import D_TERMS, d_loss_bce
from raygan.gan.member import CheckpointMismatchError
from raygan.gan.models.dcgan import DCGANDiscriminator
from raygan.gan.train import train_gan
from raygan.privacy.accountant import (
    compose_epsilon,
    group_privacy,
    member_data,
    member_records,
    plan_privacy,
    privacy_units,
    share_sizes,
    solve_noise_multiplier,
)
from raygan.privacy.dpsgd import (
    MemberPrivacy,
    PoissonSampler,
    clip_per_sample,
    dp_gradients,
    per_sample_grads,
    private_discriminator,
)
from raygan.privacy.ledger import describe_ledger, member_row, read_ledger
from raygan.runs.folder import changes
from raygan.runs.torch_files import load_torch_file

GAN = GANConfig(family="dcgan", width=8, z_dim=16, d_depth=2)  # d_depth 2: D has batch norms to replace
TRAIN = TrainConfig(steps=8, batch_size=16, log_every=2, checkpoint_every=4, device="cpu", divergence_retries=0)
TINY = {"data": {"classes": {"zero": [0], "one": [1]}}, "gan": {"width": 8, "z_dim": 16},
        "train": {"steps": 4, "batch_size": 16, "log_every": 2, "checkpoint_every": 2, "device": "cpu",
                  "divergence_retries": 0},
        "ensemble": {"members": 2}, "tracking": {"enabled": False}, "output": {"sample_grid": 4}}


def _cfg(tmp_path, **privacy):
    return from_dict({**TINY, "privacy": {"epsilon": 8.0, "accountant": "rdp", **privacy},
                      "output": {**TINY["output"], "root": str(tmp_path / "runs")}})


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def _d(width: int = 8) -> torch.nn.Module:
    torch.manual_seed(0)
    return private_discriminator(DCGANDiscriminator(image_size=8, channels=1, width=width, depth=2))


def _privacy(n: int, *, sigma: float = 0.0, clip: float = 1.0, batch: int = 16) -> MemberPrivacy:
    return MemberPrivacy(noise_multiplier=sigma, max_grad_norm=clip, sample_rate=batch / n, records=n)


# --------------------------------------------------------------------------- DP-SGD on D

def test_batch_norm_in_d_becomes_group_norm():
    D = _d()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert any(isinstance(m, torch.nn.GroupNorm) for m in D.modules())


def test_per_sample_grads_are_each_records_own_gradient():
    D, real = _d(), torch.randn(5, 1, 8, 8)
    term = functools.partial(D_TERMS["nonsaturating"][0], real_label=0.9)
    per = per_sample_grads(D, real, term)
    for i in range(5):
        own = torch.autograd.grad(term(D(real[i:i + 1])).sum(), list(D.parameters()))
        for (name, g), g_own in zip(per.items(), own):
            torch.testing.assert_close(g[i], g_own, rtol=1e-4, atol=1e-6, msg=name)


def test_clipped_per_sample_norms_of_real_records_stay_within_c():
    D, real = _d(), 5 * torch.randn(12, 1, 8, 8)
    per = per_sample_grads(D, real, functools.partial(D_TERMS["nonsaturating"][0], real_label=1.0))

    def norms(grads):
        return torch.stack([g.flatten(1).norm(dim=1) for g in grads.values()], 1).norm(dim=1)

    raw = norms(per)
    clip = float(raw.median())  # half the records above C, half below
    clipped = norms(clip_per_sample(per, clip))
    assert (clipped <= clip * (1 + 1e-5)).all()
    small = raw < clip
    assert small.any() and (~small).any()
    torch.testing.assert_close(clipped[small], raw[small])  # a record within C is left as it is


def test_fakes_do_not_consume_the_clipping_budget():
    """In the spirit of Bie et al.'s code: with an all-fake loss (an empty Poisson batch, no noise) D's
    gradient is the plain gradient of the fake half, however far its norm is above C."""
    D, fake = _d(), 3 * torch.randn(16, 1, 8, 8)
    grads, loss = dp_gradients(D, torch.zeros(0, 1, 8, 8), fake, loss="nonsaturating", real_label=1.0,
                               privacy=_privacy(160, clip=1e-4), generator=torch.Generator().manual_seed(0))
    plain = torch.autograd.grad(D_TERMS["nonsaturating"][1](D(fake)).mean(), list(D.parameters()))
    assert torch.stack([g.norm() for g in plain]).norm() > 100 * 1e-4
    for g, p in zip(grads, plain):
        torch.testing.assert_close(g, p)
    torch.testing.assert_close(loss, D_TERMS["nonsaturating"][1](D(fake)).mean().detach())


def test_without_clipping_or_noise_the_dp_gradient_is_the_ordinary_one():
    """C far above every record's norm, sigma = 0 and a batch of exactly its expected size: the
    gradient is d_loss_bce's, so the two halves are split right."""
    D, real, fake = _d(), torch.randn(16, 1, 8, 8), torch.randn(16, 1, 8, 8)
    grads, _ = dp_gradients(D, real, fake, loss="nonsaturating", real_label=0.9, privacy=_privacy(160, clip=1e6),
                            generator=torch.Generator().manual_seed(0))
    plain = torch.autograd.grad(d_loss_bce(D(real), D(fake), 0.9), list(D.parameters()))
    for g, p in zip(grads, plain):
        torch.testing.assert_close(g, p, rtol=1e-4, atol=1e-6)


def test_noise_is_gaussian_with_std_sigma_c_over_the_expected_batch():
    D, real, fake = _d(width=32), torch.randn(4, 1, 8, 8), torch.randn(16, 1, 8, 8)
    kw = {"loss": "nonsaturating", "real_label": 1.0, "generator": torch.Generator().manual_seed(1)}
    quiet, _ = dp_gradients(D, real, fake, privacy=_privacy(160, clip=0.5), **kw)
    noisy, _ = dp_gradients(D, real, fake, privacy=_privacy(160, sigma=2.0, clip=0.5), **kw)
    noise = torch.cat([(n - q).flatten() for n, q in zip(noisy, quiet)]) * 16  # expected batch 16
    assert noise.numel() > 10_000
    assert abs(float(noise.std()) - 2.0 * 0.5) < 0.03 and abs(float(noise.mean())) < 0.03


def test_poisson_batches_are_seeded_variable_and_may_be_empty():
    def draws(seed, q):
        sampler = PoissonSampler(50, q, torch.Generator().manual_seed(seed))
        return [sampler.next() for _ in range(400)]

    a, b = draws(0, 0.2), draws(0, 0.2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    sizes = torch.tensor([len(x) for x in a], dtype=torch.float)
    assert abs(float(sizes.mean()) - 10) < 0.6 and sizes.std() > 1  # q n = 10 on average, not always
    assert any(len(x) == 0 for x in draws(0, 0.01))


# --------------------------------------------------------------------------- a member with privacy

def test_a_dp_member_trains_resumes_and_keeps_its_history(digits, tmp_path):
    data = digits.train[digits.classes[0]]
    privacy = _privacy(len(data), sigma=1.0)
    whole = train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=privacy, checkpoint_path=tmp_path / "a.pt")
    assert whole.privacy["history"] == [[1.0, privacy.sample_rate, 8]]

    def crash(step, d, g):  # after the checkpoint at step 4, before the one at 8
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=privacy, checkpoint_path=tmp_path / "b.pt",
                  on_log=crash)
    ckpt = load_torch_file(tmp_path / "b.pt", fix="")
    assert ckpt["step"] == 4 and ckpt["privacy_history"] == [[1.0, privacy.sample_rate, 4]]
    assert ckpt["identity"]["privacy"] == privacy.to_dict()
    resumed = train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=privacy, checkpoint_path=tmp_path / "b.pt")
    assert resumed.resumed_from == 4 and resumed.privacy["history"] == [[1.0, privacy.sample_rate, 8]]
    assert (resumed.losses == whole.losses).all()  # the same Poisson batches and noise after the resume
    for a, b in zip(whole.generator.state_dict().values(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointMismatchError):  # other DP settings: another member
        train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=_privacy(len(data), sigma=2.0),
                  checkpoint_path=tmp_path / "b.pt")


def test_several_d_steps_per_g_step_are_each_counted_and_resume_exactly(digits, tmp_path):
    """privacy.d_steps = 3 (Bie et al.'s lever): 8 steps are 24 DP-SGD steps of D in the history, each
    on its own Poisson batch; a resumed member equals an uninterrupted one; the identity records it
    (one D step keeps the identity of members made before the option)."""
    data = digits.train[digits.classes[0]]
    privacy = dataclasses.replace(_privacy(len(data), sigma=1.0), d_steps=3)
    whole = train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=privacy, checkpoint_path=tmp_path / "a.pt")
    assert whole.privacy["history"] == [[1.0, privacy.sample_rate, 24]]
    one = train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=_privacy(len(data), sigma=1.0))
    assert not (one.losses == whole.losses).all()  # the extra D steps change what G meets
    assert load_torch_file(tmp_path / "a.pt", fix="")["identity"]["privacy"]["d_steps"] == 3
    assert "d_steps" not in _privacy(len(data)).to_dict()

    def crash(step, d, g):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=privacy, checkpoint_path=tmp_path / "b.pt",
                  on_log=crash)
    assert load_torch_file(tmp_path / "b.pt", fix="")["privacy_history"] == [[1.0, privacy.sample_rate, 12]]
    resumed = train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=privacy, checkpoint_path=tmp_path / "b.pt")
    assert resumed.privacy["history"] == whole.privacy["history"] and (resumed.losses == whole.losses).all()
    with pytest.raises(CheckpointMismatchError):  # another d_steps: another member
        train_gan(data, gan=GAN, train=TRAIN, seed=3, privacy=dataclasses.replace(privacy, d_steps=2),
                  checkpoint_path=tmp_path / "b.pt")
    # the plan solves each member's noise for train.steps x d_steps x T D steps (shared)
    plan = plan_privacy(_cfg(tmp_path, d_steps=3), {"zero": 124, "one": 127})
    assert plan.member("zero", 0).d_steps == 3
    assert plan.member("zero", 0).noise_multiplier == solve_noise_multiplier(8.0, plan.delta, 16 / 124, 4 * 3 * 2,
                                                                             "rdp")


def test_privacy_off_checkpoints_hold_no_privacy(digits, tmp_path):
    train_gan(digits.train[digits.classes[0]], gan=GAN, train=TRAIN, seed=3, checkpoint_path=tmp_path / "c.pt")
    ckpt = load_torch_file(tmp_path / "c.pt", fix="")
    assert "privacy_history" not in ckpt and "privacy" not in ckpt["identity"]


# --------------------------------------------------------------------------- partition and plan

def test_disjoint_partitions_are_disjoint_complete_and_deterministic():
    parts = [member_records(101, 3, t, seed=7) for t in range(3)]
    assert [len(p) for p in parts] == share_sizes(101, 3) == [34, 34, 33]
    assert sorted(torch.cat(parts).tolist()) == list(range(101))
    assert all(torch.equal(p, member_records(101, 3, t, seed=7)) for t, p in enumerate(parts))
    assert not torch.equal(parts[0], member_records(101, 3, 0, seed=8))


def test_disjoint_members_get_their_part_and_compose_in_parallel(tmp_path, digits):
    shared, disjoint = _cfg(tmp_path), _cfg(tmp_path, partition="disjoint")
    data = digits.train[digits.classes[0]]
    first, second = (member_data(disjoint, data, class_index=0, member=t) for t in range(2))
    assert len(first) + len(second) == len(data)
    assert not (first.flatten(1)[:, None] == second.flatten(1)[None]).all(-1).any()  # no image in both
    sizes = {"zero": 124, "one": 127}
    s, d = plan_privacy(shared, sizes), plan_privacy(disjoint, sizes)
    assert s.member("zero", 0).records == 124 and d.member("zero", 0).records == 62
    # shared: the class's T = 2 members compose, 2 x 4 steps at q = 16/124; disjoint: each member is on
    # its own records, 4 steps at q = 16/62 (parallel composition)
    assert s.delta == d.delta == 1 / (10 * 251)
    assert s.member("zero", 1).noise_multiplier == solve_noise_multiplier(8.0, s.delta, 16 / 124, 8, "rdp")
    assert d.member("zero", 1).noise_multiplier == solve_noise_multiplier(8.0, d.delta, 16 / 62, 4, "rdp")


def test_a_failed_attempt_in_an_entry_is_counted_at_its_plan():
    """A retry re-reads the records: each failed attempt a manifest entry records adds a full planned
    history (a given-up member: one per attempt), so epsilon grows with them."""
    planned = _privacy(124, sigma=1.0).to_dict()
    recorded = {"status": "complete", "privacy": {**planned, "history": [[1.0, planned["sample_rate"], 4]]}}
    assert member_row(recorded, planned, 4)["history"] == [[1.0, planned["sample_rate"], 4]]
    retried = member_row({**recorded, "divergence": ["loss nan at step 3"]}, planned, 4)
    assert retried["history"] == [[1.0, planned["sample_rate"], 4]] * 2 and retried["failed_attempts"] == 1
    given_up = member_row({"status": "diverged", "divergence": ["a", "b"]}, planned, 4)
    assert given_up["history"] == [[1.0, planned["sample_rate"], 4]] * 2
    eps = [compose_epsilon([r["history"]], 1e-4, "rdp") for r in (member_row(recorded, planned, 4), retried)]
    assert eps[1] > eps[0]


def test_auto_packing_chooses_one_member_per_task_under_privacy(tmp_path):
    size, why = choose_pack_size(_cfg(tmp_path).replace(cluster={"members_per_task": None}), 20,
                                 {"num_cpus": 1, "num_gpus": 0}, {"CPU": 2}, lambda: 8)
    assert size == 1 and "DP members do not pack yet" in why and "clip each record's gradient" in why


def test_the_privacy_cost_benchmark_times_every_arm(capsys):
    from raygan.cli import main

    assert main(["bench", "privacy", "--steps", "2", "--repeats", "1", "--members", "2", "--d-steps", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and " x |" in line]
    assert [r.split(" | ")[0] for r in rows] == ["| solo, no privacy", "| solo, DP-SGD (d_steps 1)",
                                                  "| solo, DP-SGD (d_steps 2)", "| pack of 2, no privacy"]
    assert rows[0].endswith("| 1.00 x |")


# --------------------------------------------------------------------------- the ledger

def test_reported_epsilon_equals_opacus_on_the_recorded_histories(tmp_path, digits):
    cfg = _cfg(tmp_path)
    dataset, run = prepare(cfg)
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    ledger = read_ledger(run.path)
    assert ledger == json.loads((run.path / "privacy.json").read_text()) == run.manifest()["privacy"]
    per_class = {}
    for name in dataset.classes:  # independently: the histories the checkpoints recorded, composed by Opacus
        acc = RDPAccountant()
        for t in range(2):
            ckpt = load_torch_file(run.member_dir(name, t) / "checkpoint.pt", fix="")
            assert ckpt["privacy_history"][0][2] == 4
            acc.history += [tuple(h) for h in ckpt["privacy_history"]]
        per_class[name] = acc.get_epsilon(delta=1 / (10 * sum(dataset.train_sizes().values())))
    assert ledger["classes"]["zero"]["epsilon"] == per_class["zero"]
    assert ledger["epsilon"] == max(per_class.values())
    assert ledger["epsilon"] <= 8.0 + 0.01 and ledger["within_target"]
    assert ledger["adjacency"].startswith("add/remove") and "twice" in ledger["adjacency"]
    assert any("N_k" in d for d in ledger["declared_public"])
    assert "within the target epsilon 8" in describe_ledger(ledger)
    assert "divergence_retries must be 0" in ledger["retries"] and "retries: none spent" in describe_ledger(ledger)
    # a rerun with other privacy settings, or another T, would change the members: refused
    old = run.saved_config()
    assert changes(old, _cfg(tmp_path, epsilon=4.0).to_dict(), has_shards=False) == ["privacy.epsilon: 8.0 -> 4.0"]
    more = _cfg(tmp_path).replace(ensemble={"members": 3}, train={"steps": 6}).to_dict()
    assert set(changes(old, more, has_shards=False)) == {"ensemble.members: 2 -> 3", "train.steps: 4 -> 6"}


# --------------------------------------------------------------------------- refused before any work

@pytest.mark.parametrize("privacy, extra, words", [
    ({"epsilon": 0}, {}, "privacy.epsilon=0 must be > 0"),
    ({"epsilon": -1}, {}, "privacy.epsilon=-1 must be > 0"),
    ({"epsilon": 1, "delta": 1.5}, {}, "privacy.delta=1.5 must lie in (0, 1)"),
    ({"epsilon": 1}, {"gan": {"family": "biggan"}}, "gan.family=biggan: its discriminator's spectral norm"),
    ({"epsilon": 1}, {"gan": {"family": "ccgan"}}, "gan.family=ccgan"),
    ({"epsilon": 1}, {"gan": {"family": "pggan"}}, "gan.family=pggan"),
    ({"epsilon": 1}, {"gan": {"r1_gamma": 1.0}}, "gan.r1_gamma=1"),
    ({"epsilon": 1}, {"ensemble": {"method": "adagan"}}, "ensemble.method=adagan"),
    ({"epsilon": 1}, {"ensemble": {"method": "reweight"}}, "ensemble.method=reweight"),
    ({"epsilon": 1}, {"cluster": {"members_per_task": 4}}, "DP members do not pack yet"),
    ({"epsilon": 1}, {"train": {"divergence_retries": 2}}, "train.divergence_retries=2"),
    ({"delta": 1e-5}, {}, "privacy.epsilon is null"),
    ({"d_steps": 2}, {}, "privacy.d_steps=2 is set but privacy.epsilon is null"),
    ({"epsilon": 1, "unit": "group"}, {}, "privacy.unit=group needs data.group_column"),
    ({"epsilon": 1, "unit": "group"}, {"data": {"group_column": "patient"}}, "privacy.unit=group with data.name=digits"),
    ({"epsilon": 1}, {"data": {"group_column": "patient"}}, "data.group_column='patient' is set but privacy.unit=record"),
    ({"unit": "group"}, {"data": {"name": "parquet", "root": "x", "group_column": "p"}}, "privacy.epsilon is null"),
])
def test_bad_privacy_config_is_refused_in_one_line(privacy, extra, words):
    raw = {"train": {"divergence_retries": 0}, **extra, "privacy": privacy}
    if "train" in extra:
        raw["train"] = extra["train"]
    with pytest.raises(ConfigError) as err:
        from_dict(raw)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert "set " in str(err.value) or "use " in str(err.value)  # it names the fix


@pytest.mark.parametrize("privacy, words", [
    ({"delta": 1 / 1000}, "not below 1/N"),  # 1,257 training records: 1/1000 is above 1/N
    ({"partition": "disjoint"}, "train.batch_size=100"),
])
def test_what_the_data_decides_is_refused_before_anything_is_written(tmp_path, privacy, words):
    cfg = _cfg(tmp_path, **privacy).replace(data={"classes": None},
                                           train={"batch_size": 100 if "partition" in privacy else 16})
    with pytest.raises(ConfigError) as err:
        prepare(cfg)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- the group unit

def _parquet(path, *, group: bool = True):
    """60 grey 8x8 images, image i filled with 4 i (so a decoded image names its row), label i % 2,
    patient p<i // 3> (a patient's 3 images span both classes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raygan.synthesis.records import encode_png

    rows = torch.arange(60)
    images = encode_png((rows * 4).float().div(127.5).sub(1).view(60, 1, 1, 1).expand(60, 1, 8, 8).contiguous())
    columns = {"image": images, "label": (rows % 2).tolist()}
    if group:
        columns["patient"] = [f"p{i // 3}" for i in range(60)]
    pq.write_table(pa.table(columns), path)
    return path


def _group_cfg(tmp_path, root, **privacy):
    return from_dict({"data": {"name": "parquet", "root": str(root), "group_column": "patient"},
                      "gan": {"width": 8, "z_dim": 16}, "train": {"steps": 4, "batch_size": 8, "divergence_retries": 0},
                      "ensemble": {"members": 2}, "tracking": {"enabled": False},
                      "output": {"root": str(tmp_path / "runs")},
                      "privacy": {"epsilon": 3.0, "accountant": "rdp", "unit": "group", **privacy}})


def test_each_training_image_gets_its_own_rows_group(tmp_path):
    cfg = _group_cfg(tmp_path, _parquet(tmp_path / "d.parquet"))
    dataset = load_dataset(cfg.data)
    for name, x in dataset.train.items():
        rows = ((x[:, 0, 0, 0] + 1) * 127.5 / 4).round().long()  # the row each image came from
        assert dataset.groups[name].tolist() == [f"p{int(r) // 3}" for r in rows]


def test_the_group_unit_solves_each_record_for_the_group_target(tmp_path):
    """k = the largest group's training records (3 here when a patient keeps all 3 images in training):
    every member is solved for epsilon / k at delta_g / (k e^((k-1) epsilon / k)), delta_g = 1/(10 G),
    and the ledger's group epsilon, by group privacy, is within the target."""
    cfg = _group_cfg(tmp_path, _parquet(tmp_path / "d.parquet"))
    dataset, run = prepare(cfg)
    units, k = privacy_units(sum(dataset.train_sizes().values()), dataset.groups)
    assert k == 3 and units < sum(dataset.train_sizes().values())
    plan = plan_privacy(cfg, dataset.train_sizes(), dataset.groups)
    assert plan.largest_group == 3 and plan.units == units and plan.unit_delta == 1 / (10 * units)
    record_eps, record_delta = 1.0, plan.unit_delta / (3 * math.exp(2 * 1.0))
    assert plan.delta == pytest.approx(record_delta)
    name = dataset.classes[0]
    n = dataset.train_sizes()[name]
    assert plan.member(name, 0).noise_multiplier == solve_noise_multiplier(record_eps, plan.delta, 8 / n, 8, "rdp")
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    ledger = read_ledger(run.path)
    assert ledger["unit"] == "group" and ledger["largest_group"] == 3 and ledger["groups"] == units
    assert (ledger["epsilon"], ledger["delta"]) == pytest.approx(group_privacy(ledger["record_epsilon"], plan.delta, 3))
    assert ledger["epsilon"] <= 3.0 + 0.03 and ledger["within_target"]
    assert ledger["adjacency"].startswith("add/remove one group") and "k = 3" in describe_ledger(ledger)


def test_a_missing_group_column_is_refused_before_anything_is_written(tmp_path):
    cfg = _group_cfg(tmp_path, _parquet(tmp_path / "d.parquet", group=False))
    with pytest.raises(ConfigError) as err:
        prepare(cfg)
    assert "data.group_column='patient' is not a column" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


def _image_folder(root, *, nested: bool = True):
    """The same 60 images as _parquet as PNG files: root/<label>/<patient>/<row>.png when nested, else
    root/<label>/<row>.png."""
    from raygan.synthesis.records import encode_png

    rows = torch.arange(60)
    pngs = encode_png((rows * 4).float().div(127.5).sub(1).view(60, 1, 1, 1).expand(60, 1, 8, 8).contiguous())
    for i, png in enumerate(pngs):
        folder = root / f"c{i % 2}" / (f"p{i // 3}" if nested else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:02d}.png").write_bytes(png)
    return root


def _folder_cfg(tmp_path, root, column):
    cfg = _group_cfg(tmp_path, root)
    return cfg.replace(data={"name": "imagefolder", "root": str(root), "group_column": column})


@pytest.mark.parametrize("column", ["folder", "patient"])
def test_an_image_folder_gives_each_image_its_group(tmp_path, column):
    """data.group_column=folder reads root/<class>/<patient>/; another name, data.root/groups.csv."""
    root = _image_folder(tmp_path / "images", nested=column == "folder")
    if column == "patient":
        lines = ["path,patient"] + [f"c{i % 2}/{i:02d}.png,p{i // 3}" for i in range(60)]
        (root / "groups.csv").write_text("\n".join(lines) + "\n")
    dataset = load_dataset(_folder_cfg(tmp_path, root, column).data)
    for name, x in dataset.train.items():
        rows = ((x[:, 0, 0, 0] + 1) * 127.5 / 4).round().long()
        assert dataset.groups[name].tolist() == [f"p{int(r) // 3}" for r in rows]
    assert privacy_units(sum(dataset.train_sizes().values()), dataset.groups)[1] == 3


@pytest.mark.parametrize("layout, words", [
    ("flat-folder", "lie directly in their class folder"),
    ("no-file", "groups.csv, which does not exist"),
    ("short-file", "gives no 'patient' for 1 image(s) (first: c1/59.png)"),
])
def test_an_image_folder_without_groups_is_refused_before_anything_is_written(tmp_path, layout, words):
    root = _image_folder(tmp_path / "images", nested=False)
    if layout == "short-file":
        lines = ["path,patient"] + [f"c{i % 2}/{i:02d}.png,p{i // 3}" for i in range(59)]
        (root / "groups.csv").write_text("\n".join(lines) + "\n")
    cfg = _folder_cfg(tmp_path, root, "folder" if layout == "flat-folder" else "patient")
    with pytest.raises(ConfigError) as err:
        prepare(cfg)
    assert words in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_the_tstr_against_epsilon_cells_are_valid_configs(tmp_path):
    """raygan.tools.privacy_tstr's cells (docs/privacy.md's table) resolve to configs that load."""
    from raygan.config import load_config
    from raygan.tools.privacy_tstr import overrides

    off = load_config(overrides=overrides("inf:2:shared", str(tmp_path), 500, 3, 0))
    assert off.privacy.epsilon is None and off.ensemble.members == 2
    on = load_config(overrides=overrides("10:2:disjoint", str(tmp_path), 500, 3, 0))
    assert (on.privacy.epsilon, on.privacy.partition, on.train.steps, on.eval.repeats) == (10.0, "disjoint", 500, 3)
    assert on.output.run == "eps10_T2_disjoint_s0" and on.audit.enabled
