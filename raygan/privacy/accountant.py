"""One accountant over the whole ensemble: the noise of every member solved from privacy.epsilon before
any training (``plan_privacy``), and the epsilon the members' recorded histories spent
(``class_epsilon``), both with Opacus's accountant (privacy.accountant: prv or rdp).

Adjacency is add/remove one record. How the members' mechanisms combine:

- classes hold disjoint records (a record is in exactly one class's training split), so they compose in
  parallel: the released set's epsilon is the largest class's;
- privacy.partition=shared: a class's T members all train on its N_k records, so they compose
  sequentially: their histories (noise multiplier, sample rate q = B / N_k, steps) are one history,
  and each member's noise is solved for T x train.steps x privacy.d_steps D steps at q;
- privacy.partition=disjoint: each record goes to exactly one member (``member_records``: a seeded
  permutation cut into T near-equal parts), so the members compose in parallel: the class's epsilon is
  its largest member's, each member's noise solved for train.steps steps at q = B / (its records).

delta is privacy.delta, or 1 / (10 N) for N private training records, and must be below 1/N.

privacy.unit=group (the records of one data.group_column value, e.g. a patient): the guarantee is
turned into a per-record target by group privacy (``group_privacy``; Dwork and Roth, Theorem 2.2 and
its approximate form): with k the records of the largest group, every member is solved for epsilon / k
at delta_g / (k e^((k-1) epsilon / k)), so that the whole mechanism is (epsilon, delta_g)-DP for adding
or removing any one group. Sampling stays per record (a documented equivalent of group-level Poisson
sampling and clipping: correct for every group, noisier when one group is large). N and delta's bound
count groups then.

Opacus is imported here, only when privacy is on (the ``privacy`` extra).
"""
from __future__ import annotations

import functools
import math
import warnings
from collections import Counter
from dataclasses import dataclass

import torch

from raygan import seeds
from raygan.config import Config, ConfigError
from raygan.privacy.dpsgd import MemberPrivacy

INSTALL = "pip install 'raygan[privacy]' (Opacus)"


def _opacus(what: str):
    # Opacus's RDP analysis warns when its largest order is the best: the bound is then looser than it
    # could be, never below the truth (PRV runs it too, for its domain); not a problem of the run's.
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha", category=UserWarning)
    try:
        import opacus.accountants as accountants
        import opacus.accountants.utils as utils
    except ImportError as err:
        raise ConfigError(f"privacy.epsilon is set but Opacus is not installed ({err}); {INSTALL}") from None
    return getattr(accountants, what, None) or getattr(utils, what)


@functools.lru_cache(maxsize=None)
def solve_noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """sigma such that ``steps`` DP-SGD steps at ``sample_rate`` spend at most ``epsilon`` at ``delta``
    (Opacus's get_noise_multiplier); cached: the members of a class share it."""
    try:
        return float(_opacus("get_noise_multiplier")(target_epsilon=epsilon, target_delta=delta,
                                                     sample_rate=sample_rate, steps=steps, accountant=accountant))
    except ValueError as err:
        raise ConfigError(f"no noise meets privacy.epsilon={epsilon:g} at delta={delta:.3g} over {steps} steps "
                          f"at sample rate {sample_rate:.3g} ({err}); raise privacy.epsilon or lower "
                          "train.steps") from None


def compose_epsilon(histories: list[list], delta: float, accountant: str) -> float:
    """The epsilon of the sequential composition of ``histories`` (each [[noise multiplier, sample rate,
    steps], ...]), by Opacus's accountant."""
    acc = _opacus({"prv": "PRVAccountant", "rdp": "RDPAccountant"}[accountant])()
    acc.history = [tuple(entry) for history in histories for entry in history]
    return float(acc.get_epsilon(delta=delta))


def class_epsilon(histories: list[list], delta: float, *, accountant: str, partition: str) -> float:
    """One class's epsilon from its members' histories: composed (shared) or the largest (disjoint)."""
    if partition == "shared":
        return compose_epsilon(histories, delta, accountant)
    return max(compose_epsilon([h], delta, accountant) for h in histories)


