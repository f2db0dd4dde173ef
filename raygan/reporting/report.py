"""`raygan report RUN`: plots and a markdown summary of a run folder, the seeds' numbers beside ours.

Reads the run folder (config.yaml, manifest.json, eval/*.json, members/*/samples.png, the shards) and
writes plots/*.png and report.md; every figure is also an MLflow artifact when tracking is on. Seed
001's t-SNE map (raygan.metrics.tsne) also needs the real training split: where it cannot be loaded,
or the data are points, the report says so in one line instead. A number
measured on samples drawn anew from the generators instead of the shipped shards (its ``source`` in
evaluation.json is "regenerated") is marked "(regenerated)" beside it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from raygan.config import ConfigError
from raygan.config.loading import read_yaml
from raygan.figures import figure, save_figure
from raygan.runs import RunFolder, atomic_write_text, sha256_file

# Seed 000 Figures 2/6/7 are plots; what the text states about them is what we can put beside ours.
PAPER_NOTES = {
    "tstr": "Seed 000 (Figures 2, 6, 7): TSTR accuracy rises with T and approaches the real-data line; "
            "AdaGAN is never significantly better than independent members.",
    "seed001": "Seed 001 (CIFAR-10, BigGAN): real 94.26 %; best single GAN 88.56 %; 2/3/4/5 independent "
               "GANs 90.24 / 90.61 / 90.56 / 91.04 % (Tables 1, 3).",
    "seed002": "Seed 002 (MNIST, one GAN per digit): adding synthetic data helps most at 250-500 real "
               "images per class and the best ratio falls as the real set grows (Figure 2).",
    "quality": "Seed 001 Table 2 (CIFAR-10, 200 same-class pairs per class): MS-SSIM x 10^2 real "
               "40.5, BigGAN 42.2, truncated BigGAN 44.5 / 61.1; FID real 10.31, BigGAN 16.97. Seed 004 "
               "Table 1 (CIFAR-10, one DCGAN per class): per-class FID 27.8 (truck) to 73.2 (bird). "
               "Seed 003 (MNIST): classifier score (its \"inception score\") 97.6 % for the best CCGAN; "
               "PCA saturates near 64 components.",
}


def plot_accuracy_vs_t(ev: dict, path: Path) -> Path:
    """Seed 000 Figure 2: TSTR accuracy against ensemble size with error bars, TRTR as a band."""
    rows = ev["tstr_curve"]
    T = [r["T"] for r in rows]
    fig = figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.errorbar(T, [100 * r["test_acc_mean"] for r in rows], yerr=[100 * r["test_acc_std"] for r in rows],
                marker="o", capsize=3, label=f"TSTR, {ev['method']} ensemble")
    ref, sd = 100 * ev["trtr"]["test_acc_mean"], 100 * ev["trtr"]["test_acc_std"]
    ax.axhline(ref, color="k", ls="--", label="TRTR (real training data)")
    ax.axhspan(ref - sd, ref + sd, color="k", alpha=0.1)
    ax.set_xlabel("ensemble size T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(T)
    ax.set_title(f"{ev['dataset']}: {ev['classifier']}, {ev['repeats']} repeats")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_training_curves(ev: dict, path: Path) -> Path:
    """Seed 000 Figure 3: test accuracy over classifier epochs for each T (mean over repeats)."""
    fig = figure(figsize=(5, 3.5))
    ax = fig.subplots()
    for r in ev["tstr_curve"]:
        curve = 100 * np.mean(np.array(r["histories"]), axis=0)
        ax.plot(np.arange(1, len(curve) + 1), curve, label=f"T = {r['T']}")
    real = 100 * np.mean(np.array(ev["trtr"]["histories"]), axis=0)
    ax.plot(np.arange(1, len(real) + 1), real, "k--", label="real")
    ax.set_xlabel("classifier epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def _collapse_lines(manifest: dict) -> list[str]:
    """A line naming the collapsed members (ensemble.on_collapse), with their diversity and decision."""
    entries = {**manifest.get("diverged", {}), **manifest.get("members", {})}
    bad = {key: e for key, e in sorted(entries.items()) if e.get("collapse", {}).get("collapsed")}
    if not bad:
        return []
    threshold = next(iter(bad.values()))["collapse"]["threshold"]
    named = ", ".join(f"{key} ({e['diversity']:.3f}, {e['collapse']['decision']})" for key, e in bad.items())
    return [f"- collapsed members (diversity below {threshold:g} of the real class's; "
            f"raygan.metrics.collapse): {named}"]


def _diversity_label(entry: dict | None) -> tuple[str, str]:
    """The caption under a member's grid: its diversity (raygan.ensemble.collapse) and, when it is
    collapsed, what was done; red when collapsed."""
    if not entry or "diversity" not in entry:
        return "", "black"
    verdict = entry.get("collapse", {})
    if not verdict.get("collapsed"):
        return f"diversity {entry['diversity']:.2f}", "black"
    return f"diversity {entry['diversity']:.2f}\nCOLLAPSED ({verdict.get('decision')})", "red"


def plot_member_grids(run: RunFolder, path: Path) -> Path | None:
    """Every member's sample grid: one row per class, one column per member, each with its diversity
    below it (collapsed members flagged in red)."""
    from PIL import Image
    grids = sorted(run.path.glob("members/*/*/samples.png"))
    if not grids:
        return None
    manifest = run.manifest()
    entries = {**manifest.get("diverged", {}), **manifest.get("members", {})}
    classes = sorted({p.parent.parent.name for p in grids})
    members = sorted({int(p.parent.name) for p in grids})
    fig = figure(figsize=(1.6 * len(members), 1.6 * len(classes)))
    axes = fig.subplots(len(classes), len(members), squeeze=False)
    for i, c in enumerate(classes):
        for j, t in enumerate(members):
            ax = axes[i][j]
            ax.axis("off")
            p = run.path / "members" / c / str(t) / "samples.png"
            if p.exists():
                ax.imshow(np.asarray(Image.open(p, formats=["PNG"])), cmap="gray", interpolation="nearest")
            if i == 0:
                ax.set_title(f"member {t}", fontsize=8)
            label, colour = _diversity_label(entries.get(f"{c}/{t}"))
            ax.text(0.5, -0.02, label, transform=ax.transAxes, ha="center", va="top", fontsize=6,
                    color=colour)
        axes[i][0].text(-0.1, 0.5, c, transform=axes[i][0].transAxes, ha="right", va="center",
                        fontsize=8)
    return save_figure(fig, path)


TSNE_HEADING = "## Real vs synthetic: t-SNE (seed 001, Figure 1)"


def _tsne_left_out(run: RunFolder, cfg) -> str | None:
    from raygan.data import is_points
    from raygan.synthesis.shards import complete

    shards = run.manifest().get("shards")
    if is_points(cfg.data.name):
        return f"{cfg.data.name} holds 2-D points, not images (no domain classifier to embed them)"
    if cfg.eval.tsne_points == 0:
        return "eval.tsne_points is 0"
    if not shards:
        return "the run has no synthetic shards yet"
    if not complete(run, shards.get("spec")):
        return "the shards are incomplete or changed since they were written (checksums unlike manifest.json's)"
    return None


def tsne_section(run: RunFolder, path: Path) -> tuple[Path | None, list[str]]:
    """Seed 001 Figure 1 (raygan.metrics.tsne) as ``path`` and its report lines, or one line saying
    why it is left out (points, no shards, eval.tsne_points = 0, real data not loadable here)."""
    from raygan import seeds
    from raygan.config import ConfigError, from_dict
    from raygan.data import load_dataset
    from raygan.metrics.tsne import plot_tsne, tsne_map

    cfg = from_dict(run.saved_config())
    why = _tsne_left_out(run, cfg)
    if why is None:
        try:
            dataset = load_dataset(cfg.data)
        except (ConfigError, FileNotFoundError) as err:
            why = f"the real training split could not be loaded here ({err})"
    if why is not None:
        return None, [TSNE_HEADING, "", f"Not drawn: {why}.", ""]
    per_class = cfg.eval.tsne_points
    tsne = tsne_map(dataset, run.path / "shards", per_class=per_class, seed=seeds.tsne(cfg.eval.seed),
                    run_dir=run.path)
    n_fake = int(tsne.synthetic.sum())
    plot_tsne(tsne, path, title=f"{cfg.data.name}: t-SNE of domain-classifier features")
    return path, [TSNE_HEADING, "",
                  f"{len(tsne.synthetic) - n_fake} real samples (training split) and {n_fake} synthetic "
                  f"ones (the shards as written), at most {per_class} of each per class, in the features "
                  "of the run's domain classifier; one colour per class, o real, x synthetic. Circles "
                  "with no crosses near them are real modes the generators missed; crosses far from "
                  "every circle are samples unlike the real ones.", "", f"![tsne](plots/{path.name})", ""]


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _source(row: dict) -> str:
    """The mark beside a number measured on samples drawn anew instead of the shipped shards."""
    return " (regenerated)" if row.get("source") == "regenerated" else ""


REGENERATED_NOTE = ("(regenerated): the shards as written hold too few rows of members 0..T-1 for this "
                    "T's mixture, so its samples were drawn anew from the generators (floats, not the "
                    "shipped 8-bit PNGs); every other synthetic number is measured on the shards as "
                    "written.")


# (value key, column title, format) of the sample-quality tables, in the order shown.
QUALITY_COLUMNS = [
    ("fid", "FID (Inception)", lambda v: f"{v:.2f}"),
    ("kid", "KID x 10^3 (Inception)", lambda v: f"{1e3 * v:.2f}"),
    ("domain_fd", "domain FD", lambda v: f"{v:.3f}"),
    ("precision", "precision", lambda v: f"{v:.3f}"),
    ("recall", "recall", lambda v: f"{v:.3f}"),
    ("density", "density", lambda v: f"{v:.3f}"),
    ("coverage", "coverage", lambda v: f"{v:.3f}"),
    ("msssim", "MS-SSIM x 10^2", lambda v: f"{100 * v:.1f}"),
    ("classifier_score", "classifier score %", lambda v: f"{100 * v:.1f}"),
]
PER_CLASS_KEYS = ("fid", "domain_fd", "classifier_score", "msssim")


def quality_markdown(q: dict) -> list[str]:
    """The sample-quality section: a row per set (overall), then per-class tables (seed 004 Table 1)."""
    sets = q["sets"]
    first = next(iter(sets.values()), None)
    if first is None:
        return []
    cols = [c for c in QUALITY_COLUMNS if c[0] in first["overall"]]
    ref = ", ".join(f"{k}: {v}" for k, v in q["reference_sizes"].items())
    spaces: dict[str, list[str]] = {}
    for key, space in q["feature_spaces"].items():
        spaces.setdefault(space, []).append(key)
    lines = ["## Sample quality", "",
             f"Reference: {q['reference']}; images per class {ref}; every set capped at "
             f"{q['metric_samples']} per class. \"real (val)\" is the real validation split: the floor "
             "of each metric.", "",
             "| set | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, row in sets.items():
        lines.append(f"| {label}{_source(row)} | " + " | ".join(c[2](row["overall"][c[0]]) for c in cols)
                     + " |")
    if any(_source(row) for row in sets.values()):
        lines += ["", REGENERATED_NOTE]
    lines += ["", "Feature spaces:", ""]
    lines += [f"- {', '.join(keys)}: {space}" for space, keys in spaces.items()]
    lines += ["", "Domain FD is a Frechet distance in the features of a classifier trained on this run's "
              "real data: it is not comparable with Inception FID (or across datasets). FID, KID, "
              "domain FD and PRDC pool all classes in the overall row; MS-SSIM and the classifier score "
              "average the per-class values.", ""]
    if q.get("pca"):
        comps = ", ".join(f"{k}: {v}" for k, v in q["pca"]["components"].items())
        lines += [f"PCA baseline (seed 003): components per class {comps}.", ""]
    for key in PER_CLASS_KEYS:
        col = next((c for c in QUALITY_COLUMNS if c[0] == key), None)
        if key not in first["overall"]:
            continue
        lines += [f"### {col[1]} per class", "", "| class | " + " | ".join(sets) + " |",
                  "|---" * (len(sets) + 1) + "|"]
        for name in first["per_class"]:
            lines.append(f"| {name} | " + " | ".join(col[2](sets[s]["per_class"][name][key])
                                                     for s in sets) + " |")
        lines.append("")
    return lines


def markdown(run: RunFolder, ev: dict | None, figures: list[Path], tsne: list[str] = ()) -> str:
    cfg = read_yaml((run.path / "config.yaml").read_text(), str(run.path / "config.yaml"))
    manifest = run.manifest()
    lines = [f"# raygan report: {run.path.name}", "",
             f"- data: {cfg['data']['name']} (grouping {cfg['data']['grouping'] or 'one class per label'})",
             f"- ensemble: {cfg['ensemble']['method']}, T = {cfg['ensemble']['members']}, "
             f"GAN {cfg['gan']['family']}, {cfg['train']['steps']} steps per member",
             f"- members trained: {len(manifest.get('members', {}))}; synthetic rows: "
             f"{manifest.get('shards', {}).get('rows', 0)}", *_collapse_lines(manifest), ""]
    if ev:
        lines += [f"## Downstream accuracy ({ev['classifier']}, {ev['repeats']} repeats, real test split)",
                  "", "Epoch picked on the real validation split; seed 000's protocol (best test epoch) "
                  "beside it.", "",
                  "| training data | test accuracy % | best-test-epoch % (seed 000's protocol) |",
                  "|---|---|---|",
                  f"| real (TRTR) | {_pct(ev['trtr']['test_acc_mean'], ev['trtr']['test_acc_std'])} | "
                  f"{_pct(ev['trtr']['best_test_acc_mean'], ev['trtr']['best_test_acc_std'])} |"]
        for r in ev["tstr_curve"]:
            name = "single GAN (T = 1)" if r["T"] == 1 else f"EnsGAN-{r['T']}"
            lines.append(f"| synthetic, {name} | {_pct(r['test_acc_mean'], r['test_acc_std'])}{_source(r)} | "
                         f"{_pct(r['best_test_acc_mean'], r['best_test_acc_std'])}{_source(r)} |")
        if ev.get("pca_tstr"):
            p = ev["pca_tstr"]
            lines.append(f"| synthetic, PCA baseline (seed 003) | "
                         f"{_pct(p['test_acc_mean'], p['test_acc_std'])} | "
                         f"{_pct(p['best_test_acc_mean'], p['best_test_acc_std'])} |")
        if any(_source(r) for r in ev["tstr_curve"]):
            lines += ["", REGENERATED_NOTE]
        trts_on = {"shards": " (on the shards as written)", "regenerated": " (regenerated)"}
        lines += ["", f"TRTS (real-trained classifier on synthetic samples): {100 * ev['trts']:.1f} %"
                  f"{trts_on.get(ev.get('trts_source'), '')}", ""]
        if ev.get("recursive"):
            lines += ["## Recursive training (seed 002, Experiment 3)", "",
                      "Each round trains the GANs anew on the previous round's set plus "
                      f"{100 * cfg['train']['recursive_fraction']:g} % synthetic images. Seed 002 saw "
                      "no gain over the single-iteration GANs.", "",
                      "| round | GAN training set per class (mean) | TSTR test accuracy % |", "|---|---|---|"]
            lines += [f"| {r['round']} | "
                      f"{'-' if r['train_size_mean'] is None else format(r['train_size_mean'], '.0f')} | "
                      f"{_pct(r['test_acc_mean'], r['test_acc_std'])}{_source(r)} |" for r in ev["recursive"]]
            lines.append("")
        if ev.get("quality"):
            lines += quality_markdown(ev["quality"])
        if ev.get("mixing"):
            lines += ["## Mixed training (real + ratio x synthetic, seed 002)", "",
                      "| ratio | test accuracy % |", "|---|---|"]
            lines += [f"| {r['ratio']:g} | {_pct(r['test_acc_mean'], r['test_acc_std'])} |"
                      for r in ev["mixing"]]
            lines.append("")
        notes = ["tstr", "seed001", "seed002"] + (["quality"] if ev.get("quality") else [])
        lines += ["## The papers", ""] + [f"- {PAPER_NOTES[k]}" for k in notes] + [
                  "", "No seed reports the bundled 8x8 digits, so their numbers are context, not a "
                  "like-for-like comparison.", ""]
    table1 = run.path / "eval" / "table1.md"
    if table1.exists():
        lines += ["## Seed 000 Table 1 (25-Gaussian grid), ours beside the paper's", "",
                  table1.read_text(), ""]
    lines += list(tsne)
    lines += ["## Figures", ""] + [f"![{p.stem}](plots/{p.name})" for p in figures]
    return "\n".join(lines) + "\n"


def check_shards_as_written(run: RunFolder, measured: bool) -> None:
    """The shards are the ones manifest.json records (every file there, none added, each with its
    sha256), else a one-line ConfigError: the report says its numbers and verdict are measured on the
    shards as written, which would then describe a set that is gone. ``measured``: evaluation or audit
    results exist, so shards must exist as well. Shards that the manifest does not record (written
    before it did) are taken as they are, as raygan.audit.inputs.shard_checksums takes them."""
    recorded = {name: info.get("sha256") for name, info in
                ((run.manifest().get("shards") or {}).get("files") or {}).items()}
    found = {p.name: p for p in sorted((run.path / "shards").glob("*.parquet"))}
    missing = sorted(set(recorded) - set(found))
    added = sorted(set(found) - set(recorded))
    changed = sorted(n for n in set(found) & set(recorded) if recorded[n] and sha256_file(found[n]) != recorded[n])
    if not recorded:  # shards the manifest does not record are taken as they are, as the audit does
        if found or not measured:
            return
        problem = "there are no shards, yet eval/ or audit/ holds results measured on them"
    elif missing or added or changed:
        problem = "; ".join(f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                            for what, names in (("missing", missing), ("added", added), ("changed", changed))
                            if names)
    else:
        return
    raise ConfigError(f"the shards of {run.path} are not the ones manifest.json records ({problem}), so "
                      "the report's numbers and verdict would describe a set that is not there; nothing was "
                      "written: remake them with `raygan synthesize`, then `raygan evaluate` (and `raygan "
                      "audit`) for this run")


def write_report(run_dir: str | Path, tracker=None) -> Path:
    """Plots + report.md for a run folder; returns the report's path. Everything is checked first (the
    run folder, its manifest, the shards against it): a refusal writes nothing."""
    run = RunFolder(Path(run_dir))
    if not (run.path / "config.yaml").exists():
        raise FileNotFoundError(f"{run.path} is not a raygan run folder (no config.yaml); pass "
                                "<output.root>/<experiment>/<run>")
    ev_path = run.path / "eval" / "evaluation.json"
    ev = json.loads(ev_path.read_text()) if ev_path.exists() else None
    check_shards_as_written(run, measured=ev is not None or (run.path / "audit" / "privacy.json").exists())
    plots = run.path / "plots"
    figures = []
    if ev:
        figures += [plot_accuracy_vs_t(ev, plots / "accuracy_vs_T.png"),
                    plot_training_curves(ev, plots / "training_curves.png")]
    grid = plot_member_grids(run, plots / "member_grids.png")
    if grid is not None:
        figures.append(grid)
    if (plots / "grid_members.png").exists():
        figures.append(plots / "grid_members.png")
    tsne, tsne_lines = tsne_section(run, plots / "tsne.png")
    path = run.path / "report.md"
    atomic_write_text(path, markdown(run, ev, figures, tsne=tsne_lines))
    append_privacy_section(run, path)
    if tracker is not None:
        for f in figures + ([tsne] if tsne is not None else []) + [path]:
            tracker.log_artifact(f)
    return path


def append_privacy_section(run: RunFolder, report: Path) -> None:
    """The formal guarantee (the privacy ledger's release claim, or that there is none), then the
    memorisation audit's verdict and numbers (raygan audit), when audit/privacy.json exists."""
    from raygan.privacy.ledger import run_claim

    text = report.read_text() + claim_markdown(run_claim(run))
    privacy = run.path / "audit" / "privacy.json"
    if privacy.exists():
        from raygan.audit.render import privacy_markdown
        text += privacy_markdown(json.loads(privacy.read_text()))
    atomic_write_text(report, text)


def claim_markdown(claim: dict) -> str:
    """report.md's "Differential privacy" section from raygan.privacy.ledger.release_claim."""
    lines = ["", "## Differential privacy", "", claim["statement"] + "."]
    if claim["differential_privacy"]:
        lines += ["", f"- epsilon {claim['epsilon']:.4g} (target {claim['target_epsilon']:g}), "
                      f"delta {claim['delta']:.3g}; unit: {claim['unit']}; adjacency: {claim['adjacency']}",
                  f"- accountant: {claim['accountant']}; partition: {claim['partition']}",
                  "- declared public:", *(f"  - {d}" for d in claim["declared_public"]),
                  "- not covered:", *(f"  - {d}" for d in claim["not_covered"])]
    return "\n".join(lines) + "\n"
