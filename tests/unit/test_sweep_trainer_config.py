"""sweep.trainer_min_rows / sweep.trainer_workers (trials trained as TorchTrainers) are checked when the
config loads: each bad value refused in one line naming the key and the fix."""
from __future__ import annotations

import pytest

from raygan.config import ConfigError, load_config


def test_trainer_settings_load_and_default_to_off():
    assert load_config(overrides=[]).sweep.trainer_min_rows is None
    cfg = load_config(overrides=["sweep.trainer_min_rows=5000", "sweep.trainer_workers=4",
                                 "sweep.batch_size=[64, 128]"])
    assert (cfg.sweep.trainer_min_rows, cfg.sweep.trainer_workers) == (5000, 4)


@pytest.mark.parametrize("overrides, message", [
    (["sweep.trainer_min_rows=0"], r"^sweep.trainer_min_rows: 0 is out of range; it must be >= 1$"),
    (["sweep.trainer_workers=0"], r"^sweep.trainer_workers: 0 is out of range; it must be >= 1$"),
    (["sweep.trainer_min_rows=100", "sweep.batch_size=[64, 33]"],
     r"sweep.batch_size \[33\] is not a multiple of sweep.trainer_workers=2 .*set sweep.trainer_min_rows=null"),
    (["sweep.trainer_min_rows=100", "sweep.gpus_per_trial=0.5"],
     r"NCCL needs a whole GPU per worker; set sweep.gpus_per_trial=1"),
    (["sweep.trainer_min_rows=100", "sweep.target=gan"], r"applies to classifier sweeps, not sweep.target=gan"),
    (["sweep.trainer_min_rows=100", "sweep.synthetic_only=true", "sweep.protocols=[{}]"],
     r"with sweep.protocols: .*remove sweep.protocols or set sweep.trainer_min_rows=null"),
    (["sweep.trainer_min_rows=100", "data.name=grid2d", "gan.family=mlp2d", "sweep.arch=[mlp]"],
     r"decodes PNG shards but data.name=grid2d samples are points"),
])
def test_bad_trainer_settings_are_refused_at_load_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(overrides=overrides)
    assert "\n" not in str(err.value)
