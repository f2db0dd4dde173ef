"""A Config from a nested mapping, checked: every section, key, type, choice and range (from each field's
metadata), then every rule between fields (raygan.config.checks).

``build_config`` takes the Config class as an argument instead of importing the schema, so that the
schema (whose ``Config.replace`` and ``from_dict`` build through here) sits above this module and the
checks below it: the config's modules import each other in one direction only.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from raygan.config.checks import check_config
from raygan.config.fields import ConfigError

C = TypeVar("C")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _check_type(key: str, value: Any, tp) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)][0]
        return _check_type(key, value, inner)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and type(value) is tp:
        return value
    if tp in (list, dict) and isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


# Optional fields whose null means "auto": the word auto is refused with a pointer to null (no
# sentinel strings in a config), before the generic "expected int".
_NULL_IS_AUTO = frozenset({"cluster.members_per_task"})


def _check_field(key: str, f: dataclasses.Field, value: Any, tp) -> Any:
    if key in _NULL_IS_AUTO and isinstance(value, str):
        raise ConfigError(f"{key}: {value!r} is not allowed; give a whole number >= 1, or null for "
                          "auto")
    value = _check_type(key, value, tp)
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        allowed = ", ".join("null" if c is None else str(c) for c in meta["choices"])
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of: {allowed}")
    if value is None or isinstance(value, (str, list, dict, bool)):
        return value
    lo, hi = meta.get("minimum"), meta.get("maximum")
    if lo is not None and (value < lo or (meta.get("exclusive_min") and value == lo)):
        bound = f"> {lo}" if meta.get("exclusive_min") else f">= {lo}"
        raise ConfigError(f"{key}: {value!r} is out of range; it must be {bound}")
    if hi is not None and (value > hi or (meta.get("exclusive_max") and value == hi)):
        bound = f"< {hi}" if meta.get("exclusive_max") else f"<= {hi}"
        raise ConfigError(f"{key}: {value!r} is out of range; it must be {bound}")
    return value


def build_config(config_cls: type[C], raw: dict) -> C:
    """A checked ``config_cls`` (the schema's Config: one dataclass field per section) from a
    (possibly partial) nested dict."""
    sections_of = {f.name: f.type for f in dataclasses.fields(config_cls)}
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    unknown = set(raw) - set(sections_of)
    if unknown:
        raise ConfigError(f"unknown config section(s) {sorted(unknown)}; known sections: "
                          f"{', '.join(sections_of)}")
    sections = {}
    for name, cls in sections_of.items():
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a mapping of keys, got {values!r}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                raise ConfigError(f"unknown key {name}.{key}; known keys in {name}: "
                                  f"{', '.join(fields)}")
        checked = {k: _check_field(f"{name}.{k}", fields[k], v, hints[k]) for k, v in values.items()}
        sections[name] = cls(**checked)
    cfg = config_cls(**sections)
    check_config(cfg)
    return cfg


__all__ = ["build_config"]
