"""Data the pipeline cannot honestly measure, refused when the data loads (before any work) with one line
naming the class and the fix; and what a loader changes without refusing (an alpha channel dropped) said
in a warning. Image folders and parquet files written here, read through raygan.data.load_dataset."""
from __future__ import annotations

import io
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from raygan.config import ConfigError, load_config
from raygan.data import load_dataset


def _data(*overrides: str):
    return load_config(overrides=list(overrides)).data


def _folder(root, sizes: dict[str, int], mode: str = "RGB", size: int = 8) -> None:
    channels = {"RGB": 3, "RGBA": 4}[mode]
    for name, n in sizes.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = np.full((size, size, channels), 10 * i % 250, np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{i:03d}.png")


def _refused(*overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_dataset(_data(*overrides))
    message = str(err.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------------------- class names as paths

@pytest.mark.parametrize("folder", ["a\\b", " padded", "tab\tname", "new\nline"])
def test_an_image_folder_whose_name_is_not_one_path_segment_is_refused(tmp_path, folder):
    _folder(tmp_path, {"good": 6, folder: 6})
    message = _refused("data.name=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0",
                       "data.test_fraction=0")
    assert repr(folder) in message and "cannot name a folder of the run" in message
    assert "rename that sub-folder" in message and str(tmp_path) in message
    # named by data.classes instead, the folder's own name is never a path: accepted
    ds = load_dataset(_data("data.name=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0",
                            "data.test_fraction=0", "data.classes={good: [0], other: [1]}"))
    assert sorted(ds.classes) == ["good", "other"]


def test_a_parquet_class_name_that_leaves_the_run_folder_is_refused(tmp_path):
    def png(value: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(buf, format="PNG")
        return buf.getvalue()

    table = pa.table({"image": [png(v) for v in range(8)], "label": [0, 1] * 4,
                      "class_name": ["ok", "../../../escape"] * 4})
    pq.write_table(table, tmp_path / "data.parquet")
    message = _refused("data.name=parquet", f"data.root={tmp_path / 'data.parquet'}",
                       "data.val_fraction=0", "data.test_fraction=0")
    assert "'../../../escape'" in message and "path separator" in message


# ---------------------------------------------------------------------------- splits per class

def test_a_three_image_class_is_named_with_its_count_and_the_minimum_it_needs(tmp_path):
    _folder(tmp_path, {"common": 20, "rare": 3})
    message = _refused("data.name=imagefolder", f"data.root={tmp_path}")
    assert message.startswith("class 'rare' has 3 images, too few to split")
    assert "about 7 images a label" in message and "add images to the class" in message
    assert "scikit-learn" not in message and "lower" not in message  # no label numbers, no wrong way


def test_a_class_left_without_test_images_is_refused_with_its_name_and_the_fix(tmp_path):
    _folder(tmp_path, {"common": 20, "rare": 3})
    message = _refused("data.name=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0",
                       "data.test_fraction=0.05")
    assert message.startswith("class 'rare' has 3 images, and the split leaves none of them in the test "
                              "split")
    assert "raise data.test_fraction (to at least 0.33 for 3 images)" in message


def test_a_class_left_without_validation_images_is_refused(tmp_path):
    _folder(tmp_path, {"common": 20, "rare": 3})
    message = _refused("data.name=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0.05",
                       "data.test_fraction=0.05")
    assert "class 'rare' has 3 images" in message and "validation split" in message
    assert "raise data.val_fraction" in message


def test_digits_with_a_tiny_test_fraction_names_a_class_not_a_label_count_dict():
    message = _refused("data.name=digits", "data.classes={low: [0, 1], high: [8, 9]}",
                       "data.val_fraction=0.1", "data.test_fraction=0.003")
    assert message.startswith("class ") and "images, too few to split" in message
    assert "{" not in message  # no per-label counts dict from the old message


def test_holdout_splits_too_small_for_the_audit_say_so_both_ways(tmp_path):
    from raygan.audit.inputs import check_holdout, holdout_split

    _folder(tmp_path, {"common": 20, "rare": 7})
    base = ["data.name=imagefolder", f"data.root={tmp_path}"]
    ds = load_dataset(_data(*base))
    assert [int((y == 1).sum()) for y in (ds.test[1], ds.val[1])] == [1, 1]
    for holdout in ("test", "val"):  # one image each; the two together are enough
        with pytest.raises(ConfigError) as err:
            check_holdout(load_config(overrides=[*base, f"audit.holdout={holdout}"]), ds)
        message = str(err.value)
        assert "class 'rare' has 1 test and 1 validation image(s)" in message
        assert message.endswith("set audit.holdout=val+test")
    both = load_config(overrides=[*base, "audit.holdout=val+test"])
    check_holdout(both, ds)
    x, y = holdout_split(both, ds)
    assert int((y == 1).sum()) == 2 and len(x) == len(ds.val[0]) + len(ds.test[0])
    assert torch.equal(x[:len(ds.val[0])], ds.val[0]) and torch.equal(x[len(ds.val[0]):], ds.test[0])

    ds = load_dataset(_data(*base, "data.val_fraction=0"))  # rare: one test image, no validation split
    for holdout in ("test", "val+test"):
        with pytest.raises(ConfigError) as err:
            check_holdout(load_config(overrides=[*base, "data.val_fraction=0", f"audit.holdout={holdout}"]), ds)
        message = str(err.value)
        assert "class 'rare' has 1 test and 0 validation image(s)" in message
        assert "which neither split has" in message and "raise data.test_fraction" in message
        assert "set audit.holdout=" not in message


# ---------------------------------------------------------------------------- what is dropped is said

def test_dropped_alpha_channels_are_logged_with_how_many_images(tmp_path, caplog):
    _folder(tmp_path / "a", {"opaque": 6})
    _folder(tmp_path / "a", {"clear": 4}, mode="RGBA")
    caplog.set_level(logging.WARNING, logger="raygan")
    ds = load_dataset(_data("data.name=imagefolder", f"data.root={tmp_path / 'a'}", "data.image_size=4",
                            "data.val_fraction=0", "data.test_fraction=0"))
    assert ds.sample_shape == (3, 4, 4)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "4 of 10 images have an alpha channel" in warnings[0]
    assert "dropped it" in warnings[0]
