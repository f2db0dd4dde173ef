"""One trial of a GAN search (``sweep.target: gan``) without Ray, and the search space it draws from.

The space (``sweep.gan_space``) maps dotted GAN/train keys (SPACE_KEYS) to a list (a grid) or to a
sampled form (SAMPLED). Every key and every value is checked through the typed config before any work:
a point is applied with ``Config.replace``, so the schema's own types, ranges and cross-field rules run
on it (``check_gan_space``).

A trial (``run_gan_trial``) trains a small independent ensemble (ensemble.members per class, packed as
raygan.ensemble.members packs them) into its own run folder in ``sweep.gan_rungs`` equal chunks of
train.steps: more train.steps on an independent member folder resumes every member from its
checkpoint, as a straight run to those steps would (raygan.runs.folder ``changes``). After each rung
it synthesizes N_g = N samples per class and scores them against the real VALIDATION split:

- val_tstr: accuracy on the validation split of the eval.arch classifier trained on the synthetic set
  alone (its best epoch, picked on the same split, as the classifier sweep does);
- classifier_score: seed 003's score, the accuracy of the real-trained domain classifier on the
  samples (raygan.metrics.quality.classifier_score), averaged over classes;
- domain_fd: the Frechet distance of the samples to the validation split in the domain classifier's
  features (raygan.metrics.domain, raygan.metrics.frechet; not an Inception FID).

The real test split is never read here (``without_test`` swaps it out before a trial sees the data).
Each rung's scores go to ``rungs.json`` in the trial's folder; a restarted trial replays them and
goes on from the next rung, so a trial killed mid-sweep resumes instead of starting over.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
from typing import Any, Callable, Optional

import torch

from raygan.config import Config, ConfigError
from raygan.data import RealDataset
from raygan.runs import RunFolder, atomic_write_text

logger = logging.getLogger(__name__)

SPACE_KEYS = ("gan.width", "gan.d_depth", "gan.z_dim", "gan.lr_g", "gan.lr_d", "gan.beta1",
              "gan.real_label", "gan.g_steps_per_d_step", "gan.alpha", "gan.dropout", "gan.g_norm",
              "gan.loss", "train.batch_size", "train.steps", "train.seed")
# Sampled forms: {form: [lo, hi]} (randint: whole numbers, hi included) or {choice: [values]}.
SAMPLED = ("choice", "uniform", "loguniform", "randint")
RUNGS_FILE = "rungs.json"
METRIC = "val_tstr"


# --- the space ----------------------------------------------------------------------------------------
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
    from raygan.config.checks import is_points

    if is_points(cfg.data.name):
        raise ConfigError(f"sweep.target=gan scores trials by TSTR, which needs labelled classes; "
                          f"data.name={cfg.data.name} holds unlabelled points; sweep an image dataset")
    if cfg.ensemble.method != "independent":
        raise ConfigError(f"sweep.target=gan trains independent ensembles in rungs; ensemble.method="
                          f"{cfg.ensemble.method} is not resumable to more steps; set "
                          "ensemble.method=independent")
    rungs = cfg.sweep.gan_rungs
    if rungs > 1 and (cfg.gan.family == "pggan" or cfg.train.recursive_rounds):
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


def rung_steps(total: int, rungs: int) -> list[int]:
    """The GAN steps a trial reports at: ``rungs`` equal chunks of ``total`` (the last is ``total``)."""
    return [total * r // rungs for r in range(1, rungs + 1)]


def without_test(dataset: RealDataset) -> RealDataset:
    """The dataset a trial sees: no GAN trial may read the test split, so it is replaced by the
    validation split (what reports a "test" accuracy then reports the validation one)."""
    return dataclasses.replace(dataset, test=dataset.val)


# --- the reference: made once per sweep, on the driver -------------------------------------------------
@dataclasses.dataclass
class Reference:
    """The real-trained domain classifier and the validation split's features in its space."""
    model: torch.nn.Module
    val_features: torch.Tensor
    metric_samples: int


def make_reference(dataset: RealDataset, cfg: Config, *, cache=None, device: str = "cpu") -> Reference:
    """Train (or load from ``cache``) the domain classifier on the real training split; embed the
    real validation split. Called with the test split already removed (``without_test``)."""
    from raygan.metrics.domain import embed, train_domain_classifier

    model = train_domain_classifier(dataset, cache=cache, seed=cfg.eval.seed, device=device)
    x, _ = dataset.val
    return Reference(model=model.cpu().eval(), val_features=embed(model, x, device=device).double(),
                     metric_samples=cfg.eval.metric_samples)


