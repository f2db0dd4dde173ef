"""`raygan bench gpu`: every GPU check of raygan in one command and one markdown table.

(a) the pack benchmark (raygan.tools.bench_pack) for DCGAN-32 (width 64) at batch 64, P = 1, 4, 20;
(b) the paper-scale timing: seed 000's CIFAR-II EnsGAN-10, 20 members of DCGAN-32 x 50K steps, as one
pack of 20, projected from a short measured run beside seed 000's 70-75 min per member and beside
one member alone through train_gan; (c) a smoke run of every GAN family through train_gan and
generate; (d) a pack of every family for a few steps; (e) the speed levers (raygan.gan.levers) each
against the plain fp32 pack of 20, and the helpful ones together; (f) bf16's fidelity to fp32; then (a)
again for the sweep's other P while the time budget lasts. A failing check is a FAIL row, not a crash of the command.

It needs only PyTorch (with numpy and scikit-learn): neither Ray nor MLflow is imported on its path.
``--quick`` runs the same checks at tiny sizes (with --device cpu, in well under a minute).
"""
from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import torch

from raygan.config import ConfigError, GANConfig
from raygan.gan.levers import check_levers
from raygan.gan.train import resolve_device, train_gan
from raygan.tools import bench_pack as bp
from raygan.tools.bench_common import PAPER_DCGAN_MINUTES, PAPER_DCGAN_STEPS, device_name

log = logging.getLogger(__name__)

PAPER_MEMBERS = 20          # seed 000's CIFAR-II EnsGAN-10: 2 classes x 10 members
PAPER_TARGET_MINUTES = 3.0  # all 20 members' 50K steps as one pack on one GPU
SAMPLES = 16
# (row name, family, GANConfig overrides): every family, DCGAN with both generator norms.
FAMILIES = (("mlp2d", "mlp2d", {}), ("dcgan (batch norm)", "dcgan", {}),
            ("dcgan (layer norm)", "dcgan", {"g_norm": "layer"}), ("ccgan", "ccgan", {}),
            ("pggan", "pggan", {}), ("fc", "fc", {}))


@dataclass(frozen=True)
class Plan:
    image: int = 32
    width: int = 64
    z_dim: int = 100
    batch: int = 64
    n_data: int = 5_000           # images of pack member 0 (random stand-ins; later members fewer)
    pack_members: tuple = (1, 4, 20)
    sweep_members: tuple = (2, 8, 16, 32, 64)
    pack_steps: int = 200
    pack_repeats: int = 3
    paper_warm: int = 50
    paper_steps: int = 500
    class_size: int = 21_250      # a CIFAR-II class: 25,000 training images less 15% validation
    smoke_width: int = 16
    smoke_steps: int = 40
    family_pack_members: int = 3
    family_pack_steps: int = 20
    budget_s: float = 420.0       # the sweep's extra P run only while the whole command fits this
    lever_members: int = 20       # (e) the speed levers on seed 000's pack of 20
    lever_steps: int = 100
    lever_warm: int = 10
    lever_repeats: int = 3
    fidelity_members: int = 4     # (f) bf16 against fp32, the same seeds
    fidelity_steps: int = 200


FULL = Plan()
QUICK = Plan(image=8, width=8, z_dim=16, batch=8, n_data=32, pack_members=(1, 2, 4), sweep_members=(),
             pack_steps=4, pack_repeats=1, paper_warm=2, paper_steps=4, class_size=40, smoke_width=4,
             smoke_steps=6, family_pack_members=2, family_pack_steps=3, budget_s=40.0, lever_members=2,
             lever_steps=4, lever_warm=2, lever_repeats=1, fidelity_members=2, fidelity_steps=20)


def _cell(text: str) -> str:
    return " ".join(str(text).replace("|", "\\|").split())[:300]


def _checked(name: str, setting: str, fn) -> tuple:
    """One row (check, setting, result, status); an exception becomes a FAIL row."""
    try:
        result, status = fn()
    except Exception as err:  # noqa: BLE001 - a failed check is reported in the table, not raised
        log.warning("bench gpu: %s failed", name, exc_info=True)
        return name, setting, f"{type(err).__name__}: {err}", "FAIL"
    return name, setting, result, status


def _family_setting(family: str, overrides: dict, plan: Plan) -> bp.Setting:
    s = bp.make_setting(family, plan.image, width=plan.smoke_width, z_dim=plan.z_dim, batch=plan.batch,
                        channels=3, n_data=4 * plan.batch)
    return replace(s, gan=replace(s.gan, **overrides))


