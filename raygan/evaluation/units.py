"""The evaluation as units of work: the list of jobs, the function that runs one, the one that assembles.

``evaluation_jobs`` lists them, ``run_unit`` runs one and returns what it computed (plain data, and the
reference classifier's model), ``assemble`` turns every job's result into evaluate_run's result (the
format of eval/evaluation.json). raygan.evaluation.curves.evaluate_run runs the jobs in a loop in this
process; raygan.cluster.evaluation runs each as its own Ray task. A job is a pure function of the
config, the dataset, the measured set (raygan.evaluation.measured), the run's generators and the
results of the jobs it names in ``needs``, seeded from raygan.seeds, so both give the same numbers.

The jobs, each one classifier training or one set's quality metrics (issue 12: about a hundred
classifiers at the papers' protocol):

- ``trtr`` r: classifier r on the real training split; r = 0 is the reference: it keeps its model
  (the filter of eval.filter_rho) and scores TRTS on the shipped set;
- ``tstr`` T r: classifier r on the size-T set (shards or regenerated, raygan.evaluation.measured);
  on-the-fly generation draws fresh samples every epoch instead (always regenerated);
- ``mixed`` i r: real + ratio_i x the shipped set (eval.mixing); ``pca_tstr`` r: seed 003's baseline;
  ``recursive`` round r: a recursive-training round's generators;
- ``quality_setup``: the feature extractors and reference features, once; ``quality`` label: one
  set's metrics ("real (val)", "T=1", ..., "pca").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional

import numpy as np
import torch

from raygan import seeds
from raygan.classifiers.fit import ClassifierRun, fit_classifier
from raygan.classifiers.pack import PackMember, solo_reason
from raygan.config import Config
from raygan.data import RealDataset
from raygan.evaluation import generated
from raygan.evaluation.measured import REGENERATED, MeasuredSet, set_sizes, shards_else_regenerated
from raygan.evaluation.protocols import FilteredEpochs, ProtocolResult, filter_by_classifier, trts
from raygan.runs import RunFolder

logger = logging.getLogger(__name__)

REFERENCE = ("trtr", 0, 0, "")
CLASSIFIER_KINDS = ("trtr", "tstr", "mixed", "pca_tstr", "recursive")
QUALITY_SETUP = ("quality_setup", 0, 0, "")


@dataclass(frozen=True)
class Job:
    """One unit of work: ``index`` is T (tstr, quality), the mixing ratio's position or the round."""
    kind: str
    index: int = 0
    repeat: int = 0
    label: str = ""
    needs: tuple = ()

    @property
    def key(self) -> tuple:
        return (self.kind, self.index, self.repeat, self.label)


def t_max(cfg: Config) -> int:
    return cfg.eval.max_ensemble or cfg.ensemble.members


def curve_sizes(cfg: Config) -> list[int]:
    """The ensemble sizes T the TSTR curve measures: eval.ensemble_sizes, or every T = 1..T_max."""
    return sorted(cfg.eval.ensemble_sizes) or list(range(1, t_max(cfg) + 1))


def evaluation_jobs(cfg: Config, dataset: RealDataset, *, mixing: bool = False) -> list[Job]:
    """Every unit of work of evaluate_run, each after the jobs it needs."""
    R = range(cfg.eval.repeats)
    jobs = [Job("trtr", repeat=r) for r in R]
    tstr_needs = (REFERENCE,) if cfg.eval.filter_rho is not None else ()
    jobs += [Job("tstr", index=T, repeat=r, needs=tstr_needs) for T in curve_sizes(cfg) for r in R]
    if mixing:
        jobs += [Job("mixed", index=i, repeat=r) for i in range(len(cfg.eval.mixing_ratios)) for r in R]
    if cfg.train.recursive_rounds:
        jobs += [Job("recursive", index=i, repeat=r) for i in range(cfg.train.recursive_rounds + 1)
                 for r in R]
    if cfg.eval.metrics:
        if "pca" in cfg.eval.metrics:
            jobs += [Job("pca_tstr", repeat=r) for r in R]
        from raygan.metrics.quality import REAL_SET, real_baseline_set

        jobs.append(Job("quality_setup"))
        labels = ([REAL_SET] if real_baseline_set(cfg, dataset) is not None else []) + \
            [f"T={T}" for T in curve_sizes(cfg)] + (["pca"] if "pca" in cfg.eval.metrics else [])
        jobs += [Job("quality", index=0, label=label, needs=(QUALITY_SETUP,)) for label in labels]
    return jobs


