"""The config schema's building blocks: ConfigError and the documented field (``_f``) every section uses."""
from __future__ import annotations

from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A configuration problem, raised before any work starts; the message names the key and the fix."""


def _f(default: Any, doc: str, *, choices: tuple | None = None, minimum: float | None = None,
       maximum: float | None = None, exclusive_min: bool = False, exclusive_max: bool = False):
    """A dataclass field carrying its documentation and its allowed values."""
    meta = {"doc": doc, "choices": choices, "minimum": minimum, "maximum": maximum,
            "exclusive_min": exclusive_min, "exclusive_max": exclusive_max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)
