"""What a person sees of the audit: the closest-pairs figure (seed 000 Figures 9/10), the printed
verdict and the report's privacy section.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from raygan.audit.inputs import ClassInputs
from raygan.audit.statistics import BOOSTED, FLAT_NOTE
from raygan.figures import figure, save_figure


def plot_closest_pairs(columns: list[dict], inputs: list[ClassInputs], path: Path) -> Path:
    """Seed 000 Figures 9/10: per ensemble size (or boosting step) a band of the closest pairs, the
    training image above the synthetic one, the pixel MSE under it."""
    def show(ax, img: torch.Tensor):
        img = ((img.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")

    k = max(1, max(len(c["pairs"]) for c in columns))
    fig = figure(figsize=(0.95 * k + 0.8, 2.15 * len(columns) + 0.3))
    axes = fig.subplots(2 * len(columns), k, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for g, col in enumerate(columns):
        axes[2 * g][0].set_ylabel(f"{col['group']}\nreal", fontsize=7)
        axes[2 * g + 1][0].set_ylabel("synthetic", fontsize=7)
        for i, p in enumerate(col["pairs"]):
            c = inputs[p["class_index"]]
            show(axes[2 * g][i], c.train[p["train_index"]])
            show(axes[2 * g + 1][i], c.synthetic[p["synthetic_row"]])
            axes[2 * g + 1][i].set_xlabel(f"{p['mse']:.2g}", fontsize=6, labelpad=1)
    fig.suptitle("closest (training, synthetic) pairs; pixel MSE below", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.2, rect=(0, 0, 1, 1 - 0.25 / fig.get_figheight()))
    return save_figure(fig, path, tight=False)


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _num(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3f}"


_ATTACKS = {"gan_leaks": "calibrated GAN-Leaks", "domias": "DOMIAS"}


def _roc(r: Optional[dict]) -> str:
    if r is None:
        return "n/a"
    low = min(r["fpr_resolution"], 1.0)
    tprs = ", ".join(f"TPR {_pct(v)} at {k.split('_')[2].replace('pct', ' %')} FPR"
                     for k, v in r.items() if k.startswith("tpr_at_"))
    text = (f"AUROC {r['auroc']:.3f}, {tprs} ({r['members']} members vs {r['nonmembers']} non-members; "
            f"FPRs below {_pct(low)} read as FPR 0)")
    if r.get("dp"):
        d = r["dp"]
        text += (f"; DP bound TPR <= e^{d['epsilon']:.3g} FPR + {d['delta']:.2g}: {d['verdict']} "
                 f"({d['points_outside']} of {d['operating_points']} operating points outside, epsilon "
                 f"lower bound {d['epsilon_lower_bound']:.3g} at 95 %)")
    elif "epsilon_lower_bound" in r:
        text += f"; epsilon lower bound {r['epsilon_lower_bound']:.3g} at 95 %"
    return text


def attack_lines(privacy: dict) -> list[str]:
    """The calibrated attacks, overall and per class, and the planted canaries (positive control)."""
    a = privacy.get("attacks")
    if not a:
        return []
    lines = [f"membership-inference attacks, calibrated by a reference of {a['reference']}:"]
    for name, label in _ATTACKS.items():
        lines.append(f"{label} ({a['spaces'][name]}), all classes: {_roc(a[name]['overall'])}")
        lines += [f"  {label} class {c}: {_roc(r)}" for c, r in a[name]["classes"].items()]
    for kind, c in (a.get("canaries") or {}).items():
        records = f", {c['records']} records each (group bound)" if c["records"] > 1 else ""
        lines += [f"planted {kind} canaries{records}, {_ATTACKS[name]}: {_roc(c[name])}" for name in _ATTACKS]
    if a.get("dp"):
        verdict = {"holds": "holds at every operating point",
                   "consistent": "holds within sampling noise (empirical excursions; the 95 % lower bound on "
                                 "epsilon stays within it)",
                   "violated": "is VIOLATED (the 95 % lower bound on epsilon exceeds it)"}[a["dp_verdict"]]
        lines.append(f"DP check: (epsilon, delta) = ({a['dp']['epsilon']:.3g}, {a['dp']['delta']:.2g}) {verdict}; "
                     f"largest epsilon lower bound {a['dp_epsilon_lower_bound']:.3g}")
    return lines


def _flat(c: dict) -> str:
    """" (n of flat images)" when some of a class's near-duplicates copy flat training images."""
    n = c.get("near_duplicates_of_flat", 0)
    return f" ({n} of flat images)" if n else ""


def class_rows(privacy: dict) -> list[str]:
    """One line per class and space: the numbers the verdict is made of."""
    rows = []
    for name, c in privacy["classes"].items():
        for space, s in c["spaces"].items():
            syn = s["synthetic"]
            dup = f", {syn['near_duplicates']} near-duplicates{_flat(c)}" if "near_duplicates" in syn else ""
            rows.append(f"{name} [{space}]: {_pct(syn['fraction_below_p1'])} below holdout p1, "
                        f"{_pct(syn['fraction_below_p5'])} below p5 (of {syn['n']} synthetic vs "
                        f"{s['holdout']['n']} holdout){dup}; median DCR synthetic "
                        f"{syn['dcr'].get('q50', float('nan')):.4g} vs holdout "
                        f"{s['holdout']['dcr'].get('q50', float('nan')):.4g}; MIA AUROC "
                        f"{_num(syn['mia_auroc'])}")
    return rows


