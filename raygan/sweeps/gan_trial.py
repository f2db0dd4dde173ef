"""One trial of a GAN search (``sweep.target: gan``) without Ray.

The space it draws from (``sweep.gan_space``: SPACE_KEYS, SAMPLED, ``check_gan_space``, ``apply_point``)
is pure config logic, checked when the config loads: raygan.config.gan_space. The search around the
trials: raygan.sweeps.gan (without Ray) and raygan.cluster.sweep_gan (its Tune wiring).

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
import json
import logging
import math
from typing import Callable, Optional

import torch

from raygan.config import Config, ConfigError
from raygan.data import RealDataset
from raygan.runs import RunFolder, atomic_write_text

logger = logging.getLogger(__name__)

RUNGS_FILE = "rungs.json"
METRIC = "val_tstr"


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
    from raygan.ensemble.members import check_classes, member_grid, record_trained
    from raygan.ensemble.training import class_unit, conditional_unit, train_units
    from raygan.gan.models import CONDITIONAL

    run.check_compatible(cfg)
    run.write_config(cfg)  # marks members trained to fewer steps as extending
    todo = [(k, name, t) for k, name, t in member_grid(dataset, cfg.ensemble.members)
            if run.member_entry(name, t) is None]
    if cfg.gan.family in CONDITIONAL:
        members = sorted({t for _, _, t in todo})
        if members:
            data, labels = dataset.train_split()
            units = [conditional_unit(cfg, run, data, labels, dataset.classes, member=t) for t in members]
            record_trained(run, [e for made in train_units(units, cfg, run, pack=True) for e in made])
    elif todo:
        units = [class_unit(cfg, run, dataset.train[name], class_name=name, class_index=k, member=t)
                 for k, name, t in todo]
        record_trained(run, [e for made in train_units(units, cfg, run, pack=True) for e in made])
    check_classes(run, dataset.classes, cfg)
    return [run.member_entry(name, t) for _, name, t in member_grid(dataset, cfg.ensemble.members)]


def score(cfg: Config, dataset: RealDataset, run: RunFolder, reference: Reference, *,
          device: str = "cpu") -> dict:
    """The trial's validation scores now: val_tstr, classifier_score and domain_fd (module docstring)."""
    from raygan.classifiers.fit import train_classifier
    from raygan.evaluation.generated import synthetic_set
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