def share_sizes(n: int, members: int) -> list[int]:
    """How many of a class's ``n`` records each of its members gets under partition=disjoint (the
    first n mod T one more; ``member_records``' cut)."""
    return [n // members + (t < n % members) for t in range(members)]


def member_records(n: int, members: int, member: int, seed: int) -> torch.Tensor:
    """The record indices (sorted) that member ``member`` of ``members`` trains on under
    partition=disjoint: a permutation of range(n) by ``seed`` (seeds.privacy_partition), cut into
    ``share_sizes`` parts; every record in exactly one part, the same for the same seed."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return torch.sort(torch.tensor_split(perm, members)[member]).values


def group_privacy(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """(epsilon, delta) for a unit of ``k`` records of an (epsilon, delta)-DP mechanism on records:
    (k epsilon, k e^((k-1) epsilon) delta) (group privacy; Dwork and Roth, Theorem 2.2 and its
    approximate-DP form)."""
    return k * epsilon, k * math.exp((k - 1) * epsilon) * delta


def privacy_units(records: int, groups: dict | None) -> tuple[int, int]:
    """(the privacy units among the training records, the records of the largest one): (N, 1) per
    record, or (the groups, the largest group's training records over every class) for
    privacy.unit=group (``groups``: RealDataset.groups)."""
    if groups is None:
        return records, 1
    counts = Counter(g for ids in groups.values() for g in ids.tolist())
    return len(counts), max(counts.values())


@dataclass(frozen=True)
class PrivacyPlan:
    """The run's privacy before any training: delta, N and every (class, member)'s DP-SGD settings."""
    delta: float                          # per record (privacy.unit=group: solved from the group's)
    records: int                          # N: the private training records of every class
    members: dict[str, MemberPrivacy]     # "<class>/<member>" -> its settings
    units: int = 0                        # privacy units: N, or the groups (unit=group)
    largest_group: int = 1                # k: the records of the largest unit
    unit_delta: float | None = None       # the delta the unit is promised (unit=group)

    def member(self, class_name: str, member: int) -> MemberPrivacy:
        return self.members[f"{class_name}/{member}"]

    def to_dict(self) -> dict:
        return {"delta": self.delta, "records": self.records, "units": self.units,
                "largest_group": self.largest_group, "unit_delta": self.unit_delta,
                "members": {k: m.to_dict() for k, m in self.members.items()}}

    @classmethod
    def from_dict(cls, raw: dict) -> "PrivacyPlan":
        return cls(delta=raw["delta"], records=raw["records"], units=raw.get("units", raw["records"]),
                   largest_group=raw.get("largest_group", 1), unit_delta=raw.get("unit_delta"),
                   members={k: MemberPrivacy.from_dict(m) for k, m in raw["members"].items()})


def resolve_delta(cfg: Config, records: int, *, what: str = "private training records") -> float:
    """privacy.delta, or 1 / (10 N); ConfigError when it is not below 1/N (N: ``records``, the units)."""
    delta = cfg.privacy.delta if cfg.privacy.delta is not None else 1.0 / (10 * records)
    if delta >= 1.0 / records:
        raise ConfigError(f"privacy.delta={delta:.3g} is not below 1/N = {1.0 / records:.3g} for the N={records} "
                          f"{what} (such a delta allows releasing a record outright); set "
                          "privacy.delta smaller, or null for 1/(10 N)")
    return delta


def _shares(cfg: Config, class_sizes: dict[str, int], groups: dict | None = None
            ) -> tuple[float, int, dict[str, int]]:
    """(delta of a unit, N, "<class>/<member>" -> the records it trains on), checked against the data."""
    p, T, batch = cfg.privacy, cfg.ensemble.members, cfg.train.batch_size
    records = sum(class_sizes.values())
    units, _ = privacy_units(records, groups)
    delta = resolve_delta(cfg, units, what="private training records" if groups is None else
                          f"groups of data.group_column={cfg.data.group_column!r}")
    shares = {}
    for name, n_class in class_sizes.items():
        for t, n in enumerate([n_class] * T if p.partition == "shared" else share_sizes(n_class, T)):
            if batch > n:
                raise ConfigError(f"train.batch_size={batch} (the expected Poisson batch) exceeds the {n} records "
                                  f"member {t} of class {name} trains on (privacy.partition={p.partition}); set "
                                  f"train.batch_size <= {n}" + (" or fewer ensemble.members" if T > 1 else ""))
            shares[f"{name}/{t}"] = n
    return delta, records, shares


def _groups(cfg: Config, groups: dict | None) -> dict | None:
    if cfg.privacy.unit != "group":
        return None
    if groups is None:  # the loader reads data.group_column whenever it is set (raygan.data.parquet)
        raise ConfigError("privacy.unit=group but the data carry no groups; set data.group_column to the "
                          "parquet column naming each record's group")
    return groups


def check_privacy_data(cfg: Config, class_sizes: dict[str, int], groups: dict | None = None) -> None:
    """What the data decides of privacy.* (delta below 1/N, a batch no larger than a member's records),
    without solving the noise: before any file is written (raygan.evaluation.job.prepare).
    ``groups``: RealDataset.groups (privacy.unit=group)."""
    if cfg.privacy.epsilon is not None:
        _shares(cfg, class_sizes, _groups(cfg, groups))


def plan_privacy(cfg: Config, class_sizes: dict[str, int], groups: dict | None = None) -> PrivacyPlan | None:
    """Every member's noise for privacy.epsilon (None when privacy is off), from each class's number of
    training records (``check_privacy_data``'s refusals first); the solve is cached. privacy.unit=group
    (``groups``: RealDataset.groups): solved per record for the group target (module docstring)."""
    p = cfg.privacy
    if p.epsilon is None:
        return None
    groups = _groups(cfg, groups)
    unit_delta, records, shares = _shares(cfg, class_sizes, groups)
    units, k = privacy_units(records, groups)
    epsilon, delta = p.epsilon / k, unit_delta / (k * math.exp((k - 1) * p.epsilon / k))
    steps = cfg.train.steps * p.d_steps * (cfg.ensemble.members if p.partition == "shared" else 1)
    members = {key: MemberPrivacy(noise_multiplier=solve_noise_multiplier(epsilon, delta, cfg.train.batch_size / n,
                                                                          steps, p.accountant),
                                  max_grad_norm=p.max_grad_norm, sample_rate=cfg.train.batch_size / n, records=n,
                                  d_steps=p.d_steps)
               for key, n in shares.items()}
    return PrivacyPlan(delta=delta, records=records, members=members, units=units, largest_group=k,
                       unit_delta=unit_delta if groups is not None else None)


def member_data(cfg: Config, data: torch.Tensor, *, class_index: int, member: int) -> torch.Tensor:
    """The records a member of a class trains on under privacy: all of them (shared), or its part."""
    if cfg.privacy.partition == "shared":
        return data
    idx = member_records(data.shape[0], cfg.ensemble.members, member,
                         seeds.privacy_partition(cfg.train.seed, class_index))
    return data[idx]


__all__ = ["PrivacyPlan", "check_privacy_data", "class_epsilon", "compose_epsilon", "group_privacy", "member_data",
           "member_records", "plan_privacy", "privacy_units", "resolve_delta", "share_sizes", "solve_noise_multiplier"]
