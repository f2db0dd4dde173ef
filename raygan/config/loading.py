"""Typed, frozen run configuration: defaults, YAML deltas, dotted overrides, strict validation.

Every field has a documented default (``doc`` in its metadata). A YAML file holds only what differs
from the defaults; ``--set section.key=value`` overrides apply on top. Unknown keys, wrong types and
impossible values raise :class:`ConfigError` naming the key and what is allowed, before any work starts.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from raygan.config.schema import _SECTIONS, Config, ConfigError, _section_class, from_dict


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


# YAML 1.2's floats: PyYAML follows YAML 1.1, whose float needs a dot, so it reads 1e-4 as the string
# "1e-4" (and a learning rate written as researchers write it is refused as "expected float").
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                        |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                        |[-+]?\.(?:inf|Inf|INF)
                        |\.(?:nan|NaN|NAN))$""", re.X)


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load's loader (no tag builds a Python object) that also refuses a key given twice and
    reads scientific notation without a dot (1e-4) as a number, as YAML 1.2 does."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{self.name}: line {key_node.start_mark.line + 1}: key {key!r} is "
                                  f"given twice (first on line {seen[key]}); keep one of them")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# SafeLoader's resolvers with its float rule replaced by YAML 1.2's (the other rules never match 1e3)
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def read_yaml(text: str, source: str) -> Any:
    """Parse raygan YAML (a config file, a --set value): plain data only; a syntax error, a python tag
    or a duplicate key is a ConfigError naming ``source`` and the line."""
    loader = _StrictLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.constructor.ConstructorError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        raise ConfigError(f"{source}: line {line}: {err.problem}; raygan reads plain YAML only (no "
                          "!!python/... or other tags): write the value as a number, string, list or "
                          "mapping") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}: YAML syntax error at {where}: {problem}; fix the YAML (indent "
                          "with spaces, quote values holding ': ' or '#')") from None
    finally:
        loader.dispose()


def parse_override(text: str) -> tuple[str, Any]:
    """'gan.lr_g=2e-4' -> ('gan.lr_g', 0.0002); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. train.steps=500")
    key, raw = text.split("=", 1)
    value = read_yaml(raw, f"--set {key.strip()}") if raw.strip() else None
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
        raw = read_yaml(path.read_text(), str(path)) or {}
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
    cfg = from_dict(raw)
    check_output_root(cfg.output.root)
    return cfg


def check_output_root(root: str) -> None:
    """A local output.root must be (or be creatable as) a folder: refused when it, or a folder above
    it, is a file (checked here, at load, so that no job starts work it could not save)."""
    if "://" in root:
        return  # a storage URI: its filesystem is opened (and checked) by raygan.runs
    path = Path(root).expanduser()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"output.root={root!r}: {p} is a file, so no run folder can be made "
                                  "there; choose another output.root")
            return


def describe() -> str:
    """Every field with its default and documentation, for `raygan config --describe`."""
    lines = []
    for name in _SECTIONS:
        lines.append(f"{name}:")
        for f in dataclasses.fields(_section_class(name)):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"  {f.name} = {default!r}\n      {f.metadata['doc']}")
    return "\n".join(lines)

