"""Real datasets -> per-class training tensors plus real validation and test splits no GAN sees.

`load_dataset(cfg.data)` is the one entry point; it returns a :class:`RealDataset` whose
``train[class_name]`` is the per-class view GAN members train on.
"""
from raygan.config.checks import POINT_DATASETS, is_points
from raygan.data.base import RealDataset, check_batch_fits, load_dataset
from raygan.data.groupings import GROUPINGS, resolve_grouping

__all__ = ["RealDataset", "load_dataset", "check_batch_fits", "GROUPINGS", "resolve_grouping",
           "POINT_DATASETS", "is_points"]
