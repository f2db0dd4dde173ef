"""The GAN families' facts are one table (raygan.config.families): the schema's choices, the command's
--family, the model registry and the config's rules all read it, and the rules it decides refuse a bad
combination when the config loads (no torch needed to decide them)."""
from __future__ import annotations

import dataclasses

import pytest

from raygan.cli import build_parser
from raygan.config import ConfigError, GANConfig, TrainConfig, load_config
from raygan.config.families import (
    CONDITIONAL,
    FAMILIES,
    FAMILY_NAMES,
    PROGRESSIVE,
    UNPACKABLE,
    biggan_attention_resolutions,
    biggan_attention_stage,
)
from raygan.config.levers import check_lever_config


def test_every_list_of_families_is_the_table():
    from raygan.gan import models
    from raygan.gan.models import biggan

    choices = next(f.metadata["choices"] for f in dataclasses.fields(GANConfig) if f.name == "family")
    assert tuple(choices) == FAMILY_NAMES == tuple(models.GAN_FAMILIES)
    bench = build_parser().parse_args(["bench", "pack", "--family", "biggan"])
    assert bench.family == "biggan"
    with pytest.raises(SystemExit):  # argparse's choices: the table's names
        build_parser().parse_args(["bench", "pack", "--family", "nope"])
    # the names the stages import from the models are the table's
    assert (models.CONDITIONAL, models.PROGRESSIVE, models.UNPACKABLE) == (CONDITIONAL, PROGRESSIVE, UNPACKABLE)
    assert CONDITIONAL == {"ccgan", "biggan"} and PROGRESSIVE == {"pggan"} and UNPACKABLE == {"pggan", "biggan"}
    assert all(FAMILIES[n].unpackable_because for n in UNPACKABLE)
    # biggan's model and the config check share one size rule
    assert biggan.up_blocks(32) == 3 and biggan._attention_stage(16, 32) == 2
    assert biggan_attention_resolutions(32) == (4, 8, 16) and biggan_attention_stage(None, 8) is None
    with pytest.raises(ValueError, match="choose one of 4, 8, 16, or null"):
        biggan_attention_stage(32, 32)


@pytest.mark.parametrize("gan, train, match", [
    ({"family": "fc"}, {"channels_last": True}, "gan.family=fc has none"),
    ({"family": "biggan"}, {"channels_last": True}, "not supported with gan.family=biggan"),
    ({"family": "pggan"}, {"compile": True}, "gan.family=pggan: its fade-in"),
    ({"family": "pggan"}, {"cuda_graphs": True}, r"gan.family=pggan is never packed \(its graph grows"),
    ({"family": "biggan"}, {"cuda_graphs": True}, r"gan.family=biggan is never packed \(raygan.gan.pack"),
    ({"r1_gamma": 1.0}, {"compile": True}, "double backward"),
    ({}, {"cuda_graphs": True, "device": "cpu"}, "needs a CUDA device"),
])
def test_the_lever_rules_the_config_decides(gan, train, match):
    with pytest.raises(ConfigError, match=match):
        check_lever_config(GANConfig(**gan), TrainConfig(**train))


def test_the_lever_rules_know_where_the_member_trains():
    graphs = TrainConfig(cuda_graphs=True)  # train.device=auto: a GPU may be there
    check_lever_config(GANConfig(), graphs)
    check_lever_config(GANConfig(), graphs, device_type="cuda")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        check_lever_config(GANConfig(), graphs, device_type="cpu")
    with pytest.raises(ConfigError, match="trains alone"):
        check_lever_config(GANConfig(), graphs, packed=False)
    for family in ("dcgan", "ccgan", "pggan"):
        check_lever_config(GANConfig(family=family), TrainConfig(channels_last=True))


def test_the_family_rules_refuse_at_load():
    for overrides, match in ((["gan.family=mlp2d"], "mlp2d is for data.name=grid2d"),
                             (["data.name=grid2d"], "cannot model 2D points"),
                             (["gan.family=fc", "gan.g_norm=layer"], "gan.family=fc has its own"),
                             (["gan.family=pggan", "cluster.members_per_task=2"],
                              "gan.family=pggan trains one member per task"),
                             (["gan.family=pggan", "train.compile=true"], "fade-in")):
        with pytest.raises(ConfigError, match=match):
            load_config(overrides=overrides)