def _sampler(G, member: bp.Member):
    if member.n_classes is None:
        return G
    from raygan.gan.models import ConditionedGenerator
    return ConditionedGenerator(G, 0)


def _verify(result, member: bp.Member, setting: bp.Setting, steps: int, device) -> str:
    """Finite losses of every step and SAMPLES finite samples of the right shape, or an error."""
    from raygan.synthesis.generate import generate

    if isinstance(result, Exception):
        raise result
    losses = np.asarray(result.losses)
    if losses.shape != (steps, 2) or not np.isfinite(losses).all():
        raise AssertionError(f"losses of shape {losses.shape}, finite: {bool(np.isfinite(losses).all())}")
    x = generate(_sampler(result.generator, member), SAMPLES, seed=0, device=device)
    if tuple(x.shape) != (SAMPLES, *setting.shape) or not torch.isfinite(x).all():
        raise AssertionError(f"samples of shape {tuple(x.shape)}, expected {(SAMPLES, *setting.shape)}")
    d, g = losses[-1]
    return f"losses finite (last d {d:.2f}, g {g:.2f}); samples {tuple(x.shape)}"


def smoke_rows(plan: Plan, device: torch.device) -> list[tuple]:
    """(c) every family through train_gan for plan.smoke_steps steps, then generate."""
    rows = []
    for name, family, overrides in FAMILIES:
        s = _family_setting(family, overrides, plan)

        def check(s=s):
            member = bp.make_members(s, 1, device)[0]
            result = train_gan(member.data, gan=s.gan, train=bp.train_config(plan.smoke_steps, s.batch),
                               seed=0, device=device, labels=member.labels, n_classes=member.n_classes)
            return _verify(result, member, s, plan.smoke_steps, device), "pass"
        rows.append(_checked(f"smoke: {name}", f"{s.describe()}; train_gan {plan.smoke_steps} steps, "
                             f"generate {SAMPLES}", check))
    return rows


def family_pack_rows(plan: Plan, device: torch.device) -> list[tuple]:
    """(d) every family as a pack of plan.family_pack_members for a few steps; a family train_pack
    refuses to pack (pggan: "cannot be packed") is reported as not packable, with its pack of 1 run."""
    rows = []
    for name, family, overrides in FAMILIES:
        s, p, steps = _family_setting(family, overrides, plan), plan.family_pack_members, plan.family_pack_steps

        def check(s=s, p=p, steps=steps):
            members = bp.make_members(s, p, device)
            try:
                _, results = bp.run_pack(members, s.gan, bp.train_config(steps, s.batch), device)
            except (ConfigError, NotImplementedError, ValueError) as err:
                if isinstance(err, ValueError) and "cannot be packed" not in str(err):
                    raise
                _, results = bp.run_pack(members[:1], s.gan, bp.train_config(steps, s.batch), device)
                return (f"P = {p} refused ({err}); a pack of 1: "
                        f"{_verify(results[0], members[0], s, steps, device)}"), "not packable"
            texts = [_verify(r, m, s, steps, device) for r, m in zip(results, members)]
            return f"{len(texts)} members: {texts[0]}", "pass"
        rows.append(_checked(f"pack: {name}", f"{s.describe()}; P = {p}, train_pack {steps} steps", check))
    return rows


def _pack_row(plan: Plan, setting: bp.Setting, p: int, device: torch.device, timing: dict) -> tuple:
    """(a) one P of the pack benchmark; its wall seconds go into timing[p]."""
    def check():
        _, seq, pack, timing[p] = bp.measure(setting, p, plan.pack_steps, plan.pack_repeats, device)
        return (f"{bp.ARMS[0]} {statistics.median(seq):.1f}, {bp.ARMS[1]} {statistics.median(pack):.1f}"
                f" member-steps/s; ratio **{bp.ratio((p, seq, pack)):.2f}** ({timing[p]:.0f} s)"), "measured"
    return _checked(f"bench pack, P = {p}", f"{setting.describe()}; {plan.pack_repeats} alternating "
                    f"repeats of {plan.pack_steps} steps, medians", check)


def _per_step(fn, warm: int, steps: int) -> float:
    """Seconds per step from the difference of a warm+steps run and a warm run (so start-up, model
    building and warm-up cancel), after one throwaway warm run."""
    fn(warm)
    short = fn(warm)
    return max(fn(warm + steps) - short, 1e-9) / steps