class EvalInputs:
    """What the jobs read, with the set they built last (and the shipped set) kept for the next job of
    the same process."""

    def __init__(self, cfg: Config, dataset: RealDataset, measured: MeasuredSet, run: RunFolder):
        self.cfg, self.dataset, self.measured, self.run = cfg, dataset, measured, run
        self._sets: dict[tuple, Any] = {}
        self._epoch_data: dict[tuple, Any] = {}

    def synthetic(self, T: int, *, quality: bool = False) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
        """The size-T set (the classifiers' N_g per class, or the quality metrics' size) and its source."""
        key = (T, quality)
        if key not in self._sets:
            # Jobs come grouped by set: keep the shipped set and the latest one, not every T's in memory.
            shipped = (self.cfg.ensemble.members, False)
            self._sets = {k: v for k, v in self._sets.items() if k == shipped}
            self._sets[key] = shards_else_regenerated(self.run, self.cfg, self.dataset, self.measured, T,
                                                      quality=quality)
        return self._sets[key]

    def epoch_data(self, T: int, reference: Optional[dict]):
        """The on-the-fly epoch data of size T (filtered by the reference classifier when given), one
        object for every repeat: the repeats draw the same sets, so a pack makes each epoch's once."""
        key = (T, reference is not None)
        if key not in self._epoch_data:
            make = generated.on_the_fly(self.run, self.cfg, self.dataset, T, seed=self.cfg.synth.seed)
            if reference is not None:  # seed 001's filter on every epoch's fresh set
                make = FilteredEpochs(make, reference["model"], self.cfg.eval.filter_rho)
            self._epoch_data[key] = make
        return self._epoch_data[key]


def _classifier(kind: str, run: ClassifierRun, **extra) -> dict:
    return {"kind": kind, "run": run.to_dict(), **extra}


@dataclass
class ClassifierTask:
    """A classifier job made ready to fit (raygan.evaluation.packs fits several as one pack): its
    seed and data, the key of its set's size (classifiers of one key train on sets of one size in
    every epoch) and how its result is made from its fit."""
    member: PackMember
    size: Hashable
    finish: Callable[[ClassifierRun], dict]


def _fixed(member_seed: int, train, finish) -> ClassifierTask:
    return ClassifierTask(PackMember(seed=member_seed, train=train), ("fixed", len(train[1])), finish)


def _tstr(inputs: EvalInputs, job: Job, seed: int, reference: Optional[dict]) -> ClassifierTask:
    cfg, T = inputs.cfg, job.index
    if cfg.eval.on_the_fly:
        make = inputs.epoch_data(T, reference)
        if reference is None:
            return ClassifierTask(PackMember(seed=seed, epoch_data=make), ("fresh", sum(make.sizes)),
                                  lambda fit: _classifier("tstr", fit, on_the_fly=True, source=REGENERATED))
        # the filter keeps another number of samples every epoch: only the repeats of a T share it
        return ClassifierTask(PackMember(seed=seed, epoch_data=make), ("filtered", T),
                              lambda fit: _classifier("tstr", fit, on_the_fly=True, source=REGENERATED,
                                                      kept_fraction=make.kept_fraction))
    train, source = inputs.synthetic(T)
    extra = {}
    if reference is not None:
        keep = filter_by_classifier(reference["model"], *train, rho=cfg.eval.filter_rho)
        extra["kept_fraction"] = float(keep.float().mean())
        train = (train[0][keep], train[1][keep])
    return _fixed(seed, train, lambda fit: _classifier("tstr", fit, source=source, **extra))


def _reference(inputs: EvalInputs, fit: ClassifierRun) -> dict:
    shipped, source = inputs.synthetic(inputs.cfg.ensemble.members)
    return _classifier("trtr", fit, model=fit.model, trts=trts(fit.model, shipped), trts_source=source)


