"""Class groupings: which source labels make up each class a GAN ensemble is trained on."""
from __future__ import annotations

from raygan.config import ConfigError

# Seed 000 Supplement B: SVHN-II, CIFAR-II and MNIST-II put source labels 0-4 in one class, 5-9 in the other.
GROUPINGS: dict[str, dict[str, list[int]]] = {
    "II": {"0-4": [0, 1, 2, 3, 4], "5-9": [5, 6, 7, 8, 9]},
}


def resolve_grouping(source_labels: list[int], grouping: str | None,
                     classes: dict | None) -> dict[str, list[int]]:
    """{class name: [source labels]}; identity (one class per label) when neither is given."""
    if grouping is not None:
        mapping = GROUPINGS[grouping]
    elif classes is not None:
        mapping = {str(k): list(v) for k, v in classes.items()}
    else:
        return {str(label): [label] for label in source_labels}
    seen: dict[int, str] = {}
    for name, labels in mapping.items():
        for label in labels:
            if label not in source_labels:
                raise ConfigError(f"class {name!r} names source label {label}, which the dataset does "
                                  f"not have (labels: {sorted(source_labels)})")
            if label in seen:
                raise ConfigError(f"source label {label} is in both class {seen[label]!r} and {name!r}; "
                                  "each label may belong to one class")
            seen[label] = name
    return mapping
