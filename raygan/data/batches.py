"""CIFAR-10's python batches, read without running code: a restricted unpickler.

The batches are pickles by format (a dict of a uint8 ``data`` array, a ``labels`` list, names as
bytes), and unpickling a pickle can call anything it names: a crafted batch under data.root would run
code through ``data.name: cifar10``. ``_BatchUnpickler.find_class`` admits only what those files
hold, numpy's array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``; ``_frombuffer``, which
numpy >= 2 writes at pickle protocol 5) and ``_codecs.encode`` for latin-1 bytes (how protocol 2
stores bytes written by Python 3); any other name is a one-line ConfigError naming the file, and
nothing in it runs. Lists, dicts, strings and numbers are pickle opcodes, not names, and need no entry.
"""
from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path

import numpy as np

from raygan.config import ConfigError

# (module, name) -> (module to import, name): numpy 2 moved numpy.core to numpy._core; batches written
# with either name load with the one this numpy has.
_ARRAY_NAMES = {("numpy", "ndarray"), ("numpy", "dtype")}
_NUMPY_CORE = {"_reconstruct": "multiarray", "_frombuffer": "numeric"}


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """_codecs.encode as protocol-2 pickles use it (bytes as latin-1 text); no other codec."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} (a CIFAR batch only uses latin1)")
    return codecs.encode(text, "latin1")


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ARRAY_NAMES:
            return getattr(np, name)
        core = _NUMPY_CORE.get(name)
        if core is not None and module in (f"numpy.core.{core}", f"numpy._core.{core}"):
            here = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
            return getattr(importlib.import_module(f"{here}.{core}"), name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch never holds")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (N, 3, 32, 32), int64 labels (N,)) of one CIFAR-10 python batch, or a one-line
    ConfigError naming the file; nothing in the file runs."""
    fix = ("replace it with the file from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
           "(or set data.download: true into an empty data.root)")
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise ConfigError(f"{path} was not read: {err}, and raygan reads no pickle that could run code; "
                          f"{fix}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise ConfigError(f"{path} is not a CIFAR-10 python batch (truncated or corrupt: "
                          f"{type(err).__name__}); {fix}") from None
    data = entry.get("data") if isinstance(entry, dict) else None
    labels = entry.get("labels") if isinstance(entry, dict) else None
    labels = np.asarray(labels) if isinstance(labels, (list, np.ndarray)) else np.zeros((0, 0))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072 or labels.ndim != 1 or labels.dtype.kind not in "iu" \
            or len(labels) != len(data):
        raise ConfigError(f"{path} is not a CIFAR-10 python batch (it should hold 'data', uint8 rows of "
                          f"3072 values, and one integer in 'labels' per row); {fix}")
    # each row is 1024 red, 1024 green, 1024 blue values, each plane row-major: already C, H, W
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)
