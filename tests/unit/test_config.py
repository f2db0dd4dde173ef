import dataclasses

import pytest

from raygan.config import Config, ConfigError, describe, load_config, parse_override


def test_defaults_are_valid_and_documented():
    cfg = load_config()
    assert isinstance(cfg, Config)
    text = describe()
    assert "train.steps" not in text  # fields are listed per section
    assert "steps = 2000" in text and "Discriminator updates per GAN member." in text


def test_yaml_deltas_and_dotted_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("gan:\n  lr_g: 1.0e-3\ntrain:\n  steps: 50\n")
    cfg = load_config(path, ["train.steps=70", "gan.lr_d=2e-4", "data.grouping=II"])
    assert cfg.gan.lr_g == 1e-3 and cfg.train.steps == 70 and cfg.gan.lr_d == 2e-4
    assert cfg.data.grouping == "II"
    assert cfg.train.batch_size == 64  # untouched default


def test_override_values_are_parsed_as_numbers():
    assert parse_override("gan.lr_g=2e-4") == ("gan.lr_g", 2e-4)
    assert parse_override("train.steps=10") == ("train.steps", 10)
    assert parse_override("data.grouping=null") == ("data.grouping", None)


@pytest.mark.parametrize("override, message", [
    ("train.stepz=5", "unknown key train.stepz; known keys in train: steps"),
    ("trian.steps=5", "unknown config section"),
    ("ensemble.members=0", "ensemble.members: 0 is out of range; it must be >= 1"),
    ("train.steps=-3", "train.steps: -3 is out of range"),
    ("train.steps=abc", "train.steps: expected int"),
    ("train.steps=1.5", "train.steps: expected int"),
    ("gan.loss=wasserstein", "choose one of: nonsaturating, minimax"),
    ("gan.family=resnet", "choose one of: mlp2d, dcgan, ccgan, pggan, fc"),
    ("gan.lr_g=0", "gan.lr_g: 0.0 is out of range; it must be > 0"),
    ("data.grouping=III", "choose one of: null, II"),
    ("train.device=tpu", "choose one of: auto, cpu, cuda"),
])
def test_bad_values_name_the_key_and_the_allowed_values(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(overrides=[override])


def test_relations_between_fields_are_checked():
    with pytest.raises(ConfigError, match="one weight per member"):
        load_config(overrides=["ensemble.members=3", "ensemble.weights=[0.5, 0.5]"])
    with pytest.raises(ConfigError, match="summing to 1"):
        load_config(overrides=["ensemble.members=2", "ensemble.weights=[0.5, 0.6]"])
    with pytest.raises(ConfigError, match="use gan.family=mlp2d"):
        load_config(overrides=["data.name=grid2d"])
    with pytest.raises(ConfigError, match="keep one of them"):
        load_config(overrides=["data.grouping=II", "data.classes={a: [0]}"])
    with pytest.raises(ConfigError, match="training split remains"):
        load_config(overrides=["data.val_fraction=0.5", "data.test_fraction=0.5"])


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does-not-exist.yaml does not exist"):
        load_config(tmp_path / "does-not-exist.yaml")


def test_config_is_frozen_and_round_trips_through_yaml(tmp_path):
    cfg = load_config(overrides=["train.steps=11"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.steps = 5
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def _shipped_configs():
    from pathlib import Path
    return sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", _shipped_configs(), ids=lambda p: p.name)
def test_every_shipped_config_and_preset_resolves(path):
    import yaml
    cfg = load_config(path)
    presets = (yaml.safe_load(path.read_text()) or {}).get("presets") or {}
    for name, delta in presets.items():
        preset = load_config(path, preset=name)
        for section, values in delta.items():
            for key, value in values.items():
                assert getattr(getattr(preset, section), key) == value, (path.name, name, key)
    assert cfg.output.experiment


def test_preset_applies_on_top_of_the_file_and_under_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {steps: 10, batch_size: 8}\n"
                    "presets:\n  paper: {train: {steps: 50000}, ensemble: {members: 10}}\n")
    plain = load_config(path)
    assert (plain.train.steps, plain.ensemble.members) == (10, 5)
    paper = load_config(path, preset="paper")
    assert (paper.train.steps, paper.train.batch_size, paper.ensemble.members) == (50000, 8, 10)
    assert load_config(path, ["train.steps=7"], preset="paper").train.steps == 7
    with pytest.raises(ConfigError, match="preset 'quick' is not in .*its presets: paper"):
        load_config(path, preset="quick")


def test_image_datasets_need_a_root_and_ccgan_needs_independent_members():
    with pytest.raises(ConfigError, match="data.root"):
        load_config(None, ["data.name=cifar10"])
    with pytest.raises(ConfigError, match="ccgan"):
        load_config(None, ["gan.family=ccgan", "ensemble.method=adagan"])
    with pytest.raises(ConfigError, match="recursive_rounds"):
        load_config(None, ["train.recursive_rounds=2", "ensemble.method=adagan"])


@pytest.mark.parametrize("overrides, message", [
    (["ensemble.members=3", "eval.max_ensemble=4"], "eval.max_ensemble=4 is above ensemble.members=3"),
    (["eval.mixing_ratios=[0.5, -1]"], r"eval.mixing_ratios\[1\] = -1 is not allowed"),
    (["audit.spaces=[pixel, bogus]"], r"audit.spaces\[1\] = 'bogus' is not allowed; every item must "
                                      "be one of pixel, domain"),
    (["audit.spaces=[]"], "audit.spaces is empty"),
    (["sweep.lr=[0.001, zero]"], r"sweep.lr\[1\] = 'zero'"),
    (["sweep.arch=[vit]"], r"sweep.arch\[0\] = 'vit'"),
    (["cluster.gpus_per_member=1.5"], "above 1 it must be a whole number"),
    (["output.run=/tmp/elsewhere"], "output.run='/tmp/elsewhere' would leave"),
    (["output.experiment=../../x"], "output.experiment='../../x' would leave"),
    (["sweep.name=../../x"], "sweep.name='../../x' would leave"),
    (["train.steps=!!python/object/apply:os.system [true]"], "--set train.steps: line 1: .*python/"
                                                             "object/apply:os.system.*plain YAML"),
    (["train.steps=[1"], "--set train.steps: YAML syntax error at line 1"),
])
def test_list_items_relations_and_names_are_refused_at_load(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_whole_and_fractional_gpus_and_nested_run_names_still_load():
    assert load_config(overrides=["cluster.gpus_per_member=2"]).cluster.gpus_per_member == 2
    assert load_config(overrides=["cluster.gpus_per_member=0.25"]).cluster.gpus_per_member == 0.25
    assert load_config(overrides=["output.run=ablation/lr_1e-3"]).output.run == "ablation/lr_1e-3"


@pytest.mark.parametrize("text, message", [
    ("train:\n  steps: 5\n  batch_size: 8\n  steps: 7\n",
     r"c.yaml: line 4: key 'steps' is given twice \(first on line 2\)"),
    ("train: {steps: 5}\ntrain: {steps: 6}\n", "c.yaml: line 2: key 'train' is given twice"),
    ("train:\n  steps: !!python/object/apply:os.system ['touch pwned']\n",
     "c.yaml: line 2: could not determine a constructor .*python/object/apply"),
    ("train:\n  steps: 5\n batch_size: [\n", "c.yaml: YAML syntax error at line 3"),
])
def test_bad_yaml_files_name_the_file_and_the_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # the tag ran nothing


def test_an_output_root_under_a_file_is_refused(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ConfigError, match="a_file is a file, so no run folder can be made there"):
        load_config(overrides=[f"output.root={tmp_path}/a_file/runs"])
    with pytest.raises(ConfigError, match="is a file"):
        load_config(overrides=[f"output.root={tmp_path}/a_file"])
