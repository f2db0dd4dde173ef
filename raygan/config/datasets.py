"""What the config knows of the datasets, as data: which data.name gives 2-D points, and the native
square size of the datasets whose size the config alone decides. The config's checks read it before
any data are loaded; raygan.data re-exports the points rule for the loaders (no torch is imported
here: the config layer's rule)."""
from __future__ import annotations

# data.name values whose samples are 2-D points, not images (RealDataset.kind "points").
POINT_DATASETS = frozenset({"grid2d"})
# Native square sizes of the datasets whose size the config alone decides (data.image_size resizes).
NATIVE_SIZE = {"digits": 8, "mnist": 28, "fashion_mnist": 28, "cifar10": 32, "svhn": 32, "lfw_subset": 25,
               "skimage_patches": 32}
# MedMNIST v2's 2D datasets (data.medmnist_flag) and the square sizes MedMNIST+ publishes them at.
MEDMNIST_FLAGS = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
                  "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist")
MEDMNIST_SIZES = (28, 64, 128, 224)


def is_points(data_name: str) -> bool:
    """Whether data.name ``data_name`` gives 2-D points (no images, labels or test split)."""
    return data_name in POINT_DATASETS


def image_size(data_name: str, resize: int | None, medmnist_size: int | None = None) -> int | None:
    """The square size of the images (data.image_size when set), or None when only the files know it."""
    if data_name == "medmnist":
        return resize or medmnist_size
    return resize or NATIVE_SIZE.get(data_name)


__all__ = ["MEDMNIST_FLAGS", "MEDMNIST_SIZES", "NATIVE_SIZE", "POINT_DATASETS", "image_size", "is_points"]