def paper_rows(plan: Plan, device: torch.device) -> list[tuple]:
    """(b) seed 000's 20 CIFAR-II DCGAN-32 members: one pack of 20 against one member alone."""
    gan = GANConfig(family="dcgan", width=plan.width, z_dim=plan.z_dim)
    s = bp.make_setting("dcgan", plan.image, width=plan.width, z_dim=plan.z_dim, batch=plan.batch,
                        channels=3, n_data=plan.class_size)
    classes = [bp.random_data(s, k, device) for k in range(2)]
    members = [bp.Member(classes[i * 2 // PAPER_MEMBERS], i) for i in range(PAPER_MEMBERS)]
    what = (f"seed 000 CIFAR-II EnsGAN-10: {PAPER_MEMBERS} x DCGAN-{plan.image} (width {plan.width}), "
            f"batch {plan.batch}, 2 random stand-in classes of {plan.class_size} images")
    lo, hi = PAPER_DCGAN_MINUTES
    k = PAPER_DCGAN_STEPS // 1000

    def pack():
        t = _per_step(lambda n: bp.run_pack(members, gan, bp.train_config(n, plan.batch), device)[0],
                      plan.paper_warm, plan.paper_steps)
        minutes = t * PAPER_DCGAN_STEPS / 60
        return (f"{t * 1e3:.1f} ms per pack step -> {k}K steps: **{minutes:.1f} min for all "
                f"{PAPER_MEMBERS}** (target <= {PAPER_TARGET_MINUTES:g})"), \
            "pass" if minutes <= PAPER_TARGET_MINUTES else "over target"

    def alone():
        t = _per_step(lambda n: bp.run_sequential(members[:1], gan, bp.train_config(n, plan.batch),
                                                  device)[0], plan.paper_warm, plan.paper_steps)
        minutes = t * PAPER_DCGAN_STEPS / 60
        return (f"{t * 1e3:.1f} ms per step -> {k}K steps: {minutes:.1f} min per member, "
                f"{PAPER_MEMBERS * minutes:.1f} min for {PAPER_MEMBERS} one after another"), "measured"
    measured = f"{plan.paper_steps} steps measured after {plan.paper_warm} warm-up, projected to {k}K"
    return [_checked("paper scale: one pack of 20", f"{what}; {measured}", pack),
            _checked("paper scale: one member alone", f"the same member through train_gan; {measured}", alone),
            ("paper scale: seed 000", "Supplement B: Titan X / Xp / 1080 Ti, TensorFlow",
             f"{lo}-{hi} min per member ({PAPER_MEMBERS * lo}-{PAPER_MEMBERS * hi} min for "
             f"{PAPER_MEMBERS} on one GPU)", "reference")]


# (e) every speed lever alone against the plain fp32 pack, then the helpful ones together; (f) bf16's
# fidelity. A lever helps at HELPFUL times the plain pack's member-steps/s (past run-to-run noise).
LEVERS = (("bf16", {"precision": "bf16"}), ("channels_last", {"channels_last": True}),
          ("compile", {"compile": True}), ("cuda_graphs", {"cuda_graphs": True}))
HELPFUL = 1.05
FIRST_STEP_TOL, WINDOW_TOL = 0.02, 0.1  # bf16 vs fp32 losses: the first step; the last quarter's mean


def _lever_rate(members: list, gan: GANConfig, levers: dict, plan: Plan, device: torch.device) -> float:
    """Member-steps/s of a pack with ``levers``: the difference of a warm+steps run and a warm run, so
    that model building, graph capture and compilation guards cancel."""
    def run(steps: int) -> float:
        return bp.run_pack(members, gan, bp.train_config(steps, plan.batch, **levers), device)[0]
    short = run(plan.lever_warm)
    return len(members) * plan.lever_steps / max(run(plan.lever_warm + plan.lever_steps) - short, 1e-9)


def _alternating(arms: dict, members: list, gan: GANConfig, plan: Plan, device: torch.device) -> dict:
    """Each arm's member-steps/s over plan.lever_repeats repeats, the arms' order reversed every other
    repeat so that drift in the machine's speed hits them alike."""
    rates: dict = {name: [] for name in arms}
    for r in range(plan.lever_repeats):
        for name in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
            rates[name].append(_lever_rate(members, gan, arms[name], plan, device))
    return rates


def _lever_result(rates: list, plain: list, extra: str = "") -> tuple[str, str, float]:
    ratio = statistics.median(rates) / statistics.median(plain)
    return (f"{statistics.median(rates):.1f} member-steps/s ({', '.join(f'{x:.1f}' for x in rates)}); "
            f"ratio to plain fp32 **{ratio:.2f}**{extra}"), "helps" if ratio >= HELPFUL else "no gain", ratio


def _first_calls(s: bp.Setting, members: list, plan: Plan, device: torch.device, quick: bool):
    """The levers that run here, each with its first call's seconds (compilation, capture), and the
    n/a, skipped or FAIL rows of those that do not."""
    arms, first, rows = {"plain fp32": {}}, {}, []
    for name, levers in LEVERS:
        train = bp.train_config(plan.lever_warm, plan.batch, **levers)
        try:
            check_levers(s.gan, train, device)
        except ConfigError as err:
            rows.append((f"lever: {name}", "the pack above", f"not applicable here: {err}", "n/a"))
            continue
        if quick and name == "compile" and device.type == "cpu":
            rows.append((f"lever: {name}", "the pack above", "not run by --quick on the CPU (compiling "
                         "takes about a minute on 2 cores); the full command on a GPU measures it", "skipped"))
            continue
        t0 = time.perf_counter()
        try:
            bp.run_pack(members, s.gan, train, device)
        except Exception as err:  # noqa: BLE001 - a lever that fails here is a FAIL row, not a crash
            log.warning("bench gpu: lever %s failed", name, exc_info=True)
            rows.append((f"lever: {name}", "the pack above, first call", f"{type(err).__name__}: {err}",
                         "FAIL"))
            continue
        arms[name], first[name] = levers, time.perf_counter() - t0
    return arms, first, rows


def lever_rows(plan: Plan, device: torch.device, quick: bool = False,
               deadline: float = float("inf")) -> list[tuple]:
    """(e) the plain fp32 pack of plan.lever_members DCGAN-32 members against each lever alone, then
    against the helpful ones together, alternating repeats in one run, medians; not started (nor the
    combination) once ``deadline`` has passed, so that the command keeps to its 8 minutes."""
    if time.perf_counter() > deadline:
        return [("lever: all", "the speed levers", f"not run: the {plan.budget_s:.0f} s budget was spent "
                 "by the checks before them", "skipped")]
    s = bp.make_setting("dcgan", plan.image, width=plan.width, z_dim=plan.z_dim, batch=plan.batch,
                        channels=3, n_data=plan.n_data)
    members = bp.make_members(s, plan.lever_members, device)
    what = (f"{s.describe()}; P = {plan.lever_members}; {plan.lever_repeats} alternating repeats of "
            f"{plan.lever_steps} steps (less a {plan.lever_warm}-step run), medians")
    arms, first, rows = _first_calls(s, members, plan, device, quick)
    try:
        rates = _alternating(arms, members, s.gan, plan, device)
        plain = rates["plain fp32"]
        out = [("lever: none (plain fp32 pack)", what, f"{statistics.median(plain):.1f} member-steps/s "
                f"({', '.join(f'{x:.1f}' for x in plain)})", "measured")]
        helpful = []
        for name in first:
            text, status, _ = _lever_result(rates[name], plain, f"; first call {first[name]:.1f} s")
            out.append((f"lever: {name}", "alone, the pack above", text, status))
            helpful += [name] if status == "helps" else []
        together = f"all helpful together ({', '.join(helpful) or 'none'})"
        if len(helpful) >= 2 and time.perf_counter() > deadline:
            out.append((f"lever: {together}", "the pack above", "not run: past the budget", "skipped"))
        elif len(helpful) < 2:
            out.append((f"lever: {together}", "the pack above", "fewer than two levers help: nothing to "
                        "combine", "n/a"))
        else:
            both = {"plain fp32": {}, "all": {k: v for n in helpful for k, v in dict(LEVERS)[n].items()}}
            again = _alternating(both, members, s.gan, plan, device)
            text, status, _ = _lever_result(again["all"], again["plain fp32"], " (against its own plain "
                                            "repeats)")
            out.append((f"lever: {together}", "the pack above", text, status))
    except Exception as err:  # noqa: BLE001 - a failed check is reported in the table, not raised
        log.warning("bench gpu: levers failed", exc_info=True)
        out = [("lever: comparison", what, f"{type(err).__name__}: {err}", "FAIL")]
    return out[:1] + rows + out[1:]


def fidelity_row(plan: Plan, device: torch.device) -> tuple:
    """(f) the same pack trained fp32 and bf16 from the same seeds: bf16's losses finite and within
    FIRST_STEP_TOL at the first step (rounding alone: the weights are the same) and WINDOW_TOL in the
    mean of the last quarter of the steps (members averaged: training has drifted apart by then)."""
    s = bp.make_setting("dcgan", plan.image, width=plan.width, z_dim=plan.z_dim, batch=plan.batch,
                        channels=3, n_data=plan.n_data)
    p, steps, q = plan.fidelity_members, plan.fidelity_steps, max(1, plan.fidelity_steps // 4)

    def check():
        members, losses = bp.make_members(s, p, device), {}
        for precision in ("fp32", "bf16"):
            _, results = bp.run_pack(members, s.gan, bp.train_config(steps, plan.batch, precision=precision),
                                     device)
            for r in results:
                if isinstance(r, Exception):
                    raise r
            losses[precision] = np.stack([r.losses for r in results])  # (P, steps, 2)
        fp32, bf16 = losses["fp32"], losses["bf16"]
        first = float(np.abs(bf16[:, 0] - fp32[:, 0]).max())
        window = np.abs(bf16[:, -q:].mean((0, 1)) - fp32[:, -q:].mean((0, 1)))
        ok = bool(np.isfinite(bf16).all()) and first <= FIRST_STEP_TOL and window.max() <= WINDOW_TOL
        return (f"first step's losses within {first:.4f} (tolerance {FIRST_STEP_TOL}); last {q} steps' "
                f"mean d, g within {window[0]:.3f}, {window[1]:.3f} (tolerance {WINDOW_TOL}; fp32's: "
                f"{fp32[:, -q:, 0].mean():.3f}, {fp32[:, -q:, 1].mean():.3f})"), "pass" if ok else "over tolerance"
    return _checked("bf16 fidelity", f"{s.describe()}; P = {p}, {steps} steps in fp32, then in bf16, from "
                    "the same seeds", check)


def _sweep_rows(plan: Plan, setting: bp.Setting, device: torch.device, timing: dict,
                deadline: float) -> list[tuple]:
    """The sweep's other P, each only if projected (the slowest seconds per member so far, times P: the
    one-after-another arm is linear in P) to end before the deadline."""
    rows = []
    for p in plan.sweep_members:
        per_member = max((t / q for q, t in timing.items()), default=0.0)
        if time.perf_counter() + per_member * p > deadline:
            rows.append((f"bench pack, P = {p}", "the sweep's next P", f"not run: projected "
                         f"{per_member * p:.0f} s, past the {plan.budget_s:.0f} s budget", "skipped"))
            continue
        rows.append(_pack_row(plan, setting, p, device, timing))
    return rows


def run_checks(plan: Plan, device: torch.device, quick: bool = False) -> tuple[list[tuple], float]:
    """Every check, the cheap and required ones first; rows in the order (a), (b), (e), (f), (c), (d)."""
    t0 = time.perf_counter()
    smoke, packs = smoke_rows(plan, device), family_pack_rows(plan, device)
    s = bp.make_setting("dcgan", plan.image, width=plan.width, z_dim=plan.z_dim, batch=plan.batch,
                        channels=3, n_data=plan.n_data)
    timing: dict = {}
    rows = [_pack_row(plan, s, p, device, timing) for p in plan.pack_members]
    paper = paper_rows(plan, device)
    levers = lever_rows(plan, device, quick, t0 + plan.budget_s) + [fidelity_row(plan, device)]
    rows += _sweep_rows(plan, s, device, timing, t0 + plan.budget_s)
    rows.sort(key=lambda r: int(r[0].rsplit("= ", 1)[1]))
    return rows + paper + levers + smoke + packs, time.perf_counter() - t0


def bench_gpu(args) -> str:
    device = resolve_device(args.device)
    plan = QUICK if args.quick else FULL
    # --quick runs on shared CPUs, where one thread per process is the fast and steady choice.
    with bp.torch_threads(args.threads or (1 if args.quick else None)) as threads:
        rows, seconds = run_checks(plan, device, quick=args.quick)
        where = device_name(device)
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA build"
    failed = [r[0] for r in rows if r[3] == "FAIL"]
    return "\n".join([
        f"### gpu ({date.today().isoformat()}, {where})",
        "",
        f"Command: `raygan bench gpu --device {args.device}{' --quick' if args.quick else ''}`",
        f"torch {torch.__version__} ({cuda}) on {device.type}, {threads} torch threads; every check in "
        f"one process, {seconds:.0f} s in all{' (quick: tiny sizes, not the paper setting)' if args.quick else ''}.",
        "",
        "| check | setting | result | status |",
        "|---|---|---|---|",
        *(f"| {' | '.join(_cell(c) for c in row)} |" for row in rows),
        "",
        f"{len(failed)} failed: {', '.join(failed)}." if failed else "No check failed.",
        "",
    ])
