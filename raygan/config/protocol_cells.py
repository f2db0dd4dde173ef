"""Classifier-protocol cells of a sweep (``sweep.protocols``): each item checked, completed and named.

A cell is one setting of the downstream protocols of Slim, "Boosting generative networks for
incremental learning", Section 3.1 (the columns of its Table 1): a small mapping

    {name: str, on_the_fly: bool, augment: str, filter_rho: float | null, truncation: float | null}

- ``on_the_fly``: fresh samples from the generators every epoch, one member per batch (else the
  fixed set: the shards as written where they can make it);
- ``augment``: the training batches' transformation (eval.augment's names; flip_crop is the paper's);
- ``filter_rho``: keep a synthetic sample only if a real-trained classifier agrees with confidence
  >= rho (the paper: 0.9); null keeps every sample;
- ``truncation``: latents from N(0, I) truncated to [-tau, tau] (the paper: 1.5); null draws plain
  N(0, I). A cell whose truncation is synth.truncation reads the shards (they were drawn with it).

A key left out is off (false, none, null); ``name`` defaults to one made from the others
(``fixed``, ``otf+flip_crop+rho0.9+tau1.5``). Every check here is a one-line ConfigError naming the
item and key, raised when the config loads. No torch is imported here (the config layer's rule).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from raygan.config.datasets import is_points
from raygan.config.fields import ConfigError
from raygan.config.schema_eval import EvalConfig

if TYPE_CHECKING:  # the schema imports the checks, which import this module
    from raygan.config.schema import Config

CELL_DEFAULTS = {"on_the_fly": False, "augment": "none", "filter_rho": None, "truncation": None}
CELL_KEYS = ("name", *CELL_DEFAULTS)


def augment_names() -> tuple[str, ...]:
    """eval.augment's allowed names: one list of batch augmentations for the evaluation and the cells."""
    return next(f.metadata["choices"] for f in dataclasses.fields(EvalConfig) if f.name == "augment")


def cell_name(cell: dict) -> str:
    """The default name of a completed cell: its set kind, then every protocol that is on."""
    parts = ["otf" if cell["on_the_fly"] else "fixed"]
    if cell["augment"] != "none":
        parts.append(cell["augment"])
    if cell["filter_rho"] is not None:
        parts.append(f"rho{cell['filter_rho']:g}")
    if cell["truncation"] is not None:
        parts.append(f"tau{cell['truncation']:g}")
    return "+".join(parts)


def signature(cell: dict) -> tuple[bool, bool, bool, bool]:
    """(on the fly, transformations, filtering, truncation): which of Table 1's columns a cell is."""
    return (bool(cell["on_the_fly"]), cell["augment"] != "none", cell["filter_rho"] is not None,
            cell["truncation"] is not None)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def complete_cell(index: int, item: Any) -> dict:
    """sweep.protocols[index] checked and completed with the defaults and its name."""
    where = f"sweep.protocols[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} = {item!r} is not allowed; every item must be a mapping such as "
                          "{on_the_fly: true, augment: flip_crop, filter_rho: 0.9, truncation: 1.5}")
    unknown = [k for k in item if k not in CELL_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(CELL_KEYS)}")
    cell = {**CELL_DEFAULTS, **{k: v for k, v in item.items() if k != "name"}}
    if not isinstance(cell["on_the_fly"], bool):
        raise ConfigError(f"{where}.on_the_fly: {cell['on_the_fly']!r} is not allowed; give true or false")
    if cell["augment"] not in augment_names():
        raise ConfigError(f"{where}.augment: {cell['augment']!r} is not allowed; choose one of: "
                          f"{', '.join(augment_names())}")
    rho = cell["filter_rho"]
    if rho is not None and not (_number(rho) and 0 < rho <= 1):
        raise ConfigError(f"{where}.filter_rho: {rho!r} is not allowed; give a confidence in (0, 1] "
                          "(seed 001: 0.9) or null for no filter")
    tau = cell["truncation"]
    if tau is not None and not (_number(tau) and tau > 0):
        raise ConfigError(f"{where}.truncation: {tau!r} is not allowed; give a threshold tau > 0 "
                          "(seed 001: 1.5) or null for plain N(0, I) latents")
    cell["filter_rho"] = None if rho is None else float(rho)
    cell["truncation"] = None if tau is None else float(tau)
    name = item.get("name", cell_name(cell))
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ConfigError(f"{where}.name: {name!r} is not allowed; give a short label without '/'")
    return {"name": name, **cell}


def protocol_cells(cfg: Config) -> list[dict]:
    """The completed cells of cfg.sweep.protocols ([] leaves the sweep as it was), with the rules
    that tie them to the rest of the config."""
    s = cfg.sweep
    if not s.protocols:
        return []
    if s.target != "classifier":
        raise ConfigError("sweep.protocols sets classifier protocols but sweep.target=gan; remove "
                          "sweep.protocols or set sweep.target: classifier")
    if not s.synthetic_only:
        raise ConfigError("sweep.protocols trains on synthetic data alone (seed 001's Table 1) but "
                          "sweep.synthetic_only is false; set sweep.synthetic_only: true")
    cells = [complete_cell(i, item) for i, item in enumerate(s.protocols)]
    names = [c["name"] for c in cells]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"sweep.protocols names the cell(s) {twice} twice; give each a distinct "
                          "name (or leave two identical cells out)")
    if is_points(cfg.data.name) and any(c["augment"] != "none" for c in cells):
        raise ConfigError(f"sweep.protocols: augment applies to images but data.name={cfg.data.name} "
                          "gives points; use augment: none")
    return cells


__all__ = ["CELL_DEFAULTS", "CELL_KEYS", "augment_names", "cell_name", "complete_cell", "protocol_cells",
           "signature"]
