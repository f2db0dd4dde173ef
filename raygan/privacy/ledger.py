"""The privacy ledger of a run: what the members spent, composed by one accountant (raygan.privacy.accountant),
and everything else that touched the private records, declared public or named as not covered
(DESIGN.md principle 16). Written after training as privacy.json in the run folder and as the
manifest's "privacy" section; ``raygan privacy RUN`` prints it (``describe_ledger``).

Each member's history comes from its manifest entry (what its checkpoint recorded, step by step); a
member that is not complete (diverged and given up, or not trained yet) is counted at its planned
history, all train.steps steps: its attempt touched the records, and its absence shapes the set.
"""
from __future__ import annotations

import json
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from raygan.config import Config, ConfigError
from raygan.privacy.accountant import PrivacyPlan, class_epsilon, group_privacy
from raygan.runs import RunFolder, atomic_write_text

logger = logging.getLogger(__name__)

LEDGER_FILE = "privacy.json"
# Opacus's PRV accountant reports epsilon to within its eps_error (0.01); the noise is solved to it.
TOLERANCE = 0.01

ADJACENCY = ("add/remove one record (the dataset with or without it); under replace-one adjacency (one "
             "record swapped for another) the same training gives roughly twice this epsilon")

GROUP_ADJACENCY = ("add/remove one group (every training record of one value of data.group_column), by group "
                   "privacy over the largest group's k records: each record's mechanism is solved for epsilon / k; "
                   "under replace-one adjacency roughly twice this epsilon")
GROUP_NOT_COVERED = ("unit=group: a person is one group only as far as data.group_column says so (one person under "
                     "two ids is two groups), and the group sizes (k) are declared public")

DECLARED_PUBLIC = [
    "the class names and each class's number of training records N_k: they set the sampling rates "
    "q = train.batch_size / N_k, the default delta and N_g (the synthetic samples per class)",
    "the choice of T (ensemble.members), train.steps, train.batch_size, the learning rates, the "
    "architecture and every other setting in config.yaml: chosen without the private records (under "
    "privacy raygan refuses a GAN search, sweep.gan_space, that would pick them by private validation data)",
    "the split into training, validation and test records (data.split_seed and the fractions): only "
    "the training records reach a GAN; the validation and test records are not protected by this ledger",
    "no checkpoint selection: every member releases its generator after exactly train.steps steps, never "
    "one picked by a loss or by private validation data",
]
DISJOINT_PUBLIC = "privacy.partition=disjoint deals the records to members by a seeded permutation of their order"

NOT_COVERED = [
    "only the generators and what they generate (the synthetic shards) are covered; eval/, audit/, "
    "report.md, plots and MLflow read real training, validation and test records without noise: do not "
    "release them",
    "losses.csv's d_loss is D's loss on fakes only (covered); the real half of D's loss is never recorded",
    "the noise comes from the member's seeded torch generator (reproducible runs), not a cryptographically "
    "secure one (Opacus's secure_mode), and floating-point attacks on the Gaussian noise are not defended",
    "unit=record: a person with k records in the data is protected at about k times epsilon (group privacy)",
]


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


RETRIES = ("none spent: train.divergence_retries must be 0 under privacy and ensemble.on_collapse drop or "
           "retrain is refused (members under privacy are not measured for collapse), so no member re-reads "
           "its records; a member that diverged is left out of the set and counted at its full planned "
           "history, and a failed attempt recorded in a member's entry (a run made otherwise) is counted at "
           "its full planned history too")


def member_row(entry: dict | None, planned: dict, steps: int) -> dict:
    """A member's ledger row: its recorded history, or its planned one when it is not complete; each
    failed attempt its manifest entry records (``divergence``: a retry re-read the records) adds its
    full planned history (its checkpoints went with it, so the steps it took are not known)."""
    full = [[planned["noise_multiplier"], planned["sample_rate"], steps * planned.get("d_steps", 1)]]
    failed = len((entry or {}).get("divergence") or [])
    if entry is not None and entry.get("status") == "complete" and "privacy" in entry:
        row = {**entry["privacy"], "counted": "recorded"}
    else:
        row = {**planned, "history": [] if failed else full, "counted": "planned (not complete)"}
    if failed:
        row.update(history=row["history"] + full * failed, failed_attempts=failed,
                   counted=row["counted"] + f" + {failed} failed attempt(s) at their plan")
    return row


