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
Opacus is imported here, only when privacy is on (the ``privacy`` extra).
"""
from __future__ import annotations

import functools
import warnings
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


@dataclass(frozen=True)
class PrivacyPlan:
    """The run's privacy before any training: delta, N and every (class, member)'s DP-SGD settings."""
    delta: float
    records: int                          # N: the private training records of every class
    members: dict[str, MemberPrivacy]     # "<class>/<member>" -> its settings

    def member(self, class_name: str, member: int) -> MemberPrivacy:
        return self.members[f"{class_name}/{member}"]

    def to_dict(self) -> dict:
        return {"delta": self.delta, "records": self.records,
                "members": {k: m.to_dict() for k, m in self.members.items()}}

    @classmethod
    def from_dict(cls, raw: dict) -> "PrivacyPlan":
        return cls(delta=raw["delta"], records=raw["records"],
                   members={k: MemberPrivacy.from_dict(m) for k, m in raw["members"].items()})


def resolve_delta(cfg: Config, records: int) -> float:
    """privacy.delta, or 1 / (10 N); ConfigError when it is not below 1/N."""
    delta = cfg.privacy.delta if cfg.privacy.delta is not None else 1.0 / (10 * records)
    if delta >= 1.0 / records:
        raise ConfigError(f"privacy.delta={delta:.3g} is not below 1/N = {1.0 / records:.3g} for the N={records} "
                          "private training records (such a delta allows releasing a record outright); set "
                          "privacy.delta smaller, or null for 1/(10 N)")
    return delta


def _shares(cfg: Config, class_sizes: dict[str, int]) -> tuple[float, int, dict[str, int]]:
    """(delta, N, "<class>/<member>" -> the records it trains on), checked against the data."""
    p, T, batch = cfg.privacy, cfg.ensemble.members, cfg.train.batch_size
    records = sum(class_sizes.values())
    delta = resolve_delta(cfg, records)
    shares = {}
    for name, n_class in class_sizes.items():
        for t, n in enumerate([n_class] * T if p.partition == "shared" else share_sizes(n_class, T)):
            if batch > n:
                raise ConfigError(f"train.batch_size={batch} (the expected Poisson batch) exceeds the {n} records "
                                  f"member {t} of class {name} trains on (privacy.partition={p.partition}); set "
                                  f"train.batch_size <= {n}" + (" or fewer ensemble.members" if T > 1 else ""))
            shares[f"{name}/{t}"] = n
    return delta, records, shares


def check_privacy_data(cfg: Config, class_sizes: dict[str, int]) -> None:
    """What the data decides of privacy.* (delta below 1/N, a batch no larger than a member's records),
    without solving the noise: before any file is written (raygan.evaluation.job.prepare)."""
    if cfg.privacy.epsilon is not None:
        _shares(cfg, class_sizes)


def plan_privacy(cfg: Config, class_sizes: dict[str, int]) -> PrivacyPlan | None:
    """Every member's noise for privacy.epsilon (None when privacy is off), from each class's number of
    training records (``check_privacy_data``'s refusals first); the solve is cached."""
    p = cfg.privacy
    if p.epsilon is None:
        return None
    delta, records, shares = _shares(cfg, class_sizes)
    steps = cfg.train.steps * p.d_steps * (cfg.ensemble.members if p.partition == "shared" else 1)
    members = {key: MemberPrivacy(noise_multiplier=solve_noise_multiplier(p.epsilon, delta, cfg.train.batch_size / n,
                                                                          steps, p.accountant),
                                  max_grad_norm=p.max_grad_norm, sample_rate=cfg.train.batch_size / n, records=n,
                                  d_steps=p.d_steps)
               for key, n in shares.items()}
    return PrivacyPlan(delta=delta, records=records, members=members)


def member_data(cfg: Config, data: torch.Tensor, *, class_index: int, member: int) -> torch.Tensor:
    """The records a member of a class trains on under privacy: all of them (shared), or its part."""
    if cfg.privacy.partition == "shared":
        return data
    idx = member_records(data.shape[0], cfg.ensemble.members, member,
                         seeds.privacy_partition(cfg.train.seed, class_index))
    return data[idx]


__all__ = ["PrivacyPlan", "check_privacy_data", "class_epsilon", "compose_epsilon", "member_data", "member_records", "plan_privacy",
           "resolve_delta", "share_sizes", "solve_noise_multiplier"]
