"""The one chunked neighbour search (raygan.metrics.neighbours) and the one batched predictor
(raygan.classifiers.fit.batched) against brute force: the full distance matrix, the whole batch."""
import numpy as np
import pytest
import torch

from raygan.classifiers.fit import batched, softmax_of
from raygan.metrics.neighbours import distance_blocks, search


def _sets(seed=0, n=53, m=71, shape=(2, 4, 3)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randn(m, *shape, generator=g)


@pytest.mark.parametrize("chunk_size", [7, 16, 4096])  # 7 divides neither 53 nor 71
def test_k_nearest_euclidean_equals_cdist(chunk_size):
    q, r = _sets()
    full = torch.cdist(q.flatten(1).double(), r.flatten(1).double())
    for k in (1, 5):
        found = search(q, r, k=k, chunk_size=chunk_size)
        assert found.distances.shape == found.indices.shape == (53, 1, k)
        expected = full.topk(k, dim=1, largest=False)
        torch.testing.assert_close(found.distances[:, 0].double(), expected.values, rtol=1e-5, atol=1e-5)
        assert torch.equal(found.indices[:, 0], expected.indices)


def test_mean_reduction_equals_the_mean_of_the_full_matrix():
    q, r = _sets(1)
    full = torch.cdist(q.flatten(1).double(), r.flatten(1).double())
    found = search(q.numpy(), r.numpy(), reduction="mean", chunk_size=9)
    assert found.distances.dtype == torch.float64
    torch.testing.assert_close(found.distances[:, 0, 0], full.mean(1), rtol=1e-5, atol=1e-5)


def test_mse_segments_equal_brute_force_and_an_exact_copy_measures_zero():
    q, r = _sets(2)
    r[30] = q[4]
    full = torch.cdist(q.flatten(1).double(), r.flatten(1).double()) ** 2 / q[0].numel()
    segments = [(0, 10), (10, 10), (10, 40), (40, 71)]
    found = search(q, r, metric="mse", chunk_size=7, segments=segments)
    for s, (lo, hi) in enumerate(segments):
        dist, index = found.distances[:, s, 0], found.indices[:, s, 0]
        if lo == hi:
            assert torch.isinf(dist).all() and (index == -1).all()
            continue
        assert torch.equal(index, full[:, lo:hi].argmin(1) + lo)
        torch.testing.assert_close(dist.double(), full[:, lo:hi].min(1).values, rtol=1e-5, atol=1e-6)
    assert found.indices[4, 2, 0] == 30 and found.distances[4, 2, 0] == 0.0


def test_exclude_self_gives_the_k_th_other_row():
    x, _ = _sets(3, n=40, shape=(3,))
    full = torch.cdist(x.double(), x.double()).fill_diagonal_(float("inf"))
    found = search(x, x, k=3, dtype=torch.float64, chunk_size=6, exclude_self=True)
    torch.testing.assert_close(found.distances[:, 0], full.topk(3, dim=1, largest=False).values)


def test_ties_go_to_the_lowest_reference_row_across_blocks():
    q = torch.zeros(3, 2)
    r = torch.ones(10, 2)  # every row equally near, across several blocks
    for metric in ("euclidean", "mse"):
        assert search(q, r, metric=metric, chunk_size=3).indices[:, 0, 0].tolist() == [0, 0, 0]


def test_distance_blocks_tile_the_full_matrix():
    q, r = _sets(4)
    full = torch.cdist(q.flatten(1).double(), r.flatten(1).double())
    tiled = torch.full_like(full, float("nan"))
    for i, j, block in distance_blocks(q, r, chunk_size=8):
        tiled[i:i + block.shape[0], j:j + block.shape[1]] = block
    torch.testing.assert_close(tiled, full)  # every entry written; block shape moves the last bit


def test_bad_arguments_are_refused():
    q, r = _sets()
    with pytest.raises(ValueError, match="values per row"):
        search(q, r[:, :1])
    with pytest.raises(ValueError, match="unknown reduction"):
        search(q, r, reduction="median")
    with pytest.raises(ValueError, match="mean reduction"):
        search(q, r, reduction="mean", metric="mse")


def test_batched_equals_one_pass_in_eval_mode_and_keeps_an_empty_shape():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    x = torch.randn(50, 5)
    out = batched(model, x, apply=softmax_of, batch_size=7)
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(out, torch.softmax(model(x), 1))
    assert out.device.type == "cpu" and not out.requires_grad
    assert batched(model, x[:0], empty=(0, 3)).shape == (0, 3)
    np.testing.assert_array_equal(batched(model, x, batch_size=50).numpy(), batched(model, x).numpy())
