"""Typed, frozen run configuration: defaults, YAML deltas, dotted overrides, strict validation.

Every field has a documented default (``doc`` in its metadata). A YAML file holds only what differs
from the defaults; ``--set section.key=value`` overrides apply on top. Unknown keys, wrong types and
impossible values raise :class:`ConfigError` naming the key and what is allowed, before any work starts.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from raygan.config.checks import from_dict
from raygan.config.schema import _SECTIONS, Config, ConfigError, _section_class


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if len(parts) < 2:
        raise ConfigError(f"override {dotted!r} must look like section.key=value, e.g. gan.lr_g=2e-4")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {p} is not a section")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'gan.lr_g=2e-4' -> ('gan.lr_g', 0.0002); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. train.steps=500")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):  # YAML reads 2e-4 as a string; numbers should be numbers
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return key.strip(), value


def _merge(base: dict, delta: dict) -> dict:
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = (),
                preset: str | None = None) -> Config:
    """Defaults <- YAML deltas at ``path`` <- the file's named preset <- dotted overrides; validated.

    A config file may hold ``presets: {name: {section: {key: value}}}``; ``preset`` picks one (e.g.
    ``paper``: the seed's own setting) and its deltas apply on top of the file's.
    """
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; pass an existing YAML file "
                              f"(see configs/)")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    presets = raw.pop("presets", None) or {}
    if preset is not None:
        if preset not in presets:
            where = path if path is not None else "the defaults"
            raise ConfigError(f"preset {preset!r} is not in {where}; its presets: "
                              f"{', '.join(sorted(presets)) or 'none'}")
        _merge(raw, presets[preset])
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(raw, key, value)
    return from_dict(raw)


def describe() -> str:
    """Every field with its default and documentation, for `raygan config --describe`."""
    lines = []
    for name in _SECTIONS:
        lines.append(f"{name}:")
        for f in dataclasses.fields(_section_class(name)):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"  {f.name} = {default!r}\n      {f.metadata['doc']}")
    return "\n".join(lines)

