"""The GAN search's space (``sweep.gan_space``, ``sweep.target: gan``), checked when the config loads.

The space maps dotted GAN/train keys (SPACE_KEYS) to a list (a grid) or to a sampled form (SAMPLED):
{choice: [values]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]} or {randint: [lo, hi]} (whole numbers,
hi included). Several keys tied together ("train.batch_size,train.steps") take one value list per
point. Every key and every value is checked through the typed config before any work: a point is
applied with ``Config.replace``, so the schema's own types, ranges and cross-field rules run on it
(``check_gan_space``). Pure config logic: a trial itself (training, scoring) is
raygan.sweeps.gan_trial's, its Tune wiring raygan.cluster.sweep_gan's.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from raygan.config.datasets import is_points
from raygan.config.families import PROGRESSIVE
from raygan.config.fields import ConfigError

if TYPE_CHECKING:  # the schema imports the checks, which import this module
    from raygan.config.schema import Config

SPACE_KEYS = ("gan.width", "gan.d_depth", "gan.z_dim", "gan.lr_g", "gan.lr_d", "gan.beta1",
              "gan.real_label", "gan.g_steps_per_d_step", "gan.alpha", "gan.dropout", "gan.g_norm",
              "gan.loss", "train.batch_size", "train.steps", "train.seed")
# Sampled forms: {form: [lo, hi]} (randint: whole numbers, hi included) or {choice: [values]}.
SAMPLED = ("choice", "uniform", "loguniform", "randint")


def space_keys(key: str) -> list[str]:
    """The dotted keys a space entry sets: one, or several tied together ("train.batch_size,
    train.steps": each grid value a list of one value per key, e.g. the same epochs at every batch)."""
    return [k.strip() for k in key.split(",")]


def _unknown(key: str) -> ConfigError:
    return ConfigError(f"sweep.gan_space: unknown key {key!r}; allowed keys: {', '.join(SPACE_KEYS)}")


def expand(point: dict[str, Any]) -> dict[str, Any]:
    """A point with its tied entries spread out: {"a,b": [1, 2]} -> {"a": 1, "b": 2}."""
    out = {}
    for key, value in point.items():
        keys = space_keys(key)
        if len(keys) == 1:
            out[key] = value
        elif isinstance(value, (list, tuple)) and len(value) == len(keys):
            out.update(zip(keys, value))
        else:
            raise ConfigError(f"sweep.gan_space.{key}: {value!r} must be a list of {len(keys)} values, "
                              "one per key")
    return out


def apply_point(cfg: Config, point: dict[str, Any]) -> Config:
    """``cfg`` with the dotted settings of ``point`` (e.g. {"gan.width": 16}) through Config.replace,
    so that every schema check runs; an unknown key is one ConfigError naming it and SPACE_KEYS."""
    sections: dict[str, dict] = {}
    for key, value in expand(point).items():
        if key not in SPACE_KEYS:
            raise _unknown(key)
        section, name = key.split(".", 1)
        sections.setdefault(section, {})[name] = value
    # A trial's config holds its point, not the space (nor would the load-time check recurse).
    return cfg.replace(**{**sections, "sweep": {"gan_space": {}}})


def steps_values(cfg: Config, forms: dict[str, tuple[str, list]]) -> list[int]:
    """Every train.steps a trial of the space may train (a randint range: its bounds)."""
    for key, (_, values) in forms.items():
        keys = space_keys(key)
        if "train.steps" in keys:
            i = keys.index("train.steps")
            return [int(v[i] if len(keys) > 1 else v) for v in values]
    return [cfg.train.steps]


def _form(key: str, spec: Any) -> tuple[str, list]:
    """("grid", values) for a list, else (sampled form, its list): one ConfigError per bad shape."""
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"sweep.gan_space.{key} is an empty list; give at least one value")
        return "grid", spec
    if isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in SAMPLED:
        form, args = next(iter(spec.items()))
        if not isinstance(args, list) or not args:
            raise ConfigError(f"sweep.gan_space.{key}: {{{form}: {args!r}}} needs a list")
        if form != "choice":
            if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool)
                                         for a in args) or not args[0] < args[1]:
                raise ConfigError(f"sweep.gan_space.{key}: {{{form}: {args!r}}} needs [lo, hi], two "
                                  "numbers with lo < hi")
            if form == "loguniform" and args[0] <= 0:
                raise ConfigError(f"sweep.gan_space.{key}: loguniform needs lo > 0, got {args[0]}")
            if form == "randint" and not all(isinstance(a, int) for a in args):
                raise ConfigError(f"sweep.gan_space.{key}: randint needs whole numbers, got {args}")
        return form, args
    raise ConfigError(f"sweep.gan_space.{key}: {spec!r} is neither a list (grid) nor one of "
                      f"{{{': [...]}, {'.join(SAMPLED)}: [...]}}")