def classifier_task(inputs: EvalInputs, job: Job, *needed) -> ClassifierTask:
    """A classifier job (kind in CLASSIFIER_KINDS) ready to fit; ``needed`` as for run_unit."""
    cfg, dataset = inputs.cfg, inputs.dataset
    seed = seeds.offset(cfg.eval.seed, job.repeat)
    if job.kind == "trtr":
        finish = (lambda fit: _reference(inputs, fit)) if job.key == REFERENCE else \
            (lambda fit: _classifier("trtr", fit))
        return _fixed(seed, dataset.train_split(), finish)
    if job.kind == "tstr":
        return _tstr(inputs, job, seed, needed[0] if needed else None)
    if job.kind == "mixed":
        from raygan.evaluation.protocols import mix_real_synthetic

        shipped, source = inputs.synthetic(cfg.ensemble.members)
        ratio = float(cfg.eval.mixing_ratios[job.index])
        train = mix_real_synthetic(dataset.train_split(), shipped, ratio, seed=cfg.synth.seed)
        return _fixed(seed, train, lambda fit: _classifier("mixed", fit, source=source))
    if job.kind == "pca_tstr":
        from raygan.evaluation.pca import pca_synthetic_set

        # N_g per class as the GANs' TSTR sets have it (ensemble.samples_ratio included)
        train = pca_synthetic_set(dataset, counts=set_sizes(cfg, dataset), seed=cfg.synth.seed)
        return _fixed(seed, train, lambda fit: _classifier("pca_tstr", fit))
    if job.kind == "recursive":
        train, sizes = generated.recursive_set(inputs.run, cfg, dataset, job.index)
        return _fixed(seed, train, lambda fit: _classifier("recursive", fit, sizes=sizes, source=REGENERATED))
    raise ValueError(f"{job.kind!r} is not a classifier job")


def fit_alone(inputs: EvalInputs, task: ClassifierTask) -> ClassifierRun:
    """The task's classifier trained by itself (fit_classifier)."""
    m = inputs.dataset
    if task.member.epoch_data is not None:  # on the fly: the fixed set only gives the sample shape
        empty = (torch.empty(0, *m.sample_shape), torch.empty(0, dtype=torch.int64))
        return fit_classifier(inputs.cfg, m, empty, task.member.seed, epoch_data=task.member.epoch_data)
    return fit_classifier(inputs.cfg, m, task.member.train, task.member.seed)


def _quality(inputs: EvalInputs, job: Job, context) -> dict:
    from raygan.gan.train import resolve_device
    from raygan.metrics.quality import REAL_SET, pca_set, real_baseline_set, score_set

    cfg, dataset, label = inputs.cfg, inputs.dataset, job.label
    context = context.on(str(resolve_device(cfg.train.device)))
    extra = {}
    if label == REAL_SET:
        images, source = real_baseline_set(cfg, dataset), "real"
    elif label == "pca":
        (images, extra["pca"]), source = pca_set(cfg, dataset), "pca"
    else:
        (x, y), source = inputs.synthetic(int(label.removeprefix("T=")), quality=True)
        images = {name: x[y == k] for k, name in enumerate(dataset.classes)}
    return {"kind": "quality", "scores": {**score_set(cfg, dataset, context, label, images),
                                          "source": source}, **extra}


def run_unit(inputs: EvalInputs, job: Job, *needed) -> dict:
    """One unit's result; ``needed`` are the results of the jobs in job.needs, in that order."""
    cfg, dataset = inputs.cfg, inputs.dataset
    if job.kind in CLASSIFIER_KINDS:
        task = classifier_task(inputs, job, *needed)
        return task.finish(fit_alone(inputs, task))
    if job.kind == "quality_setup":
        from raygan.gan.train import resolve_device
        from raygan.metrics.quality import QualityContext

        # A cache in a URI run folder would be written by whichever worker made it: none there.
        run_dir = inputs.run.path if inputs.run.uri is None else None
        context = QualityContext(cfg, dataset, run_dir=run_dir, device=str(resolve_device(cfg.train.device)))
        return {"kind": "quality_setup", "context": context.on("cpu")}
    if job.kind == "quality":
        return _quality(inputs, job, needed[0]["context"])
    raise ValueError(f"unknown evaluation job {job.kind!r}")


def _summary(protocol: str, results: list[dict], **extra) -> dict:
    runs = [ClassifierRun(**r["run"]) for r in results]
    summary = ProtocolResult(protocol, runs, dict(extra)).summary()
    summary["histories"] = [[h["test_acc"] for h in r.history] for r in runs]
    summary["confusion"] = runs[0].confusion
    return summary


def _group(jobs: list[Job], results: dict, kind: str, index: int = 0) -> list[dict]:
    return [results[j.key] for j in jobs if j.kind == kind and j.index == index]


def _log(name: str, s: dict) -> None:
    logger.info(f"{name}: test {s['test_acc_mean']:.3f} ± {s['test_acc_std']:.3f}"
                + (f" ({s['source']})" if s.get("source") else ""))


