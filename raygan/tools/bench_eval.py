"""`raygan bench eval`: an evaluation's downstream classifiers one after another through
`train_classifier` against the same classifiers as one pack through `train_classifier_pack`
(raygan.classifiers.pack): the same sets, seeds, epochs and batch, in one process on one device with
the same torch threads, in alternating repeats; the median classifier-epochs per second of each arm
and their ratio (pack / one after another).

The classifier set is a config's evaluation (default configs/digits.yaml: 10 repeats x (TRTR + T =
1..5), 60 SimpleCNNs with eval.* settings, repeat r seeded eval.seed + r): TRTR trains on the real
training split, each T on a stand-in of the same size (the split plus noise drawn with seed T), as a
classifier's time does not depend on its pixels and the bench needs no trained run. Epochs default
to 2 (every epoch costs the same), the validation and test splits are scored after every epoch.
"""
from __future__ import annotations

import statistics
import time
from datetime import date

import torch

from raygan import seeds
from raygan.classifiers.fit import train_classifier
from raygan.classifiers.pack import PackMember, max_pack_size, solo_reason, train_classifier_pack
from raygan.config import ConfigError, load_config
from raygan.data import load_dataset
from raygan.evaluation.units import curve_sizes
from raygan.gan.train import resolve_device
from raygan.tools.bench_common import device_name
from raygan.tools.bench_pack import torch_threads

# Threads: torch's default (the machine's cores), which is what the pipeline's in-process evaluation
# trains its packs with; --threads 1 gives the one-core comparison.
DEFAULT_CONFIG, DEFAULT_EPOCHS, DEFAULT_THREADS = "configs/digits.yaml", 2, None
ARMS = ("one after another (`train_classifier`)", "one pack (`train_classifier_pack`)")


def classifier_set(cfg, dataset) -> list[PackMember]:
    """The evaluation's classifiers: R repeats of TRTR and of every T, each seeded as the evaluation
    seeds it, on sets of the training split's size."""
    real = dataset.train_split()
    sets = [real]
    for T in curve_sizes(cfg):
        noise = torch.randn(real[0].shape, generator=torch.Generator().manual_seed(T))
        sets.append(((real[0] + 0.1 * noise).clamp(-1, 1), real[1]))
    return [PackMember(seed=seeds.offset(cfg.eval.seed, r), train=s) for s in sets for r in range(cfg.eval.repeats)]


def _settings(cfg, dataset, epochs: int, device: torch.device) -> dict:
    e = cfg.eval
    return dict(val=dataset.val, test=dataset.test, n_classes=len(dataset.classes), arch=e.arch, epochs=epochs,
                lr=e.lr, batch_size=e.batch_size, weight_decay=e.weight_decay, augment=e.augment,
                device=str(device))


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of fn(): on a machine others load, the CPU time
    says what the work cost where the wall time also counts the waits."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def run_alone(members: list[PackMember], settings: dict) -> tuple[float, float]:
    return _timed(lambda: [train_classifier(*m.train, seed=m.seed, **settings) for m in members])


def run_packed(members: list[PackMember], settings: dict, shape: tuple, pack: int) -> tuple[float, float]:
    return _timed(lambda: [train_classifier_pack(members[i:i + pack], sample_shape=shape, **settings)
                           for i in range(0, len(members), pack)])


def bench_eval(args) -> str:
    device = resolve_device(args.device)
    config = args.config or DEFAULT_CONFIG
    cfg = load_config(config, [])
    if solo_reason(cfg.eval.arch):
        raise ConfigError(f"bench eval: {solo_reason(cfg.eval.arch)}")
    dataset = load_dataset(cfg.data)
    epochs = args.epochs or DEFAULT_EPOCHS
    members = classifier_set(cfg, dataset)
    if args.members:
        members = members[:args.members]
    shape = tuple(dataset.sample_shape)
    pack = min(len(members), max_pack_size(cfg.eval.arch, shape, cfg.eval.batch_size))
    settings = _settings(cfg, dataset, epochs, device)
    alone: list[tuple] = []
    packed: list[tuple] = []
    with torch_threads(args.threads or DEFAULT_THREADS) as threads:
        warm = dict(settings, epochs=1)  # one warm-up each
        run_alone(members[:2], warm)
        run_packed(members[:2], warm, shape, pack)
        work = len(members) * epochs
        arms = [(lambda: run_alone(members, settings), alone), (lambda: run_packed(members, settings, shape, pack),
                                                                packed)]
        for r in range(args.repeats):
            # Alternate which arm goes first so drift in machine load hits both alike.
            for fn, out in (arms if r % 2 == 0 else arms[::-1]):
                wall, cpu = fn()
                out.append((work / wall, work / cpu))
        where = device_name(device)
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    rates = lambda xs, i: ", ".join(f"{x[i]:.2f}" for x in xs)  # noqa: E731
    ratio, cpu_ratio = med(packed, 0) / med(alone, 0), med(packed, 1) / med(alone, 1)
    count = f" --members {args.members}" if args.members else ""
    return "\n".join([
        f"### eval ({date.today().isoformat()}, {where})",
        "",
        f"Command: `raygan bench eval --config {config}{count} --epochs {epochs} --repeats {args.repeats} "
        f"--threads {threads} --device {args.device}`",
        f"Setting: {len(members)} {cfg.eval.arch} classifiers of {config}'s evaluation ({cfg.eval.repeats} "
        f"repeats x (TRTR + T = {', '.join(map(str, curve_sizes(cfg)))})) on {dataset.name} "
        f"{'x'.join(map(str, shape))}, {len(members[0].train[1])} training samples each, batch "
        f"{cfg.eval.batch_size}, {epochs} epochs with the validation and test splits scored after each, "
        f"packs of {pack}; {args.repeats} alternating repeats, medians. Each arm's time is the wall "
        "time of its calls, model building included.",
        f"Threads and devices: both arms run one after the other in the same process on {device.type} "
        f"with the same {threads} torch thread{'s' if threads != 1 else ''} (torch.set_num_threads).",
        "",
        "| arm | classifier-epochs/s, wall (median) | all repeats | per CPU second of the process (median) "
        "| all repeats |",
        "|---|---|---|---|---|",
        *[f"| {name} | {med(xs, 0):.2f} | {rates(xs, 0)} | {med(xs, 1):.2f} | {rates(xs, 1)} |"
          for name, xs in zip(ARMS, (alone, packed))],
        "",
        f"Ratio pack / one after another: **{ratio:.2f}** in wall time, {cpu_ratio:.2f} in CPU time "
        "(target >= 3).",
        "",
    ])


__all__ = ["bench_eval", "classifier_set"]
