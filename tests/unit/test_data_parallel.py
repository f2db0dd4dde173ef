"""cluster.workers_per_member (issue 29) without Ray: what cannot train as a data-parallel group is
refused when the config loads, in one line; the CPU batch norm synchronised over the group is batch
norm (a group of one process); the shards of a step's batch cover it once; a member trained by two
gloo processes at half the batch (torch.distributed, no Ray) is the member trained alone at the full
batch, to float rounding, with and without privacy (then with the same accountant history). The group itself, two Ray Train workers against the solo member, is
tests/integration/test_wide_members.py."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from raygan.config import ConfigError, GANConfig, TrainConfig, load_config
from raygan.gan.models.dcgan import DCGANDiscriminator
from raygan.gan.parallel import DataParallel, GroupBatchNorm, sync_batch_norms
from raygan.gan.train import train_gan
from raygan.privacy.dpsgd import MemberPrivacy, dp_gradients, private_discriminator

WIDE = ["cluster.workers_per_member=2", "train.batch_size=32"]


@pytest.mark.parametrize("overrides, says", [
    (["gan.family=pggan"], "gan.family=pggan cannot train under DistributedDataParallel"),
    (["gan.r1_gamma=1"], "double backward"),
    (["train.recursive_rounds=1"], "train.recursive_rounds"),
    (["train.batch_size=33"], "not a multiple of it"),
    (["cluster.gpus_per_member=0.5"], "a whole GPU per worker"),
    (["cluster.members_per_task=4"], "trains alone, as a data-parallel group"),
])
def test_what_cannot_run_as_a_group_is_refused_at_load(overrides, says):
    with pytest.raises(ConfigError, match=says) as err:
        load_config(overrides=[*WIDE, *overrides])
    assert "\n" not in str(err.value) and "workers_per_member" in str(err.value)


def test_one_worker_is_the_default_and_a_group_needs_no_other_setting():
    assert load_config().cluster.workers_per_member == 1
    assert load_config(overrides=WIDE).cluster.workers_per_member == 2


def test_the_shards_of_a_batch_cover_it_once():
    rows = torch.arange(32)
    shards = [rows[DataParallel(rank=r, world_size=4).shard(32)] for r in range(4)]
    assert torch.equal(torch.cat(shards), rows)
    for n in (0, 3, 17):  # a Poisson batch: any number of rows, each in one part
        rows = torch.arange(n)
        assert torch.equal(torch.cat([DataParallel(rank=r, world_size=4).part(rows) for r in range(4)]), rows)


# A member of width 8 on 8 x 8 data, batch 16, its batch norms synchronised over the group; with privacy
# (D's batch norms become group norms) Poisson batches of about 16, sigma 1, and two D steps per G step
# (each further one draws its own Poisson batch and fakes).
DP_GAN = GANConfig(family="dcgan", width=8, z_dim=16, d_depth=2)
DP_TRAIN = TrainConfig(steps=12, batch_size=16, log_every=4, checkpoint_every=12, device="cpu",
                       divergence_retries=0)
DP_N = 96


def _member(private: bool, group=None):
    torch.manual_seed(0)
    data = torch.rand(DP_N, 1, 8, 8) * 2 - 1
    privacy = MemberPrivacy(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=16 / DP_N, records=DP_N,
                            d_steps=2) if private else None
    return train_gan(data, gan=DP_GAN, train=DP_TRAIN, seed=7, privacy=privacy, group=group)


def _worker(rank: int, store: str, out: str, private: bool) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
    try:
        result = _member(private, DataParallel.current())
        if rank == 0:
            torch.save({"G": result.generator.state_dict(), "losses": torch.as_tensor(result.losses),
                        "privacy": result.privacy}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("private", [False, True], ids=["plain", "dp"])
def test_a_member_of_two_processes_at_half_batch_is_the_member_alone(tmp_path, private):
    torch.set_num_threads(1)
    alone = _member(private)
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(out), private), nprocs=2, join=True)
    group = torch.load(out, weights_only=False)
    if private:
        assert group["privacy"]["history"] == alone.privacy["history"]  # the same steps, sigma and q counted
        assert group["privacy"]["history"][0][2] == 2 * DP_TRAIN.steps
    assert torch.allclose(group["losses"], torch.as_tensor(alone.losses), atol=1e-4, rtol=1e-4)
    for key, value in alone.generator.state_dict().items():
        assert torch.allclose(group["G"][key].float(), value.float(), atol=1e-4, rtol=1e-4), key


@pytest.fixture
def group_of_one(tmp_path):
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_group_batch_norm_is_batch_norm_in_a_group_of_one(group_of_one):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 1))
    synced = copy.deepcopy(model)
    assert sync_batch_norms(synced, torch.device("cpu")) == 1 and isinstance(synced[1], GroupBatchNorm)
    assert synced.state_dict().keys() == model.state_dict().keys()  # a checkpoint is a batch norm's
    x = torch.randn(8, 3, 8, 8)
    for _ in range(2):
        out, out_synced = model(x).sum(), synced(x).sum()
        assert torch.allclose(out, out_synced, atol=1e-5)
        grads = torch.autograd.grad(out, list(model.parameters()))
        grads_synced = torch.autograd.grad(out_synced, list(synced.parameters()))
        for g, h in zip(grads, grads_synced):
            assert torch.allclose(g, h, atol=1e-5)
    for key, value in model.state_dict().items():  # running statistics, unbiased variance included
        assert torch.allclose(value.float(), synced.state_dict()[key].float(), atol=1e-6), key
    model.eval(), synced.eval()
    assert torch.allclose(model(x), synced(x), atol=1e-5)


# The DP update at the size users run: 32 px RGB, the demo's width 32, an odd Poisson batch of 31 records
# split 16 / 15. Over many steps a member's weights part from the solo run's by float rounding that
# Adam's first steps amplify (a near-zero gradient's sign), as packs do (docs/benchmarks.md "Is a
# packed member its solo run?"); the gradient of one step is where the group must equal the member.
def _dp_gradient(group=None):
    torch.manual_seed(0)
    D = private_discriminator(DCGANDiscriminator(image_size=32, channels=3, width=32))
    real, fake = torch.randn(31, 3, 32, 32), torch.randn(32, 3, 32, 32)
    if group is not None:
        real, fake = group.part(real), fake[group.shard(32)]
    privacy = MemberPrivacy(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=32 / 256, records=256)
    grads, loss = dp_gradients(D, real, fake, loss="nonsaturating", real_label=0.9, privacy=privacy,
                               generator=torch.Generator().manual_seed(5), group=group)
    return grads, loss


def _gradient_worker(rank: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
    try:
        grads, loss = _dp_gradient(DataParallel.current())
        loss = DataParallel.current().mean(loss.detach().clone())  # the group's mean of its parts' losses
        if rank == 0:
            torch.save({"grads": grads, "loss": loss}, out)
    finally:
        dist.destroy_process_group()


def test_a_groups_dp_gradient_at_32px_rgb_is_the_members(tmp_path):
    torch.set_num_threads(1)
    alone, loss = _dp_gradient()
    out = tmp_path / "rank0.pt"
    mp.spawn(_gradient_worker, args=(str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    group = torch.load(out, weights_only=False)
    assert len(group["grads"]) == len(alone)
    for g, a in zip(group["grads"], alone):
        assert torch.allclose(g, a, atol=1e-5 * float(a.abs().max()), rtol=0), (tuple(a.shape), (g - a).abs().max())
    assert torch.allclose(group["loss"], loss, atol=1e-6)
