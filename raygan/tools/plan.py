"""`raygan plan`: what a run will cost before it is launched, from a short measured probe.

The probe trains one member with the real ``train_gan`` for a few steps on this machine's device, on
the config's real data (or random stand-in data of the real shape when the dataset is not here), and
times synthesis and a classifier step the same way. The rest is arithmetic (``make_plan``, pure):

- tasks = ceil(members / cluster.members_per_task) where members pack (per-class and conditional
  members; boosting: per step ceil(K / members_per_task), the steps in sequence; auto: what fit the
  probe's GPU, see raygan.cluster.packing), else one member per task;
- GPU-hours of work = tasks x steps x step time (K x T x steps x step time unpacked); a member of
  cluster.workers_per_member data-parallel workers asks that many times cluster.gpus_per_member and
  is planned at linear scaling (its time / workers, the same GPU-hours);
- worker groups: the CPU-only head and a GPU group from 0 to the most GPUs a wave keeps busy (what
  jobs/rayjob.yaml's maxReplicas and cluster.yaml's max_workers should allow);
- tasks at once: N GPUs x floor(1 / gpus_per_member) when tasks share a GPU, N / gpus_per_member
  when they take whole GPUs; waves = ceil(tasks / tasks at once) (boosting: T steps in sequence,
  each with the K classes in waves); wall time = waves x (task time + task start);
- billed GPU-hours = per wave, the GPUs busy x the wave's length (idle GPUs of a last, partial wave
  are released by the autoscaler); cost = billed GPU-hours x cluster.gpu_hour_cost.
Members that share a GPU are assumed to run at the probe's speed (small models leave a GPU mostly
idle) up to a GPU saturated by them (then each runs 1 / members-per-GPU as fast): both are shown; a
pack of P members likewise takes one member's time up to P times it.
Nothing is launched and Ray is not imported.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time
from typing import Optional

import torch

from raygan.cluster.packing import pack_fit, plan_pack_size  # imports no ray
from raygan.config import Config, ConfigError
from raygan.config.checks import why_not_packable
from raygan.data import is_points
from raygan.gan.models import CONDITIONAL

# Ray starts a fresh worker process for every GPU task (reference: about 7 s with `import torch` on a
# small machine); with the member's data arriving from the object store, count 10 s per task.
TASK_START_S = 10.0
# Shapes and official training-set sizes of the datasets raygan reads from torchvision files.
KNOWN = {"mnist": ((1, 28, 28), 60000), "fashion_mnist": ((1, 28, 28), 60000),
         "cifar10": ((3, 32, 32), 50000), "svhn": ((3, 32, 32), 73257)}


# --- the probe (measured) ------------------------------------------------------------------------
def _stand_in(cfg: Config) -> tuple[dict[str, int], tuple[int, ...]]:
    """Class sizes and sample shape of a dataset that is not on this machine (torchvision sets)."""
    from raygan.data.groupings import resolve_grouping

    shape, n_train = KNOWN[cfg.data.name]
    if cfg.data.image_size:
        shape = (shape[0], cfg.data.image_size, cfg.data.image_size)
    classes = resolve_grouping(list(range(10)), cfg.data.grouping, cfg.data.classes)
    per_label = n_train * (1 - cfg.data.val_fraction) / 10  # validation comes out of the train split
    sizes = {name: int(per_label * len(labels)) for name, labels in classes.items()}
    if cfg.data.train_per_class:
        sizes = {name: min(n, cfg.data.train_per_class) for name, n in sizes.items()}
    return sizes, shape


def _data(cfg: Config) -> tuple[dict[str, int], tuple[int, ...], Optional[torch.Tensor], str]:
    """(class sizes, sample shape, one class's real tensor or None, where the data came from)."""
    from raygan.data import load_dataset

    try:
        dataset = load_dataset(cfg.data)
    except (ConfigError, OSError) as err:
        if cfg.data.name not in KNOWN:
            raise ConfigError(f"raygan plan needs the dataset to measure its shape and size: {err}") from None
        sizes, shape = _stand_in(cfg)
        why = str(err).splitlines()[0][:100]
        return sizes, shape, None, f"random stand-in of {cfg.data.name}'s shape (not here: {why})"
    sizes = dataset.train_sizes()
    biggest = max(sizes, key=sizes.get)
    return sizes, dataset.sample_shape, dataset.train[biggest], f"real {dataset.name}, class {biggest}"


def probe(cfg: Config, steps: int = 50, device: Optional[str] = None) -> dict:
    """Time `steps` training steps of one member (after a short warm-up), synthesis and a classifier
    step on this machine; returns the measurements and what they were taken on."""
    from raygan.classifiers.networks import build_classifier
    from raygan.gan.train import resolve_device, train_gan
    from raygan.synthesis.records import synth_records

    if steps < 1:
        raise ConfigError(f"--probe-steps {steps}: probe at least 1 step")
    sizes, shape, real, source = _data(cfg)
    if cfg.train.batch_size > min(sizes.values()):
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is larger than the smallest class "
                          f"({min(sizes.values())}); set train.batch_size <= {min(sizes.values())}")
    dev = torch.device(device) if device else resolve_device(cfg.train.device)
    threads = torch.get_num_threads()
    member_threads = max(1, int(cfg.cluster.cpus_per_member)) if dev.type == "cpu" else None
    if member_threads:  # a member task uses cluster.cpus_per_member threads
        torch.set_num_threads(member_threads)
    conditional = cfg.gan.family in CONDITIONAL  # one model for all classes (labels go with the data)
    n = sum(sizes.values()) if conditional else max(sizes.values())
    gen = torch.Generator().manual_seed(0)
    data = real if real is not None and not conditional else torch.rand(n, *shape, generator=gen) * 2 - 1
    kwargs = {}
    if conditional:
        kwargs = {"labels": torch.randint(0, len(sizes), (len(data),), generator=gen),
                  "n_classes": len(sizes)}
    try:
        warm = max(2, steps // 10)
        train_gan(data, gan=cfg.gan, train=dataclasses.replace(cfg.train, steps=warm,
                                                                log_every=warm, recursive_rounds=0),
                  seed=0, device=dev, **kwargs)
        result = train_gan(data, gan=cfg.gan, train=dataclasses.replace(
            cfg.train, steps=steps, log_every=steps, recursive_rounds=0), seed=1, device=dev, **kwargs)
        step_s = result.seconds / steps
        fit = None  # members per pack on this GPU, for auto (a CPU says nothing about a GPU's fit)
        if dev.type == "cuda" and cfg.cluster.members_per_task is None and not why_not_packable(cfg):
            fit = pack_fit(cfg, data, dev, min(1.0, cfg.cluster.gpus_per_member or 1.0))

        # Synthesis runs in Ray Data tasks on CPUs: generation plus PNG encoding, per sample.
        torch.set_num_threads(1)
        G = result.generator.cpu()
        count = 256
        t0 = time.perf_counter()
        synth_records(G, count=count, seed=0, class_index=0, class_name="probe", member=0,
                      method=cfg.ensemble.method, start=0)
        sample_s = (time.perf_counter() - t0) / count

        # Evaluation trains classifiers in the job's driver, on its CPU (raygan.classifiers.fit); timed on one
        # thread (an upper bound for a many-core head), as more threads on a busy machine time noise.
        model = build_classifier(cfg.eval.arch, shape, len(sizes))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.eval.lr)
        x = torch.rand(cfg.eval.batch_size, *shape, generator=gen) * 2 - 1
        y = torch.randint(0, len(sizes), (cfg.eval.batch_size,), generator=gen)
        times = []
        for _ in range(12):
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        classifier_step_s = statistics.median(times[2:])  # after warm-up; robust to a busy machine
    finally:
        torch.set_num_threads(threads)
    return {"device": str(dev), "cpu_threads": member_threads,
            "steps": steps, "step_s": step_s, "sample_s": sample_s, "pack_fit": fit,
            "classifier_step_s": classifier_step_s, "data": source, "sample_shape": list(shape),
            "class_sizes": sizes, "family": cfg.gan.family, "batch_size": cfg.train.batch_size}