def build_ledger(cfg: Config, plan: PrivacyPlan, run: RunFolder, classes: list[str]) -> dict:
    """The ledger of ``run``'s members of ``classes`` under ``plan``."""
    p = cfg.privacy
    rows = {}
    for name in classes:
        members = {str(t): member_row(run.member_entry(name, t), plan.member(name, t).to_dict(), cfg.train.steps)
                   for t in range(cfg.ensemble.members)}
        eps = class_epsilon([m["history"] for m in members.values()], plan.delta, accountant=p.accountant,
                            partition=p.partition)
        records = sum(m["records"] for m in members.values()) if p.partition == "disjoint" else \
            next(iter(members.values()))["records"]
        rows[name] = {"records": records, "epsilon": eps, "members": members}
    epsilon = max(r["epsilon"] for r in rows.values())
    k = plan.largest_group
    group = {}
    if p.unit == "group":  # the records' (epsilon, delta) made the group's by group privacy
        group = {"record_epsilon": epsilon, "record_delta": plan.delta, "largest_group": k,
                 "groups": plan.units, "group_column": cfg.data.group_column}
        epsilon, delta = group_privacy(epsilon, plan.delta, k)
    else:
        delta = plan.delta
    return {
        "epsilon": epsilon, "delta": delta, "target_epsilon": p.epsilon,
        "within_target": epsilon <= p.epsilon + k * TOLERANCE, "records": plan.records, **group,
        "adjacency": ADJACENCY if p.unit == "record" else GROUP_ADJACENCY, "unit": p.unit,
        "accountant": p.accountant, "partition": p.partition,
        "max_grad_norm": p.max_grad_norm, "d_norm": p.d_norm, "d_steps": p.d_steps,
        "composition": "classes in parallel (the set's epsilon is the largest class's); a class's members "
                       + ("in sequence (shared records)" if p.partition == "shared" else
                          "in parallel (disjoint records)"),
        "classes": rows, "retries": RETRIES,
        "not_covered": NOT_COVERED if p.unit == "record" else [*NOT_COVERED[:-1], GROUP_NOT_COVERED],
        "declared_public": DECLARED_PUBLIC + ([DISJOINT_PUBLIC] if p.partition == "disjoint" else []),
        "versions": {"raygan": _version("raygan"), "opacus": _version("opacus")},
    }


def write_ledger(cfg: Config, plan: PrivacyPlan, run: RunFolder, classes: list[str]) -> dict:
    """Build the ledger, write privacy.json and the manifest's "privacy" section; returns it."""
    ledger = build_ledger(cfg, plan, run, classes)
    atomic_write_text(run.path / LEDGER_FILE, json.dumps(ledger, indent=2) + "\n")  # a URI run: uploaded too
    run.update_manifest(privacy=ledger)
    logger.info(f"privacy: (epsilon, delta) = ({ledger['epsilon']:.4g}, {ledger['delta']:.3g}) for the released "
                f"set, target epsilon {cfg.privacy.epsilon:g}; ledger {run.path / LEDGER_FILE}")
    if not ledger["within_target"]:
        logger.warning(f"privacy: the members spent epsilon {ledger['epsilon']:.4g}, above the target "
                       f"{cfg.privacy.epsilon:g}")
    return ledger


def read_ledger(run_dir: str | Path) -> dict:
    """The ledger of the run folder ``run_dir``, checked against the manifest's copy; a one-line
    ConfigError when there is none or the two differ."""
    path = Path(run_dir) / LEDGER_FILE
    if not Path(run_dir).is_dir():
        raise ConfigError(f"no run folder at {run_dir}; give <output.root>/<experiment>/<run>")
    if not path.is_file():
        raise ConfigError(f"{path} is missing: the run was not trained with privacy.epsilon set, or its "
                          "training has not finished; train it with privacy.epsilon set (raygan train)")
    ledger = json.loads(path.read_text())
    if RunFolder(run_dir).manifest().get("privacy") != ledger:
        raise ConfigError(f"{path} differs from the privacy section of the run's manifest.json; rerun "
                          "raygan train on the run (it rewrites both) and do not edit either by hand")
    return ledger


