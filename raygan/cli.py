"""The `raygan` command. Every subcommand is: parse -> resolve config -> one call."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from raygan import __version__, logs
from raygan.config import ConfigError, describe, load_config
from raygan.tools.bench_args import bench_parser

# The shipped configs: inside the package when installed from a wheel, at the top of a checkout.
CONFIG_DIR = next((d for d in (Path(__file__).resolve().parent / "configs",
                              Path(__file__).resolve().parent.parent / "configs") if d.is_dir()),
                  Path(__file__).resolve().parent / "configs")
GRID_PRESETS = {"quick": "grid2d_quick.yaml", "pacgan": "grid2d_pacgan.yaml", "paper": "grid2d_paper.yaml"}


def _preset_path(name: str) -> Path:
    path = CONFIG_DIR / name
    if not path.is_file():
        raise ConfigError(f"the shipped config {path} is missing from this installation; reinstall "
                          "raygan (pip install .) or pass --config")
    return path


def config_options(*, config: bool = True, preset: bool = True, dry_run: bool = True,
                   set_help: str = "dotted override, e.g. --set gan.lr_g=2e-4 (repeatable)"
                   ) -> argparse.ArgumentParser:
    """The options every config-taking command shares, as a parent parser."""
    p = argparse.ArgumentParser(add_help=False)
    if config:
        p.add_argument("--config", default=None, help="YAML file of deltas from the defaults")
    if preset:
        p.add_argument("--preset", dest="config_preset", default=None,
                       help="a preset named in the config file's presets: section (e.g. paper: the "
                            "seed's own setting)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=set_help)
    if dry_run:
        p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    return p


def _resolve(args, config_path) -> "Config":  # noqa: F821
    cfg = load_config(config_path, args.overrides, getattr(args, "config_preset", None))
    if args.dry_run:
        print(cfg.to_yaml(), end="")
        raise SystemExit(0)
    return cfg


def cmd_config(args) -> None:
    if args.describe:
        print(describe())
        return
    print(load_config(args.config, args.overrides, args.config_preset).to_yaml(), end="")


def cmd_grid2d(args) -> None:
    from raygan.reporting.table1 import run_table1

    cfg = _resolve(args, args.config or _preset_path(GRID_PRESETS[args.preset]))
    t0 = time.perf_counter()
    result = run_table1(cfg)
    print(f"\nSeed 000 Table 1 on the 25-Gaussian grid ({result['gans']} GANs x {result['steps']} "
          f"steps, {result['repeats']} bootstrap repeats), ours beside the paper's:\n")
    print(result["table"])
    print(f"\nrun folder: {result['run_dir']}  (figure: {result['figure']}; "
          f"{time.perf_counter() - t0:.0f}s)")


def cmd_demo(args) -> None:
    from raygan.cluster.entry import run_demo

    cfg = _resolve(args, args.config or _preset_path("demo.yaml"))
    print(run_demo(cfg))


def cmd_job(args) -> None:
    from raygan.cluster.entry import run_job

    if getattr(args, "target", None):  # raygan sweep --target gan: the same as --set sweep.target=gan
        args.overrides = [*args.overrides, f"sweep.target={args.target}"]
    try:
        rc = run_job(args.job, args)
    except ConfigError as err:  # shown as main shows it; a job command ends in SystemExit(its code)
        print(config_error_line(err), file=sys.stderr)
        raise SystemExit(2) from None
    if rc == 0 and args.job == "sweep" and not args.dry_run:
        _print_table1(args)
    raise SystemExit(rc)


def _print_table1(args) -> None:
    """A protocol sweep's end: seed 001's Table 1 beside ours, as raygan.reporting.seed001 wrote it."""
    from raygan.runs import RunFolder

    cfg = load_config(args.config, args.overrides, getattr(args, "config_preset", None))
    if cfg.sweep.protocols and cfg.sweep.target == "classifier":
        table = RunFolder.for_config(cfg).path / "eval" / "table1_seed001.md"
        if table.exists():
            print(f"\n{table.read_text()}\n{table}")


def cmd_report(args) -> None:
    from raygan.reporting.report import write_report

    remote = _pull_remote_run(args.run)
    try:
        print(f"report: {write_report(remote.path if remote else args.run)}")
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from err
    if remote is not None:  # written through the mirror, so already in storage
        print(f"report written to {remote.location}/report.md")


def cmd_export(args) -> None:
    from raygan.tools.export import check_out, export_run, summary_line

    check_out(args.out)  # before a URI run is pulled
    remote = _pull_remote_run(args.run)
    summary = export_run(remote.path if remote else args.run, args.out, fmt=args.format, force=args.force,
                         location=remote.location if remote else None)
    if summary["audit"]["forced"]:
        print(f"warning: exported with --force although the audit verdict is {summary['audit']['verdict']} "
              f"(recorded in {Path(args.out) / 'export.json'})", file=sys.stderr)
    print(summary_line(summary, args.out))


def cmd_privacy(args) -> None:
    from raygan.privacy.ledger import describe_ledger, read_ledger

    remote = _pull_remote_run(args.run)
    print(describe_ledger(read_ledger(remote.path if remote else args.run)))


def _pull_remote_run(location: str):
    """A run folder given as a URI (s3://..., file:///...): its outputs pulled into the local mirror
    (checkpoints left out); None for a local path."""
    from raygan.runs import RunFolder, is_uri

    if not is_uri(location):
        return None
    run = RunFolder.at(location)
    try:
        run.pull_outputs()
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read the run folder {location}: {err}; check the URI and the "
                          "credentials of its filesystem") from err
    return run


def audit_config(cfg, run: Path, uri: str | None):
    """The config of `raygan audit RUN`: a local run's output names follow the folder given; a URI run
    keeps the experiment and run of its stored config (its mirror folder's name is a digest of the URI) under
    the URI given as root, query (e.g. endpoint_override) kept."""
    if uri is None:
        return cfg.replace(output={"root": str(run.parent.parent), "experiment": run.parent.name,
                                   "run": run.name})
    from raygan.runs.storage import _split_uri

    return cfg.replace(output={"root": _split_uri(_split_uri(uri)[0])[0]})


def cmd_audit(args) -> None:
    if args.run is None:  # the run folder the config names (what jobs/audit.py submits)
        if args.config is None:
            raise ConfigError("raygan audit needs a run folder (raygan audit RUN) or --config naming one")
        cmd_job(argparse.Namespace(**{**vars(args), "job": "audit"}))
    from raygan.audit.inputs import check_run

    remote = _pull_remote_run(args.run)
    run = check_run(remote.path if remote else args.run).path.resolve()
    bad = [o for o in args.overrides if not o.startswith(("audit.", "cluster.", "tracking."))]
    if bad or args.config is not None or args.config_preset is not None:
        raise ConfigError(f"{', '.join(bad) or '--config/--preset'}: only audit.*, cluster.* and "
                          f"tracking.* may change when auditing an existing run (the rest is "
                          f"{run / 'config.yaml'})")
    cfg = audit_config(_resolve(args, run / "config.yaml"), run, remote.location if remote else None)
    from raygan.cluster.entry import job_function
    from raygan.runs.lock import run_lock

    # A local run folder with no cluster named is audited in this process, without importing ray.
    with run_lock(run, job="audit"):
        job_function("audit", cfg, args.address)(cfg, run_dir=run, force=args.force)


def cmd_bench(args) -> None:
    from raygan.tools.bench import BENCHMARKS

    print(BENCHMARKS[args.name](args))


def cmd_plan(args) -> None:
    import json

    from raygan.tools.plan import format_plan, make_plan, packing, probe

    if args.gpu_hour_cost is not None and args.gpu_hour_cost < 0:
        raise ConfigError(f"--gpu-hour-cost {args.gpu_hour_cost}: a price cannot be negative")
    if args.cpus is not None and args.cpus < 1:
        raise ConfigError(f"--cpus {args.cpus}: synthesis needs at least one CPU")
    cfg = load_config(args.config, args.overrides, args.config_preset)
    gpm = cfg.cluster.gpus_per_member
    packing(args.gpus, 1.0 if gpm is None else gpm)  # refuse what cannot be scheduled before probing
    plan = make_plan(cfg, probe(cfg, steps=args.probe_steps), gpus=args.gpus,
                     gpu_hour_cost=args.gpu_hour_cost, cpus=args.cpus)
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan, str(args.config)))


def _export_parser(sub) -> None:
    """`raygan export RUN --out DIR`: the shards as class folders of PNG files (raygan.tools.export)."""
    p = sub.add_parser("export", help="a run's synthetic shards as PNG files in class folders "
                                      "(torchvision ImageFolder), with provenance.csv and export.json")
    p.add_argument("run", help="the run folder, <output.root>/<experiment>/<run> (a path or a URI)")
    p.add_argument("--format", choices=["imagefolder"], default="imagefolder",
                   help="imagefolder: DIR/<class>/<member>-<index>.png")
    p.add_argument("--out", required=True, help="the folder to create (absent or empty)")
    p.add_argument("--force", action="store_true",
                   help="export even if the audit warned, is out of date or is missing (recorded)")
    p.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raygan", description="Per-class GAN ensembles for "
                                     "synthetic training data.")
    parser.add_argument("--version", action="version", version=f"raygan {__version__}")
    parser.add_argument("--log-level", choices=logs.LEVELS, default=None,
                        help="how much raygan prints (default info; also $RAYGAN_LOG_LEVEL)")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an unexpected error (else one line)")
    sub = parser.add_subparsers(dest="command", required=True)
    configured = config_options()

    p = sub.add_parser("config", parents=[config_options(dry_run=False)],
                       help="print the resolved config (or --describe every field)")
    p.add_argument("--describe", action="store_true", help="list every field, default and meaning")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("grid2d", parents=[config_options(preset=False)],
                       help="seed 000 Table 1: mode coverage of GAN ensembles on the 2D grid")
    p.add_argument("--preset", choices=sorted(GRID_PRESETS), default="quick",
                   help="quick: ~10 min on 2 CPU cores; pacgan: quick with PacGAN4's D; paper: Supplement A's")
    p.set_defaults(func=cmd_grid2d)

    p = sub.add_parser("demo", parents=[configured],
                       help="the full pipeline on the bundled digits on a local Ray")
    p.set_defaults(func=cmd_demo)

    for job, text in (("train", "train the K x T ensemble as Ray tasks"),
                      ("synthesize", "write the synthetic shards (parquet) with Ray Data"),
                      ("evaluate", "TRTR, TSTR against ensemble size, TRTS; then the report"),
                      ("pipeline", "train, synthesize, evaluate, report (what ray job submit runs)"),
                      ("sweep", "Ray Tune sweep of classifier settings, mixing ratio and T")):
        p = sub.add_parser(job, parents=[configured], help=text,
                           aliases=["synth"] if job == "synthesize" else [])
        p.add_argument("--address", default=None,
                       help="Ray cluster address (else RAY_ADDRESS, else a local Ray)")
        if job == "sweep":
            p.add_argument("--target", choices=["classifier", "gan"], default=None,
                           help="what to search (sets sweep.target): classifier settings over a "
                                "trained run, or gan: GAN/train settings of sweep.gan_space")
        p.set_defaults(func=cmd_job, job=job)

    p = sub.add_parser("report", help="plots and a markdown summary of a run folder")
    p.add_argument("run", help="the run folder, <output.root>/<experiment>/<run>")
    p.set_defaults(func=cmd_report)

    _export_parser(sub)

    p = sub.add_parser("privacy", help="the privacy ledger of a run trained with privacy.epsilon: the "
                       "(epsilon, delta) spent, by class, and what was declared public")
    p.add_argument("run", help="the run folder, <output.root>/<experiment>/<run> (or its URI)")
    p.set_defaults(func=cmd_privacy)

    audit_set = ("override of the run's config, audit.*, cluster.* or tracking.* only, e.g. "
                 "--set audit.chunk_size=4096 (repeatable)")
    p = sub.add_parser("audit", parents=[config_options(set_help=audit_set)],
                       help="memorisation audit of a run's synthetic set: nearest training images "
                            "against a real holdout, membership inference, a pass/warn verdict")
    p.add_argument("run", nargs="?", default=None,
                   help="the run folder, <output.root>/<experiment>/<run> (or --config naming it)")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (else RAY_ADDRESS, else a local Ray)")
    p.add_argument("--force", action="store_true",
                   help="recompute even if audit/privacy.json is up to date with the shards")
    p.set_defaults(func=cmd_audit)

    bench_parser(sub, cmd_bench)
    p = sub.add_parser("plan", parents=[config_options(config=False, dry_run=False)],
                       help="GPU-hours, waves, wall time and cost of a config from a short measured "
                            "probe; launches nothing")
    p.add_argument("config", help="YAML file of deltas from the defaults (as for every job)")
    p.add_argument("--gpus", type=int, required=True, help="GPUs the cluster will have")
    p.add_argument("--probe-steps", type=int, default=50,
                   help="training steps of the measured probe member (after a short warm-up)")
    p.add_argument("--gpu-hour-cost", type=float, default=None, metavar="USD",
                   help="price of one GPU-hour (else cluster.gpu_hour_cost; else no cost shown)")
    p.add_argument("--cpus", type=int, default=None,
                   help="CPUs that synthesis spreads over (default: 4 per GPU, as on g5.xlarge)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)
    return parser


def config_error_line(err: ConfigError) -> str:
    """The one line a ConfigError is shown as (credentials redacted). Raised inside a Ray task it
    arrives wrapped, with the task's traceback in its text: the original error is shown instead."""
    from raygan.secrets import one_line

    cause = getattr(err, "cause", None)
    return f"raygan: config error: {one_line(cause if isinstance(cause, ConfigError) else err)}"


def _root_cause(err: Exception) -> Exception:
    """The error a Ray task raised, through the wrappers of the tasks that waited on it (a task whose
    input failed raises a RayTaskError whose cause is the input's RayTaskError, and so on)."""
    seen = set()
    while isinstance(getattr(err, "cause", None), Exception) and id(err) not in seen:
        seen.add(id(err))
        err = err.cause
    return err


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success, 2 for bad input (one line naming the problem and the fix), 1 for a file that
    could not be written (a full disk: its path and the fix) and for anything unexpected (one line
    naming the exception, its traceback only with --debug); 143 / 130 for a job
    stopped by SIGTERM / Ctrl-C, after its temporary files are removed and its lock released
    (raygan.signals)."""
    from raygan import signals

    args = build_parser().parse_args(argv)
    logs.configure(args.log_level)
    before = signals.raise_on_sigterm()
    try:
        args.func(args)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (raygan.signals.Stopped)
        code, line = signals.stopped_line(stop)
        print(line, file=sys.stderr)
        return code
    except ConfigError as err:
        print(config_error_line(err), file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the one place every unexpected error is shown
        from raygan.runs.storage import WriteError
        from raygan.secrets import one_line, redact

        cause = _root_cause(err)  # a Ray task's error: its own text, not the wrappers'
        if isinstance(cause, WriteError):  # a full disk: the path and the fix
            print(f"raygan: {one_line(WriteError(cause.errno, cause.strerror, cause.filename))}",
                  file=sys.stderr)
            return 1
        if args.debug:
            import traceback
            print(redact(traceback.format_exc()), end="", file=sys.stderr)
        else:
            err = cause
            print(f"raygan: error: {type(err).__name__}: {one_line(err)[:500]} (rerun with --debug "
                  "for the traceback)", file=sys.stderr)
        return 1
    finally:
        signals.restore(before)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