# --- the plan (arithmetic) -----------------------------------------------------------------------
def packing(gpus: int, gpus_per_member: float) -> dict:
    """How many members run at once on `gpus` GPUs when each asks for `gpus_per_member`."""
    if gpus < 1:
        raise ConfigError(f"--gpus {gpus}: plan for at least one GPU")
    if gpus_per_member <= 0:
        raise ConfigError("cluster.gpus_per_member=0 trains members on CPUs; raygan plan plans GPU runs: "
                          "set cluster.gpus_per_member to 1 (or 0.5, 0.25 to share a GPU)")
    if gpus_per_member < 1:
        per_gpu = int(math.floor(1 / gpus_per_member + 1e-9))  # Ray packs fractions into one GPU
        return {"per_gpu": per_gpu, "gpus_per_member": gpus_per_member, "at_once": gpus * per_gpu}
    if gpus_per_member != int(gpus_per_member):
        raise ConfigError(f"cluster.gpus_per_member={gpus_per_member:g}: above 1 it must be a whole "
                          "number of GPUs")
    at_once = gpus // int(gpus_per_member)
    if at_once < 1:
        raise ConfigError(f"--gpus {gpus} is fewer than one member asks for "
                          f"(cluster.gpus_per_member={gpus_per_member:g})")
    return {"per_gpu": 1, "gpus_per_member": gpus_per_member, "at_once": at_once}