def describe_ledger(ledger: dict) -> str:
    """The ledger as lines for a person (``raygan privacy RUN``)."""
    ok = "within" if ledger["within_target"] else "ABOVE"
    lines = [f"(epsilon, delta) = ({ledger['epsilon']:.4g}, {ledger['delta']:.3g}) for the released set, "
             f"{ok} the target epsilon {ledger['target_epsilon']:g}",
             f"unit: {ledger['unit']}; adjacency: {ledger['adjacency']}",
             *([f"groups: {ledger['groups']} ({ledger['group_column']}), the largest with k = {ledger['largest_group']} "
                f"records; per record ({ledger['record_epsilon']:.4g}, {ledger['record_delta']:.3g})"]
               if ledger["unit"] == "group" else []),
             f"accountant: {ledger['accountant']} (Opacus {ledger['versions'].get('opacus')}); "
             f"partition: {ledger['partition']}; clipping C = {ledger['max_grad_norm']:g}; "
             f"D's batch norm -> {ledger['d_norm']} norm; {ledger.get('d_steps', 1)} D step(s) per G update, "
             "each counted",
             f"composition: {ledger['composition']}", f"N = {ledger['records']} private training records"]
    for name, row in ledger["classes"].items():
        sigmas = sorted({m["noise_multiplier"] for m in row["members"].values()})
        steps = sum(h[2] for m in row["members"].values() for h in m["history"])
        planned = sum(m["counted"] != "recorded" for m in row["members"].values())
        lines.append(f"  class {name}: {row['records']} records, epsilon {row['epsilon']:.4g}; "
                     f"{len(row['members'])} members, noise multiplier {', '.join(f'{s:.4g}' for s in sigmas)}, "
                     f"{steps} D steps" + (f" ({planned} counted at their plan)" if planned else ""))
    if ledger.get("retries"):
        lines.append(f"retries: {ledger['retries']}")
    lines += ["declared public:", *(f"  - {d}" for d in ledger["declared_public"])]
    lines += ["not covered:", *(f"  - {d}" for d in ledger["not_covered"])]
    return "\n".join(lines)


NO_CLAIM = ("no formal privacy guarantee: the members were trained without differential privacy "
            "(privacy.epsilon null); only the memorisation audit speaks to what the set leaks")


def release_claim(ledger: dict | None) -> dict:
    """What the released set promises, for everything that travels with it (report.md, MLflow, the
    export's export.json, the shards' Hugging Face metadata): the ledger's (epsilon, delta), adjacency,
    unit, accountant and partition, what was declared public and what is not covered, and one
    sentence; ``{"differential_privacy": False, "statement": NO_CLAIM}`` without a ledger."""
    if not ledger:
        return {"differential_privacy": False, "statement": NO_CLAIM}
    keys = ("epsilon", "delta", "target_epsilon", "adjacency", "unit", "accountant", "partition",
            "declared_public", "not_covered")
    claim = {"differential_privacy": True, **{k: ledger[k] for k in keys}}
    claim["statement"] = (f"({ledger['epsilon']:.4g}, {ledger['delta']:.3g})-differentially private generators "
                          f"and synthetic set, per {ledger['unit']} under {ledger['adjacency'].split(';')[0]} "
                          f"adjacency ({ledger['accountant']} accountant, {ledger['partition']} partition); "
                          "what was declared public and what is not covered: privacy.json")
    return claim


def run_claim(run: RunFolder) -> dict:
    """release_claim of the ledger in ``run``'s manifest (none: the no-guarantee claim)."""
    return release_claim(run.manifest().get("privacy"))


__all__ = ["LEDGER_FILE", "NO_CLAIM", "build_ledger", "describe_ledger", "member_row", "read_ledger",
           "release_claim", "run_claim", "write_ledger"]