def format_verdict(privacy: dict) -> str:
    t = privacy["thresholds"]
    head = (f"audit verdict: {privacy['verdict'].upper()}  (holdout: {privacy['holdout']} split; warn when "
            f"> {100 * t['warn_fraction_p1']:.1f} % (or the no-copy 99th percentile, if higher) of a "
            f"class's synthetic samples lie closer to a training image than the holdout's 1st "
            f"percentile, or > {t['warn_near_duplicates']} "
            f"near-duplicates with pixel MSE < {t['near_duplicate_mse']:g})")
    mia = ", ".join(f"{k} {_num(v)}" for k, v in privacy["mia_auroc"].items())
    lines = [head, *(f"  {r}" for r in class_rows(privacy)),
             f"  membership-inference AUROC (all classes; 0.5 = no leak): {mia}"]
    lines += [f"  {r}" for r in attack_lines(privacy) if not r.startswith("  ")]
    lines += [f"  WARN {r}" for r in privacy["reasons"]]
    notes = privacy.get("notes", [])
    flat = [r for r in notes if FLAT_NOTE in r]  # each class's own: all shown
    notes = [r for r in notes if r not in flat]  # the small-holdout ones, alike: the first two
    lines += [f"  note: {r}" for r in notes[:2]]
    if len(notes) > 2:
        lines.append(f"  note: ... {len(notes) - 2} more alike (all in privacy.json)")
    lines += [f"  note: {r}" for r in flat]
    return "\n".join(lines)


def privacy_markdown(privacy: dict) -> str:
    """The report's privacy section (raygan.reporting.report appends it when audit/privacy.json exists)."""
    t = privacy["thresholds"]
    lines = ["", "## Privacy: memorisation audit", "",
             f"**Verdict: {privacy['verdict'].upper()}.** Distances are mean squared differences to the "
             f"closest training image of the class (pixels on the [-1, 1] scale; domain: the real-trained "
             f"classifier's features); the reference is the {privacy['holdout']} split, which no GAN saw. "
             f"Warn above {100 * t['warn_fraction_p1']:.1f} % below the holdout's 1st percentile (raised "
             f"to the fraction a set that copies nothing exceeds in 1 audit of 100, for small holdouts) or "
             f"above {t['warn_near_duplicates']} near-duplicates (pixel MSE < {t['near_duplicate_mse']:g}).",
             "", "| class | space | synthetic | below holdout p1 | below p5 | near-duplicates | "
             "median DCR synthetic / holdout | MIA AUROC |", "|---|---|---|---|---|---|---|---|"]
    for name, c in privacy["classes"].items():
        for space, s in c["spaces"].items():
            syn = s["synthetic"]
            lines.append(f"| {name} | {space} | {syn['n']} | {_pct(syn['fraction_below_p1'])} | "
                         f"{_pct(syn['fraction_below_p5'])} | {syn.get('near_duplicates', '')}"
                         f"{_flat(c) if 'near_duplicates' in syn else ''} | "
                         f"{syn['dcr'].get('q50', float('nan')):.4g} / "
                         f"{s['holdout']['dcr'].get('q50', float('nan')):.4g} | {_num(syn['mia_auroc'])} |")
    word = "step" if privacy["method"] in BOOSTED else "member"
    lines += ["", f"Per {word} (pixels): below holdout p1 / near-duplicates / MIA AUROC", ""]
    for name, c in privacy["classes"].items():
        if "pixel" in c["spaces"]:
            lines.append(f"- {name}: " + "; ".join(
                f"{word} {m['member'] + 1 if word == 'step' else m['member']}: "
                f"{_pct(m['fraction_below_p1'])} / {m['near_duplicates']} / {_num(m['mia_auroc'])}"
                for m in c["spaces"]["pixel"]["members"]))
    mia = ", ".join(f"{k} {_num(v)}" for k, v in privacy["mia_auroc"].items())
    lines += ["", f"Membership inference from the distance to the nearest synthetic sample, all classes: "
              f"AUROC {mia} (0.5: the synthetic set does not reveal who was in the training set)."]
    attacks = attack_lines(privacy)
    if attacks:
        lines += ["", "### Membership-inference attacks", "", attacks[0][0].upper() + attacks[0][1:], "",
                  *(f"- {r.strip()}" for r in attacks[1:]), "",
                  "Higher scores mean member; TPR at a low FPR is what an attacker can claim with confidence "
                  "(Carlini et al.). The planted canaries (data.canaries) are the positive control: an attack "
                  "that catches them would catch a memorised record."]
    items = [f"- {r}" for r in privacy["reasons"]] + [f"- note: {r}" for r in privacy.get("notes", [])]
    lines += [""] + items if items else []
    if privacy.get("figure"):
        lines += ["", f"![closest pairs]({privacy['figure']})"]
    return "\n".join(lines) + "\n"