def waves(tasks: int, at_once: int) -> list[int]:
    """Members per wave: full waves of `at_once`, then the rest."""
    return [min(at_once, tasks - start) for start in range(0, tasks, at_once)]


def make_plan(cfg: Config, measured: dict, gpus: int, gpu_hour_cost: Optional[float] = None,
              cpus: Optional[int] = None) -> dict:
    """GPU-hours, waves, wall time, synthesis and evaluation estimates and cost (no measuring)."""
    workers = cfg.cluster.workers_per_member  # a data-parallel member's group asks workers x gpus_per_member
    pack = packing(gpus, workers * (1.0 if cfg.cluster.gpus_per_member is None else cfg.cluster.gpus_per_member))
    sizes = measured["class_sizes"]
    K, T = len(sizes), cfg.ensemble.members
    conditional = cfg.gan.family in CONDITIONAL
    members = T if conditional else K * T
    boosting = cfg.ensemble.method != "independent" and not conditional
    # Boosting packs the K members of one step (the classes step in lockstep), never across steps.
    per_task, pack_note = plan_pack_size(cfg, K if boosting else members, pack["at_once"],
                                         measured.get("pack_fit"))
    tasks = T * math.ceil(K / per_task) if boosting else math.ceil(members / per_task)
    steps = cfg.train.steps * (1 + cfg.train.recursive_rounds)
    # a pack's time too, on a GPU its members leave idle; a data-parallel member's at linear scaling
    member_s = steps * measured["step_s"] / workers
    if boosting:
        # Step t of every class needs step t - 1: each step's packs run together, in waves.
        layout = [n for _ in range(T) for n in waves(math.ceil(K / per_task), pack["at_once"])]
    else:
        layout = waves(tasks, pack["at_once"])
    share = pack["per_gpu"]
    wave_s = member_s + TASK_START_S
    wall_s = len(layout) * wave_s
    wall_saturated_s = sum(min(n, share) * per_task * member_s + TASK_START_S for n in layout) \
        if share > 1 or per_task > 1 else wall_s

    def busy_gpus(n: int) -> float:
        return math.ceil(n / share) if share > 1 else n * pack["gpus_per_member"]

    billed_h = sum(busy_gpus(n) for n in layout) * wave_s / 3600
    from raygan.ensemble.counts import synthetic_count  # N_g's one rule

    samples = sum(synthetic_count(cfg, n) for n in sizes.values())
    cpus = cpus or 4 * gpus
    synth_cpu_s = samples * measured["sample_s"]
    n_train = sum(sizes.values())
    curve = len(cfg.eval.ensemble_sizes or range(cfg.eval.max_ensemble or T))
    runs_per_repeat = 1 + curve + (len(cfg.eval.mixing_ratios) if cfg.eval.mixing else 0)
    classifier_steps = cfg.eval.epochs * math.ceil(n_train / cfg.eval.batch_size)
    eval_s = cfg.eval.repeats * runs_per_repeat * classifier_steps * measured["classifier_step_s"]
    if is_points(cfg.data.name):
        eval_s = 0.0  # its evaluation is Table 1 (raygan grid2d), not a downstream classifier
    cost = gpu_hour_cost if gpu_hour_cost is not None else cfg.cluster.gpu_hour_cost
    total_s = wall_s + synth_cpu_s / cpus + eval_s
    return {
        "gpus": gpus, "gpus_per_member": pack["gpus_per_member"], "members_per_gpu": share,
        "classes": K, "members_per_class": T, "members": members, "members_per_task": per_task,
        "packing": pack_note, "tasks": tasks, "conditional": conditional,
        "method": cfg.ensemble.method, "steps_per_member": steps, "step_s": measured["step_s"],
        "member_s": member_s, "task_start_s": TASK_START_S,
        "gpu_hours": tasks * member_s * workers / 3600, "at_once": pack["at_once"], "waves": len(layout),
        "workers_per_member": workers, "gpu_group_max": max(math.ceil(busy_gpus(n)) for n in layout),
        "wave_sizes": layout, "train_wall_s": wall_s, "train_wall_saturated_s": wall_saturated_s,
        "billed_gpu_hours": billed_h, "synthetic_samples": samples, "synth_cpu_s": synth_cpu_s,
        "synth_cpus": cpus, "synth_wall_s": synth_cpu_s / cpus, "classifier_runs":
            cfg.eval.repeats * runs_per_repeat, "classifier_steps_per_run": classifier_steps,
        "eval_s": eval_s, "total_wall_s": total_s, "gpu_hour_cost": cost,
        "cost_usd": None if cost is None else billed_h * cost, "probe": measured}


