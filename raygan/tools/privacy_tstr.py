"""Digits TSTR against epsilon (issue 26, docs/privacy.md): each cell is one run of configs/demo.yaml's
per-class DCGANs, trained, synthesized, evaluated (TSTR against ensemble size T, TRTR beside) and
audited (pixel space: the calibrated attacks and, with privacy on, their DP check) in this process,
without Ray. A cell is ``eps:T:partition`` (eps ``inf``: privacy off); each cell's row is logged
when it is done (a cell whose run is complete is skipped); ``--table`` writes ROOT/table.md from each
run folder's eval/ and audit/.

    python -m raygan.tools.privacy_tstr --root runs/privacy_tstr --steps 500 \\
        inf:2:shared 1:1:shared 3:1:shared 10:1:shared 1:2:shared 1:2:disjoint ...
    python -m raygan.tools.privacy_tstr --root runs/privacy_tstr --table
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from raygan import logs

log = logging.getLogger("raygan.tools.privacy_tstr")  # not __name__: run as __main__


def overrides(cell: str, root: str, steps: int, repeats: int, seed: int) -> list[str]:
    eps, members, partition = cell.split(":")
    privacy = [] if eps == "inf" else [f"privacy.epsilon={float(eps)}", f"privacy.partition={partition}"]
    return ["data.name=digits", "gan.family=dcgan", "gan.width=32", "gan.z_dim=32", f"train.steps={steps}",
            "train.batch_size=32", f"train.checkpoint_every={steps}", f"train.seed={seed}",
            "train.divergence_retries=0", f"ensemble.members={members}", f"eval.repeats={repeats}",
            "eval.epochs=15", "audit.enabled=true", "audit.spaces=[pixel]", "tracking.enabled=false",
            f"output.root={root}", "output.experiment=privacy_tstr",
            f"output.run=eps{eps}_T{members}_{partition}_s{seed}", *privacy]


def run_cell(cell: str, root: str, steps: int, repeats: int, seed: int) -> Path:
    from raygan.config import load_config
    from raygan.ensemble.training import train_independent
    from raygan.evaluation.job import evaluate_job, prepare
    from raygan.synthesis.shards import mixture_weights, write_shards

    cfg = load_config(overrides=overrides(cell, root, steps, repeats, seed))
    dataset, run = prepare(cfg)
    if (run.path / "audit" / "privacy.json").exists():
        log.info(f"{cell}: done, skipped")
        return run.path
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    write_shards(cfg, dataset, run, mixture_weights(cfg, dataset, run))
    evaluate_job(cfg, prepared=(dataset, run), audit=True)
    return run.path


def row(cell: str, path: Path) -> dict:
    evaluation = json.loads((path / "eval" / "evaluation.json").read_text())
    audit = json.loads((path / "audit" / "privacy.json").read_text())
    ledger = json.loads((path / "privacy.json").read_text()) if (path / "privacy.json").exists() else None
    return {"cell": cell, "path": str(path), "evaluation": evaluation, "attacks": audit.get("attacks"),
            "epsilon_spent": None if ledger is None else ledger["epsilon"]}


def table(root: str) -> str:
    """The markdown table of every finished run under ``root``: TSTR at each T beside TRTR (test
    accuracy, mean +- std over the classifier repeats), the epsilon spent and what the attacks show."""
    lines = ["| epsilon (spent) | partition | T | TSTR % | TRTR % | GAN-Leaks AUROC / TPR at 1 % FPR | "
             "DP check (epsilon lower bound) |", "|---|---|---|---|---|---|---|"]
    for path in sorted(Path(root, "privacy_tstr").glob("eps*_T*_*")):
        if not (path / "audit" / "privacy.json").exists():
            continue
        eps, members, partition, _ = path.name.split("_")
        r = row(path.name, path)
        ev, attacks = r["evaluation"], r["attacks"]
        trtr = f"{100 * ev['trtr']['test_acc_mean']:.1f} ± {100 * ev['trtr']['test_acc_std']:.1f}"
        leaks = attacks["gan_leaks"]["overall"]
        dp = (f"{attacks['dp_verdict']} ({attacks['dp_epsilon_lower_bound']:.2f})" if attacks.get("dp")
              else f"no claim ({leaks['epsilon_lower_bound']:.2f})")
        spent = "∞" if r["epsilon_spent"] is None else f"{eps[3:]} ({r['epsilon_spent']:.2f})"
        for point in ev["tstr_curve"]:
            if members != "T1" and point["T"] == 1 and eps != "epsinf":
                label = "1 (first member of T = 2)"
            else:
                label = str(point["T"])
            lines.append(f"| {spent} | {partition if eps != 'epsinf' else '-'} | {label} | "
                         f"{100 * point['test_acc_mean']:.1f} ± {100 * point['test_acc_std']:.1f} | {trtr} | "
                         f"{leaks['auroc']:.3f} / {100 * leaks['tpr_at_1pct_fpr']:.1f} % | {dp} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="*")
    parser.add_argument("--table", action="store_true",
                        help="write the table of the finished runs to ROOT/table.md (and the log)")
    parser.add_argument("--root", default="runs/privacy_tstr")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logs.configure("info")
    if args.table:
        text = table(args.root)
        Path(args.root, "table.md").write_text(text + "\n")
        log.info(f"{Path(args.root, 'table.md')}:\n{text}")
        return
    torch.set_num_threads(1)
    for cell in args.cells:
        path = run_cell(cell, args.root, args.steps, args.repeats, args.seed)
        log.info(json.dumps(row(cell, path)))


if __name__ == "__main__":
    main()
