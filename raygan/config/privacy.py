"""The privacy section's rules (privacy.*, issue 26), run with every other rule when a Config is built:
what DP-SGD on the discriminator and the ensemble's accountant (raygan.privacy) cannot cover is refused
in one line, before any work. Rules that need the data (delta against the number of records, a
member's share of them) are raygan.privacy.accountant's ``plan_privacy``, run before a file is written.

Each refusal says why the privacy claim would not hold: a principle of DESIGN.md (16) is that
everything that touched private data and shaped the released set is in the ledger or declared public.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from raygan.config.datasets import is_points
from raygan.config.fields import ConfigError

if TYPE_CHECKING:  # the schema builds through these checks
    from raygan.config.schema import Config

# gan.family -> why DP-SGD on its discriminator does not bound one record's influence (yet).
_FAMILIES_REFUSED = {
    "biggan": "its discriminator's spectral norm runs a power iteration on the weights that every "
              "record's gradient moves, outside the clipping",
    "ccgan": "its fakes are drawn for the real batch's (private) labels, and their gradient is not clipped",
    "pggan": "its discriminator's minibatch standard deviation mixes the records of a batch, so no "
             "record's gradient is its own",
}


def why_dp_not_packable(cfg: Config) -> str | None:
    """Why members cannot pack under privacy (None when privacy is off): raygan.gan.pack has no
    per-record clipping of a packed discriminator yet (docs/privacy.md, "Packs": what it costs)."""
    if cfg.privacy.epsilon is None:
        return None
    return (f"DP members do not pack yet (privacy.epsilon={cfg.privacy.epsilon:g}): a pack's grouped layers "
            "(raygan.gan.pack) give each member one gradient of its batch, and DP-SGD must clip each record's "
            "gradient, which only the solo step computes (torch.func over one member's D)")


def check_privacy_config(cfg: Config) -> None:
    """privacy.* on its own and against the rest of the config (only when privacy.epsilon is set), and
    data.canaries (the audit's planted positive control)."""
    p, g, t = cfg.privacy, cfg.gan, cfg.train
    d = cfg.data
    if d.group_column is not None and p.unit != "group":
        raise ConfigError(f"data.group_column={d.group_column!r} is set but privacy.unit={p.unit} (only the "
                          "group unit reads it); set privacy.unit=group with privacy.epsilon, or data.group_column: null")
    if p.unit == "group":
        if d.group_column is None:
            raise ConfigError("privacy.unit=group needs data.group_column: the column naming each record's "
                              "group (parquet, or an image folder's groups.csv), or folder for "
                              "data.root/<class>/<group>/; set it (e.g. data.group_column=patient_id)")
        if d.name not in ("parquet", "imagefolder"):
            raise ConfigError(f"privacy.unit=group with data.name={d.name}: only parquet inputs (a group column) "
                              "and image folders (data.group_column=folder, or a column of data.root/groups.csv) "
                              "carry groups; use one of those")
        if d.canaries:
            raise ConfigError(f"privacy.unit=group with data.canaries={d.canaries}: planted canaries belong to no "
                              "group; set data.canaries=0")
    if cfg.data.canaries and is_points(cfg.data.name):
        raise ConfigError(f"data.canaries={cfg.data.canaries} with data.name={cfg.data.name}: canaries are "
                          "planted images and the audit's attacks need images; set data.canaries=0")
    if p.epsilon is None:
        if p.delta is not None:
            raise ConfigError(f"privacy.delta={p.delta:g} is set but privacy.epsilon is null (privacy "
                              "off); set privacy.epsilon, or privacy.delta: null")
        if p.unit != "record":
            raise ConfigError(f"privacy.unit={p.unit} is set but privacy.epsilon is null (privacy off); set "
                              "privacy.epsilon, or privacy.unit: record")
        if p.d_steps != 1:
            raise ConfigError(f"privacy.d_steps={p.d_steps} is set but privacy.epsilon is null (privacy off: "
                              "D takes one step per G update, gan.g_steps_per_d_step sets the ratio); set "
                              "privacy.epsilon, or privacy.d_steps: 1")
        return
    if p.epsilon <= 0:
        raise ConfigError(f"privacy.epsilon={p.epsilon:g} must be > 0 (smaller is more private); set a "
                          "positive target such as 8, or null to turn privacy off")
    if p.delta is not None and not 0 < p.delta < 1:
        raise ConfigError(f"privacy.delta={p.delta:g} must lie in (0, 1) and below 1/N for N private "
                          "records; set it smaller, or null for 1/(10 N)")
    on = f"privacy.epsilon={p.epsilon:g}"
    if g.family in _FAMILIES_REFUSED:
        raise ConfigError(f"{on} with gan.family={g.family}: {_FAMILIES_REFUSED[g.family]}; use "
                          "gan.family=dcgan, fc or mlp2d")
    if g.r1_gamma > 0:
        raise ConfigError(f"{on} with gan.r1_gamma={g.r1_gamma:g}: the R1 penalty differentiates D at each "
                          "real record outside the clipping; set gan.r1_gamma=0")
    if cfg.ensemble.method != "independent":
        raise ConfigError(f"{on} with ensemble.method={cfg.ensemble.method}: its data weights are computed "
                          "from the private records outside the accountant; set ensemble.method=independent")
    if t.recursive_rounds:
        raise ConfigError(f"{on} with train.recursive_rounds={t.recursive_rounds}: later rounds train on the "
                          "records again, which the budget does not count; set train.recursive_rounds=0")
    if t.divergence_retries:
        raise ConfigError(f"{on} with train.divergence_retries={t.divergence_retries}: a retried member "
                          "trains on the same records again and spends its budget twice; set "
                          "train.divergence_retries=0")
    if t.compile or t.precision != "fp32":
        raise ConfigError(f"{on}: the per-record gradients run uncompiled in fp32 (not with train.compile "
                          "or train.precision=bf16 yet); set train.compile=false and train.precision=fp32")
    if cfg.sweep.gan_space:
        raise ConfigError(f"{on} with sweep.gan_space: a GAN search picks settings by private validation "
                          "data, which no budget counts; tune on public data and remove sweep.gan_space")


__all__ = ["check_privacy_config", "why_dp_not_packable"]