def _dur(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: dict, config_name: str = "") -> str:
    p = plan["probe"]
    share = plan["members_per_gpu"]
    grid = f"{plan['members_per_class']} conditional members (each for all classes)" \
        if plan["conditional"] else f"{plan['classes']} classes x {plan['members_per_class']} members"
    per_task = plan["members_per_task"]
    wall = _dur(plan["train_wall_s"]) if share == 1 and per_task == 1 else \
        f"{_dur(plan['train_wall_s'])} (up to {_dur(plan['train_wall_saturated_s'])} if " \
        f"{'sharing' if per_task == 1 else 'packing'} saturates the GPU)"
    unit = "member" if per_task == 1 else "pack"
    rows = [
        ("members (tasks)", f"{plan['members']} ({grid}, {plan['method']}) in "
                            f"{plan['tasks']} tasks"),
        ("members per task", f"{per_task} ({plan['packing']})"),
        ("steps per member", f"{plan['steps_per_member']:,}"),
        ("step time (probe)", f"{p['step_s'] * 1000:.2f} ms on {p['device']}"),
        (f"{unit} time", f"{_dur(plan['member_s'])} (+ {plan['task_start_s']:.0f} s task start"
         + (f"; {plan['workers_per_member']} data-parallel workers, if they scale linearly)"
            if plan["workers_per_member"] > 1 else ")")
         + ("" if per_task == 1 else f"; up to {_dur(per_task * plan['member_s'])} if its "
                                     f"{per_task} members saturate the GPU")),
        ("GPU-hours of training", f"{plan['gpu_hours']:.3f} ({unit} tasks x steps x step time)"),
        (f"{unit}s at once", f"{plan['at_once']} ({share} per GPU x {plan['gpus']} GPUs)"
         if share > 1 else f"{plan['at_once']} ({plan['gpus_per_member']:g} GPU each, "
                           f"{plan['gpus']} GPUs)"),
        ("waves", f"{plan['waves']} (sizes {_waves_text(plan['wave_sizes'])})"),
        ("training wall time", wall),
        ("billed GPU-hours", f"{plan['billed_gpu_hours']:.3f} (GPUs busy x wave time)"),
        ("worker groups", f"head: CPUs only (driver, synthesis, evaluation); gpu: minReplicas 0, "
                          f"maxReplicas {plan['gpu_group_max']} of 1 GPU (jobs/rayjob.yaml; cluster.yaml "
                          "max_workers)"),
        ("synthesis", f"{plan['synthetic_samples']:,} samples x {p['sample_s'] * 1000:.2f} ms = "
                      f"{_dur(plan['synth_cpu_s'])} CPU; {_dur(plan['synth_wall_s'])} on "
                      f"{plan['synth_cpus']} CPUs"),
        ("evaluation (one process)", f"{plan['classifier_runs']} classifier runs x "
                                    f"{plan['classifier_steps_per_run']:,} steps x "
                                    f"{p['classifier_step_s'] * 1000:.2f} ms (1 thread) = "
                                    f"{_dur(plan['eval_s'])}"),
        ("total wall time", f"{_dur(plan['total_wall_s'])} (nodes' boot not included)"),
        ("cost", f"${plan['cost_usd']:.2f} at ${plan['gpu_hour_cost']:g} per GPU-hour"
         if plan["cost_usd"] is not None else "give --gpu-hour-cost USD (or cluster.gpu_hour_cost)"),
    ]
    width = max(len(k) for k, _ in rows)
    head = [f"raygan plan{' for ' + config_name if config_name else ''}: {plan['gpus']} GPUs, "
            f"{plan['gpus_per_member']:g} GPU per {unit} (cluster.gpus_per_member; null plans 1); "
            "nothing launched",
            f"probe: {p['steps']} steps of {p['family']} at batch {p['batch_size']} on {p['device']}"
            f"{_threads(p['cpu_threads'])}; data: "
            f"{p['data']}; sample shape {tuple(p['sample_shape'])}"]
    if not p["device"].startswith("cuda"):
        head.append("note: the probe ran on a CPU; on a GPU the step time (and so every training "
                    "figure) is different: run raygan plan on a GPU machine for GPU numbers")
    return "\n".join(head + [""] + [f"  {k.ljust(width)}  {v}" for k, v in rows])


def _waves_text(sizes: list[int]) -> str:
    if len(set(sizes)) == 1:
        return f"{len(sizes)} x {sizes[0]}"
    return f"{len(sizes) - 1} x {sizes[0]} + {sizes[-1]}" if len(set(sizes[:-1])) == 1 \
        else ", ".join(map(str, sizes))


def _threads(n: Optional[int]) -> str:
    return f" ({n} thread{'s' if n != 1 else ''})" if n else ""
