"""raygan's torch files, the format alone: written as tensors and plain data only (``save_torch_file``),
read with ``torch.load(weights_only=True)`` (``load_torch_file``), so that no file raygan reads can run code.

A file that this safe loader refuses (a pickle of other Python objects, a truncated or foreign file) is a
one-line ConfigError naming the file and the fix; raygan never falls back to unsafe loading. It sits
in the run folder's package, below both the run folder (which checks its members' generator files)
and raygan.gan.checkpoints (which builds models from them).
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from raygan.config import ConfigError
from raygan.runs.storage import atomic_write_bytes

_PLAIN = (str, int, float, bool, type(None))


def check_plain(obj: Any, where: str = "") -> None:
    """Raise TypeError unless ``obj`` is tensors inside dicts, lists and tuples of plain values:
    what torch.load(weights_only=True) reads back without unpickling any other class."""
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:  # np.float64 is a float, not plain
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            check_plain(key, where)
            check_plain(value, f"{where}.{key}")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
    else:
        raise TypeError(f"{where or 'the object'} is a {type(obj).__name__}: raygan's torch files hold "
                        "only tensors, dicts, lists, str, numbers, bool and None (store it as those)")


def save_torch_file(obj: dict, path: Path) -> None:
    """``obj`` (plain data and tensors, checked) written atomically with torch.save."""
    check_plain(obj)
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def _reason(err: Exception) -> str:
    if isinstance(err, pickle.UnpicklingError):
        return "it holds Python objects besides tensors and plain data, which could run code"
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"truncated or not a torch file: {first[:160]}"


def load_torch_file(path: Path, *, fix: str, map_location: str | torch.device = "cpu") -> dict:
    """The dict in a raygan torch file, loaded with weights_only=True, or a one-line ConfigError
    naming ``path``, why and ``fix`` (never an unsafe retry)."""
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise ConfigError(f"{path} was not read ({_reason(err)}); {fix}") from err
    if not isinstance(obj, dict):
        raise ConfigError(f"{path} was not read (it holds a {type(obj).__name__}, not raygan's dict); {fix}")
    return obj


__all__ = ["check_plain", "load_torch_file", "save_torch_file"]