# --- one trial ----------------------------------------------------------------------------------------
def train_to(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[dict]:
    """Train (or resume) the trial's ensemble to cfg.train.steps in ``run`` in this process: the
    per-class members as one pack (or conditional members, for ccgan); returns the manifest entries."""
    from raygan.ensemble.members import (
        check_classes,
        member_grid,
        record_trained,
        train_conditional_members,
        train_members,
    )
    from raygan.gan.models import CONDITIONAL

    run.check_compatible(cfg)
    run.write_config(cfg)  # marks members trained to fewer steps as extending
    todo = [(k, name, t) for k, name, t in member_grid(dataset, cfg.ensemble.members)
            if run.member_entry(name, t) is None]
    if cfg.gan.family in CONDITIONAL:
        members = sorted({t for _, _, t in todo})
        if members:
            data, labels = dataset.train_split()
            record_trained(run, train_conditional_members(data, labels, dataset.classes, cfg, run,
                                                          members=members))
    elif todo:
        units = [{"class_name": name, "class_index": k, "member": t, "data": dataset.train[name]}
                 for k, name, t in todo]
        record_trained(run, train_members(units, cfg, run))
    check_classes(run, dataset.classes, cfg)
    return [run.member_entry(name, t) for _, name, t in member_grid(dataset, cfg.ensemble.members)]


def score(cfg: Config, dataset: RealDataset, run: RunFolder, reference: Reference, *,
          device: str = "cpu") -> dict:
    """The trial's validation scores now: val_tstr, classifier_score and domain_fd (module docstring)."""
    from raygan.evaluation.curves import synthetic_set
    from raygan.evaluation.protocols import train_classifier
    from raygan.metrics.domain import embed
    from raygan.metrics.frechet import frechet_distance
    from raygan.metrics.quality import classifier_score

    x, y = synthetic_set(run, cfg, dataset, cfg.ensemble.members, seed=cfg.synth.seed)
    e = cfg.eval
    # The validation split stands in for the test argument too: the test split is not the trial's.
    fit = train_classifier(x, y, val=dataset.val, test=dataset.val, n_classes=len(dataset.classes),
                           arch=e.arch, epochs=e.epochs, lr=e.lr, batch_size=e.batch_size,
                           weight_decay=e.weight_decay, augment=e.augment, seed=e.seed, device=device)
    capped = [x[y == k][:reference.metric_samples] for k in range(len(dataset.classes))]
    scores = [classifier_score(reference.model, images, k) for k, images in enumerate(capped)]
    fake = embed(reference.model, torch.cat(capped)).double()
    return {METRIC: float(fit.val_acc), "val_tstr_last_epoch": float(fit.history[-1]["val_acc"]),
            "tstr_best_epoch": int(fit.best_val_epoch),
            "classifier_score": float(sum(scores) / len(scores)),
            "domain_fd": frechet_distance(fake, reference.val_features), "train_size": int(len(y))}


def _done_rungs(run: RunFolder) -> dict:
    """rungs.json: {"rungs": each finished rung's record, "resumes": the rung counts a restarted
    trial found done}."""
    path = run.path / RUNGS_FILE
    return json.loads(path.read_text()) if path.is_file() else {"rungs": [], "resumes": []}


def run_gan_trial(cfg: Config, dataset: RealDataset, run: RunFolder, reference: Reference, *,
                  on_rung: Optional[Callable[[dict], None]] = None, device: str = "cpu") -> list[dict]:
    """Train ``cfg``'s ensemble into ``run`` rung by rung, scoring after each; ``on_rung(record)``
    sees every rung's record ({"rung", "gan_steps", the scores, "best_val_tstr", "replayed"}). Rungs
    that ``run`` already holds (rungs.json) are replayed, not retrained. Returns every rung's record."""
    steps = rung_steps(cfg.train.steps, cfg.sweep.gan_rungs)
    held = _done_rungs(run)
    records, resumes = held["rungs"], held["resumes"]
    if [r["gan_steps"] for r in records] != steps[:len(records)]:
        raise ConfigError(f"trial folder {run.location} holds rungs at {[r['gan_steps'] for r in records]} "
                          f"GAN steps, not at {steps}; use a new sweep.name or delete the folder")
    if 0 < len(records) < len(steps):  # a restarted trial: say where it went on from
        resumes = [*resumes, len(records)]
        logger.info(f"trial {run.path.name}: {len(records)} of {len(steps)} rungs done before; resuming")
    best = -math.inf
    for i, gan_steps in enumerate(steps):
        if i < len(records):
            record = {**records[i], "replayed": True}
        else:
            train_to(cfg.replace(train={"steps": gan_steps}), dataset, run)
            record = {"rung": i + 1, "gan_steps": gan_steps,
                      **score(cfg, dataset, run, reference, device=device)}
            best = max(best, record[METRIC])
            record["best_val_tstr"] = best
            records.append(record)
            atomic_write_text(run.path / RUNGS_FILE, json.dumps({"rungs": records, "resumes": resumes},
                                                                indent=2))
            logger.info(f"trial {run.path.name}: rung {i + 1}/{len(steps)} at {gan_steps} GAN steps: "
                        f"val TSTR {record[METRIC]:.3f}, classifier score "
                        f"{record['classifier_score']:.3f}, domain FD {record['domain_fd']:.2f}")
            record = {**record, "replayed": False}
        best = max(best, record[METRIC])
        if on_rung is not None:
            on_rung(record)
    return records