def tstr_rows(cfg: Config, jobs: list[Job], results: dict) -> list[dict]:
    """The TSTR ensemble-size curve: a row per T (mean +- std over the repeats, histories, source)."""
    rows = []
    for T in curve_sizes(cfg):
        group = _group(jobs, results, "tstr", T)
        extra = {"T": T, "method": cfg.ensemble.method}
        if cfg.eval.on_the_fly:
            extra["on_the_fly"] = True
        if "kept_fraction" in group[0]:
            extra["kept_fraction"] = group[0]["kept_fraction"]
        row = _summary("TSTR", group, **extra, source=group[0]["source"])
        logger.info(f"TSTR T={T}: test {row['test_acc_mean']:.3f} ± {row['test_acc_std']:.3f} (best-test-epoch "
                    f"{row['best_test_acc_mean']:.3f}; {row['source']})")
        rows.append(row)
    return rows


def packing_summary(cfg: Config, jobs: list[Job], results: dict) -> dict:
    """What eval/evaluation.json says of the packing: classifiers, how many trained in a pack, the
    largest pack, and why the architecture trains alone where it does."""
    packs = [results[j.key].get("pack", 1) for j in jobs if j.kind in CLASSIFIER_KINDS]
    return {"classifiers": len(packs), "packed": sum(p > 1 for p in packs),
            "largest_pack": max(packs, default=0), "solo_reason": solo_reason(cfg.eval.arch)}


def assemble(cfg: Config, dataset: RealDataset, jobs: list[Job], results: dict, *,
             mixing: bool = False) -> dict:
    """evaluate_run's result from every job's result {job.key: result}."""
    trtr = _summary("TRTR", _group(jobs, results, "trtr"))
    reference = results[REFERENCE]
    _log("TRTR (real training split)", trtr)
    result = {"dataset": dataset.name, "classes": dataset.classes, "method": cfg.ensemble.method,
              "classifier": cfg.eval.arch, "epochs": cfg.eval.epochs, "repeats": cfg.eval.repeats,
              "trtr": trtr,
              "tstr_curve": tstr_rows(cfg, jobs, results),
              "trts": reference["trts"], "trts_source": reference["trts_source"],
              "classifier_packs": packing_summary(cfg, jobs, results)}
    logger.info(f"TRTS (real-trained classifier on synthetic samples): {result['trts']:.3f} "
                f"({result['trts_source']})")
    if mixing:
        result["mixing"] = []
        for i, ratio in enumerate(cfg.eval.mixing_ratios):
            group = _group(jobs, results, "mixed", i)
            row = _summary("mixed", group, ratio=float(ratio), source=group[0]["source"])
            row.pop("histories"), row.pop("confusion")
            _log(f"mixed ratio {ratio}", row)
            result["mixing"].append(row)
    if cfg.train.recursive_rounds:
        result["recursive"] = [_recursive_row(jobs, results, r) for r in range(cfg.train.recursive_rounds + 1)]
    if cfg.eval.metrics:
        if "pca" in cfg.eval.metrics:
            pca = _summary("TSTR", _group(jobs, results, "pca_tstr"), generator="pca")
            pca.pop("histories"), pca.pop("confusion")
            _log("TSTR PCA baseline", pca)
            result["pca_tstr"] = pca
        result["quality"] = _quality_result(cfg, dataset, jobs, results)
    return result


def _recursive_row(jobs: list[Job], results: dict, r: int) -> dict:
    group = _group(jobs, results, "recursive", r)
    row = _summary("TSTR", group, round=r)
    row.pop("histories"), row.pop("confusion")
    known = [v for v in group[0]["sizes"] if v is not None]
    row.update({"round": r, "train_size_mean": float(np.mean(known)) if known else None,
                "source": REGENERATED})
    size = "" if row["train_size_mean"] is None else \
        f" (GANs trained on {row['train_size_mean']:.0f} images per class on average)"
    logger.info(f"TSTR recursive round {r}{size}: test {row['test_acc_mean']:.3f} ± {row['test_acc_std']:.3f}")
    return row


def _quality_result(cfg: Config, dataset: RealDataset, jobs: list[Job], results: dict) -> dict:
    from raygan.metrics.quality import quality_header

    quality = quality_header(cfg, dataset)
    for job in jobs:
        if job.kind == "quality":
            quality["sets"][job.label] = results[job.key]["scores"]
            if "pca" in results[job.key]:
                quality["pca"] = results[job.key]["pca"]
    return quality


__all__ = ["Job", "EvalInputs", "evaluation_jobs", "run_unit", "assemble", "packing_summary", "tstr_rows", "t_max"]