def _check_target(cfg: Config, steps_values: list[int]) -> None:
    """What a GAN trial needs of the base config (and of every train.steps the space gives)."""
    if is_points(cfg.data.name):
        raise ConfigError(f"sweep.target=gan scores trials by TSTR, which needs labelled classes; "
                          f"data.name={cfg.data.name} holds unlabelled points; sweep an image dataset")
    if cfg.ensemble.method != "independent":
        raise ConfigError(f"sweep.target=gan trains independent ensembles in rungs; ensemble.method="
                          f"{cfg.ensemble.method} is not resumable to more steps; set "
                          "ensemble.method=independent")
    rungs = cfg.sweep.gan_rungs
    if rungs > 1 and (cfg.gan.family in PROGRESSIVE or cfg.train.recursive_rounds):
        raise ConfigError(f"sweep.gan_rungs={rungs}: gan.family=pggan and recursive training lay their "
                          "schedule over train.steps, so a trial cannot stop and resume between rungs; "
                          "set sweep.gan_rungs=1")
    for steps in steps_values:
        if steps < rungs:
            raise ConfigError(f"sweep.gan_rungs={rungs} is more than train.steps={steps}; lower "
                              "sweep.gan_rungs")


def check_gan_space(cfg: Config) -> dict[str, tuple[str, list]]:
    """sweep.gan_space checked before any work: {key: (form, values)}. Every listed value, both bounds
    of a range, and every grid combination (others at the base config) pass the schema's checks."""
    space = cfg.sweep.gan_space
    if not space:
        raise ConfigError("sweep.target=gan needs sweep.gan_space, e.g. {gan.width: [8, 16]}; keys: "
                          f"{', '.join(SPACE_KEYS)}")
    forms = {}
    for key, spec in space.items():
        for part in space_keys(key):
            if part not in SPACE_KEYS:
                raise _unknown(part)
        forms[key] = _form(key, spec)
        if len(space_keys(key)) > 1 and forms[key][0] not in ("grid", "choice"):
            raise ConfigError(f"sweep.gan_space.{key}: tied keys take a list or {{choice: [...]}} of "
                              f"value lists, not {forms[key][0]}")
        for value in forms[key][1]:
            try:
                apply_point(cfg, {key: value})
            except ConfigError as err:
                raise ConfigError(f"sweep.gan_space.{key}: value {value!r}: {err}") from None
    grid = {k: v for k, (form, v) in forms.items() if form == "grid"}
    _check_target(cfg, steps_values(cfg, forms))
    for combo in itertools.islice(itertools.product(*grid.values()), 1000):
        point = dict(zip(grid, combo))
        try:
            apply_point(cfg, point)
        except ConfigError as err:
            raise ConfigError(f"sweep.gan_space point {point}: {err}") from None
    return forms


__all__ = ["SAMPLED", "SPACE_KEYS", "apply_point", "check_gan_space", "expand", "space_keys", "steps_values"]
