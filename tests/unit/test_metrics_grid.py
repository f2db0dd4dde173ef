import numpy as np
import pytest

from raygan.data.grid2d import grid_means
from raygan.metrics.grid import grid_quality, nearest_modes, split_evenly, table1_bootstrap

MEANS, SIGMA = grid_means(), 0.05


def test_all_modes_covered_by_points_on_every_mean():
    points = np.repeat(MEANS, 10, axis=0) + 0.01
    assert grid_quality(points, MEANS, SIGMA) == (25, 1.0)


def test_one_mode_only():
    points = np.tile(MEANS[7], (100, 1)) + np.random.default_rng(0).normal(0, 0.02, (100, 2))
    modes, hq = grid_quality(points, MEANS, SIGMA)
    assert modes == 1 and hq == 1.0


def test_off_grid_points_are_low_quality_and_cover_nothing():
    points = MEANS + 1.0  # halfway between modes in both axes
    assert grid_quality(points, MEANS, SIGMA) == (0, 0.0)
    # 3 sigma is the boundary: 0.149 away counts, 0.151 away does not
    near = MEANS[:1] + [[0.149, 0.0]]
    far = MEANS[:1] + [[0.151, 0.0]]
    assert grid_quality(near, MEANS, SIGMA) == (1, 1.0)
    assert grid_quality(far, MEANS, SIGMA) == (0, 0.0)


def test_mixed_set_counts_fraction():
    points = np.concatenate([MEANS[:5], MEANS[:5] + 1.0])
    assert grid_quality(points, MEANS, SIGMA) == (5, 0.5)


def test_split_evenly():
    assert split_evenly(2500, 3) == [834, 833, 833]
    assert sum(split_evenly(2500, 7)) == 2500


def test_bootstrap_ensembles_of_complementary_gans_cover_more():
    rng = np.random.default_rng(0)
    pools = []
    for m in range(6):  # each "GAN" covers a different window of 10 modes, all high quality
        modes = (np.arange(10) + 4 * m) % 25
        pts = MEANS[rng.choice(modes, 5000)] + rng.normal(0, 0.02, (5000, 2))
        pools.append(nearest_modes(pts, MEANS, SIGMA))
    rows = table1_bootstrap(pools, max_ensemble=5, eval_points=2500, repeats=50, seed=0)
    assert [r.ensemble_size for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].modes_mean == pytest.approx(10.0)
    assert rows[0].modes_std == 0.0
    assert rows[4].modes_mean > 20
    assert all(r.high_quality_mean == pytest.approx(100.0) for r in rows)
    means = [r.modes_mean for r in rows]
    assert means == sorted(means)


def test_table1_with_pacgan_names_its_rows_and_cites_pacgans_paper():
    from raygan.metrics.grid import Table1Row
    from raygan.reporting.table1 import format_table1

    rows = [Table1Row(1, 24.0, 1.0, 90.0, 2.0), Table1Row(2, 25.0, 0.0, 91.0, 1.0)]
    plain, packed = format_table1(rows).splitlines(), format_table1(rows, pacgan=4).splitlines()
    assert plain[2].startswith("| GAN |") and "18.8 ± 2.6" in plain[2] and "24.6 ± 0.8" in plain[3]
    assert packed[2].startswith("| PacGAN4 |") and "24.8 ± 0.2" in packed[2] and "93.6 ± 0.6" in packed[2]
    assert packed[3].startswith("| EnsGAN-2 of PacGAN4 |") and packed[3].count("| - |") == 2
