"""The memorisation audit: does the synthetic set copy its training images? (`raygan audit RUN`)

Seed 000 (Supplement C, Figures 9 and 10) searched every (real, synthetic) pair for the smallest mean
squared pixel difference and saw AdaGAN replicate training images after about 7 boosting steps, while
independent ensembles did not. This module owns that search and gives its numbers a reference:

- distance to closest record (DCR): for each synthetic sample, the mean squared difference to the
  nearest training image of its class, in pixel space ([-1, 1] scale) and in the domain feature space
  (raygan.metrics.domain). The same distance from a real holdout split no GAN saw is the reference: a
  generator that does not copy puts about 1 % of its samples below the holdout's 1st percentile;
- near-duplicates: synthetic samples within audit.near_duplicate_mse of a training image (pixels);
- membership inference: the AUROC of telling training from holdout images by their distance to the
  nearest synthetic sample (training images closer => a leak); 0.5 means no leak, 1 a copied set.

The search is exhaustive and chunked: blocks of chunk_size x chunk_size distances on a torch device,
never the N x M matrix. raygan.cluster.audit runs `audit_class` as one Ray task per class; the
summary, figure and verdict are made here from what the tasks return.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .config import Config, ConfigError
from .metrics.memorisation import member_segments, mia_auroc, nearest, null_fraction_below_p1
from .runfolder import RunFolder, atomic_write_bytes, atomic_write_text
from .train import resolve_device

SPACES = ("pixel", "domain")
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95)
BOOSTED = ("adagan", "reweight")  # methods whose members are steps: the figure shows each step alone
NEAR_DUPLICATES_LISTED = 100      # per class in privacy.json; the count is always exact


@dataclass
class SpaceDistances:
    """The four searches of one class in one feature space (mean squared differences)."""
    synthetic_dcr: np.ndarray         # (n_syn,) each synthetic sample to its closest training image
    synthetic_nearest: np.ndarray     # (n_syn,) that image's index in the class's training split
    holdout_dcr: np.ndarray           # (n_holdout,) the reference: holdout image to closest training
    train_to_synthetic: np.ndarray    # (n_train, n_members) to the closest sample of each member
    holdout_to_synthetic: np.ndarray  # (n_holdout, n_members)


@dataclass
class ClassAudit:
    class_name: str
    members: np.ndarray      # (n_syn,) member of each audited synthetic row (sorted)
    shard_index: np.ndarray  # (n_syn,) the row's `index` column in the shards
    spaces: dict             # space name -> SpaceDistances


def audit_class(class_name: str, train: torch.Tensor, holdout: torch.Tensor, synthetic: torch.Tensor,
                members: np.ndarray, *, shard_index: Optional[np.ndarray] = None,
                spaces: tuple | list = ("pixel",), domain_model: Optional[torch.nn.Module] = None,
                chunk_size: int = 2048, device: str | torch.device = "cpu") -> ClassAudit:
    """Every search the audit needs for one class; synthetic rows sorted by member."""
    from .metrics.domain import embed

    ids, segs = member_segments(members)
    dev = resolve_device(device)
    out = {}
    for space in spaces:
        if space == "domain":
            if domain_model is None:
                raise ValueError("the domain space needs the domain classifier (domain_model=)")
            tr, ho, sy = (embed(domain_model, x, device=dev) for x in (train, holdout, synthetic))
        else:
            tr, ho, sy = train, holdout, synthetic
        kw = {"chunk_size": chunk_size, "device": dev}
        syn_d, syn_i = nearest(sy, tr, **kw)
        hold_d, _ = nearest(ho, tr, **kw)
        out[space] = SpaceDistances(syn_d.numpy(), syn_i.numpy(), hold_d.numpy(),
                                    nearest(tr, sy, segments=segs, **kw)[0].numpy(),
                                    nearest(ho, sy, segments=segs, **kw)[0].numpy())
    index = np.arange(len(members)) if shard_index is None else np.asarray(shard_index)
    return ClassAudit(class_name, np.asarray(members), index, out)


# --- the numbers ------------------------------------------------------------------------------------
def _quantiles(d: np.ndarray) -> dict:
    return {f"q{round(100 * q):02d}": float(np.quantile(d, q)) for q in QUANTILES} if len(d) else {}


def _stats(sd: SpaceDistances, rows: np.ndarray, cols: list[int], p1: float, p5: float,
           near_mse: Optional[float]) -> dict:
    d = sd.synthetic_dcr[rows]
    out = {"n": int(len(d)), "fraction_below_p1": float(np.mean(d < p1)) if len(d) else None,
           "fraction_below_p5": float(np.mean(d < p5)) if len(d) else None, "dcr": _quantiles(d),
           "mia_auroc": mia_auroc(sd.train_to_synthetic[:, cols].min(1),
                                  sd.holdout_to_synthetic[:, cols].min(1))}
    if near_mse is not None:
        out["near_duplicates"] = int(np.sum(d < near_mse))
    return out


def summarise_class(a: ClassAudit, cfg: Config) -> dict:
    """Per space: holdout reference, the whole synthetic set, each member and each first-T ensemble."""
    c = cfg.audit
    ids, _ = member_segments(a.members)
    result: dict = {"n_synthetic": int(len(a.members)), "spaces": {}, "reasons": [], "notes": []}
    for space, sd in a.spaces.items():
        p1, p5 = (float(v) for v in np.quantile(sd.holdout_dcr, [0.01, 0.05]))
        near = c.near_duplicate_mse if space == "pixel" else None
        every = np.arange(len(a.members))
        s = {"holdout": {"n": int(len(sd.holdout_dcr)), "p1": p1, "p5": p5,
                         "dcr": _quantiles(sd.holdout_dcr),
                         "null_fraction_below_p1_q99": null_fraction_below_p1(len(sd.holdout_dcr))},
             "synthetic": _stats(sd, every, list(range(len(ids))), p1, p5, near),
             "members": [{"member": m, **_stats(sd, np.flatnonzero(a.members == m), [j], p1, p5, near)}
                         for j, m in enumerate(ids)],
             "ensemble_sizes": [{"T": j + 1, **_stats(sd, np.flatnonzero(a.members <= m),
                                                      list(range(j + 1)), p1, p5, near)}
                                for j, m in enumerate(ids)]}
        result["spaces"][space] = s
        result["n_train"] = int(sd.train_to_synthetic.shape[0])
        # The warn limit is audit.warn_fraction_p1, raised to what a set that copies nothing reaches
        # in 1 audit of 100 when the holdout is too small for its 1st percentile to be sharp.
        frac, bound = s["synthetic"]["fraction_below_p1"], s["holdout"]["null_fraction_below_p1_q99"]
        limit = max(c.warn_fraction_p1, bound)
        s["warn_limit_below_p1"] = limit
        if space == "pixel" and bound > c.warn_fraction_p1:
            result["notes"].append(f"{a.class_name}: the holdout's 1st percentile rests on "
                                   f"{len(sd.holdout_dcr)} images; a set that copies nothing has more "
                                   f"than {100 * bound:.1f} % below it in 1 audit of 100, so this "
                                   f"class warns above {100 * limit:.1f} % (audit.warn_fraction_p1 "
                                   f"{100 * c.warn_fraction_p1:.1f} %); near-duplicates stay exact")
        if frac is not None and frac > limit:
            result["reasons"].append(f"{a.class_name}: {space}: {100 * frac:.1f} % of synthetic samples "
                                     f"are closer to a training image than the holdout's 1st "
                                     f"percentile (warn above {100 * limit:.1f} %)")
        if near is not None:
            dup = np.flatnonzero(sd.synthetic_dcr < near)
            dup = dup[np.argsort(sd.synthetic_dcr[dup], kind="stable")]
            result["near_duplicates"] = [
                {"synthetic_row": int(i), "member": int(a.members[i]), "index": int(a.shard_index[i]),
                 "train_index": int(sd.synthetic_nearest[i]), "mse": float(sd.synthetic_dcr[i])}
                for i in dup[:NEAR_DUPLICATES_LISTED]]
            if len(dup) > c.warn_near_duplicates:
                result["reasons"].append(f"{a.class_name}: {len(dup)} near-duplicate(s) of training "
                                         f"images (pixel MSE < {near:g}; warn above "
                                         f"{c.warn_near_duplicates})")
    result["verdict"] = "warn" if result["reasons"] else "pass"
    return result


def groups(method: str, members: list[int]) -> list[tuple[str, list[int]]]:
    """The figure's columns: first-T ensembles, or each boosting step's own member (seed 000 Fig. 9)."""
    if method in BOOSTED:
        return [(f"step {m + 1}", [m]) for m in members]
    return [(f"T = {j + 1}", members[:j + 1]) for j in range(len(members))]


def closest_pairs(audits: list[ClassAudit], method: str, k: int) -> list[dict]:
    """Per column, the k (synthetic, training) pairs with the smallest pixel MSE over all classes."""
    members = sorted({int(m) for a in audits for m in a.members})
    out = []
    for label, keep in groups(method, members):
        pairs = []
        for c, a in enumerate(audits):
            sd = a.spaces["pixel"]
            rows = np.flatnonzero(np.isin(a.members, keep))
            rows = rows[np.argsort(sd.synthetic_dcr[rows], kind="stable")[:k]]
            pairs += [{"class": a.class_name, "class_index": c, "synthetic_row": int(i),
                       "member": int(a.members[i]), "index": int(a.shard_index[i]),
                       "train_index": int(sd.synthetic_nearest[i]), "mse": float(sd.synthetic_dcr[i])}
                      for i in rows]
        out.append({"group": label, "members": list(keep),
                    "pairs": sorted(pairs, key=lambda p: p["mse"])[:k]})
    return out


def summarise(audits: list[ClassAudit], cfg: Config, *, dataset_name: str) -> dict:
    """privacy.json's content: per class, pooled membership inference, the verdict and its reasons."""
    classes = {a.class_name: summarise_class(a, cfg) for a in audits}
    pooled = {}
    for space in cfg.audit.spaces:
        tr = np.concatenate([a.spaces[space].train_to_synthetic.min(1) for a in audits])
        ho = np.concatenate([a.spaces[space].holdout_to_synthetic.min(1) for a in audits])
        pooled[space] = mia_auroc(tr, ho)
    reasons = [r for c in classes.values() for r in c["reasons"]]
    notes = [r for c in classes.values() for r in c["notes"]]
    return {"verdict": "warn" if reasons else "pass", "reasons": reasons, "notes": notes,
            "dataset": dataset_name,
            "method": cfg.ensemble.method, "holdout": cfg.audit.holdout, "spaces": list(cfg.audit.spaces),
            "thresholds": {"warn_fraction_p1": cfg.audit.warn_fraction_p1,
                           "warn_near_duplicates": cfg.audit.warn_near_duplicates,
                           "near_duplicate_mse": cfg.audit.near_duplicate_mse},
            "mia_auroc": pooled, "classes": classes}


# --- the run folder ---------------------------------------------------------------------------------
def applicable(cfg: Config) -> bool:
    """Only images are audited: the 2D grid's points have no training images to copy."""
    return cfg.data.name != "grid2d"


def check_run(run_dir: str | Path) -> RunFolder:
    """The run folder with its config and synthetic shards, or a ConfigError saying what to do."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"run folder {path} does not exist; pass <output.root>/<experiment>/<run> of "
                          "a trained run")
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{path} is not a raygan run folder (no config.yaml); pass "
                          "<output.root>/<experiment>/<run>")
    shards = path / "shards"
    if not shards.is_dir() or not any(shards.glob("*.parquet")):
        raise ConfigError(f"{shards} holds no synthetic shards; run `raygan synthesize` (or the "
                          "pipeline) for this run first")
    return RunFolder(path)


def check_config(cfg: Config) -> None:
    unknown = [s for s in cfg.audit.spaces if s not in SPACES]
    if unknown or not cfg.audit.spaces:
        raise ConfigError(f"audit.spaces: {cfg.audit.spaces!r}; choose one or more of {', '.join(SPACES)}")


@dataclass
class ClassInputs:
    name: str
    train: torch.Tensor
    holdout: torch.Tensor
    synthetic: torch.Tensor
    members: np.ndarray      # sorted ascending
    shard_index: np.ndarray


def load_inputs(cfg: Config, run: RunFolder, dataset=None) -> list[ClassInputs]:
    """Per class: the training split, the holdout split and the synthetic rows with their members."""
    import pyarrow.parquet as pq

    from .data import load_dataset
    from .data.shards import read_shards

    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    x, y, _ = read_shards(run.path / "shards", classes=dataset.classes)
    # read_shards sorts rows by (label, member, index) but returns no member column: read it, sorted alike
    keys = pq.read_table(str(run.path / "shards"), columns=["label", "member", "index"],
                         partitioning=None).sort_by([("label", "ascending"), ("member", "ascending"),
                                                     ("index", "ascending")])
    labels, members, index = (keys[c].to_numpy() for c in ("label", "member", "index"))
    if not np.array_equal(labels, y.numpy()):
        raise ValueError(f"{run.path / 'shards'}: labels disagree between the image and key columns")
    if tuple(x.shape[1:]) != tuple(dataset.sample_shape):
        raise ConfigError(f"synthetic images {tuple(x.shape[1:])} do not match the real ones "
                          f"{tuple(dataset.sample_shape)}; resynthesize the run with its own data config")
    hx, hy = dataset.test if cfg.audit.holdout == "test" else dataset.val
    out, cap = [], cfg.audit.max_synthetic_per_class
    for k, name in enumerate(dataset.classes):
        holdout = hx[hy == k]
        if len(holdout) < 2:
            other = "val" if cfg.audit.holdout == "test" else "test"
            raise ConfigError(f"audit.holdout={cfg.audit.holdout}: class {name} has {len(holdout)} "
                              f"holdout image(s) (data.{cfg.audit.holdout}_fraction = "
                              f"{getattr(cfg.data, cfg.audit.holdout + '_fraction')}); set "
                              f"audit.holdout={other}")
        rows = np.flatnonzero(labels == k)
        if not len(rows):
            raise ConfigError(f"{run.path / 'shards'} holds no synthetic rows of class {name}; "
                              "resynthesize the run (raygan synthesize)")
        if cap is not None:  # the first `cap` rows of each member (rows are sorted by index)
            rank = np.arange(len(rows)) - np.searchsorted(members[rows], members[rows])
            rows = rows[rank < cap]
        out.append(ClassInputs(name, dataset.train[name], holdout, x[rows], members[rows], index[rows]))
    return out


def domain_model(dataset, run: RunFolder, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The run's domain classifier (trained on the real training split once, cached in eval/)."""
    from .metrics.domain import train_domain_classifier

    return train_domain_classifier(dataset, cache=run.path / "eval" / "domain_classifier.pt",
                                   device=str(device)).cpu()


def inputs_key(cfg: Config, run: RunFolder) -> dict:
    """What privacy.json was computed from: a rerun with the same key skips the audit."""
    files = sorted((run.path / "shards").glob("*.parquet"))
    return {"shards": {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files},
            "audit": cfg.to_dict()["audit"], "data": cfg.to_dict()["data"]}


def up_to_date(cfg: Config, run: RunFolder) -> bool:
    path = run.path / "audit" / "privacy.json"
    if not path.exists() or not (run.path / "audit" / "closest_pairs.png").exists():
        return False
    try:
        return json.loads(path.read_text()).get("inputs") == json.loads(json.dumps(inputs_key(cfg, run)))
    except json.JSONDecodeError:
        return False


def plot_closest_pairs(columns: list[dict], inputs: list[ClassInputs], path: Path) -> Path:
    """Seed 000 Figures 9/10: per ensemble size (or boosting step) a band of the closest pairs, the
    training image above the synthetic one, the pixel MSE under it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def show(ax, img: torch.Tensor):
        img = ((img.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)

    k = max(1, max(len(c["pairs"]) for c in columns))
    fig, axes = plt.subplots(2 * len(columns), k, squeeze=False, figsize=(0.95 * k + 0.8,
                                                                          2.15 * len(columns) + 0.3))
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def finish(cfg: Config, run: RunFolder, inputs: list[ClassInputs], audits: list[ClassAudit], *,
           dataset_name: str, log: Callable[[str], None] = print) -> dict:
    """Summary, figure, audit/privacy.json (atomic) and the printed verdict."""
    privacy = summarise(audits, cfg, dataset_name=dataset_name)
    for c in inputs:
        privacy["classes"][c.name]["n_holdout"] = int(len(c.holdout))
    if "pixel" in cfg.audit.spaces:
        privacy["closest_pairs"] = closest_pairs(audits, cfg.ensemble.method, cfg.audit.pairs_in_figure)
        plot_closest_pairs(privacy["closest_pairs"], inputs, run.path / "audit" / "closest_pairs.png")
        privacy["figure"] = "audit/closest_pairs.png"
    privacy["inputs"] = inputs_key(cfg, run)
    atomic_write_text(run.path / "audit" / "privacy.json", json.dumps(privacy, indent=2))
    run.update_manifest(audit="audit/privacy.json")
    log(format_verdict(privacy))
    return privacy


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _num(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def class_rows(privacy: dict) -> list[str]:
    """One line per class and space: the numbers the verdict is made of."""
    rows = []
    for name, c in privacy["classes"].items():
        for space, s in c["spaces"].items():
            syn = s["synthetic"]
            dup = f", {syn['near_duplicates']} near-duplicates" if "near_duplicates" in syn else ""
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
    lines += [f"  WARN {r}" for r in privacy["reasons"]]
    notes = privacy.get("notes", [])
    lines += [f"  note: {r}" for r in notes[:2]]
    if len(notes) > 2:
        lines.append(f"  note: ... {len(notes) - 2} more alike (all in privacy.json)")
    return "\n".join(lines)


def privacy_markdown(privacy: dict) -> str:
    """The report's privacy section (raygan.report appends it when audit/privacy.json exists)."""
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
                         f"{_pct(syn['fraction_below_p5'])} | {syn.get('near_duplicates', '')} | "
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
    items = [f"- {r}" for r in privacy["reasons"]] + [f"- note: {r}" for r in privacy.get("notes", [])]
    lines += [""] + items if items else []
    if privacy.get("figure"):
        lines += ["", f"![closest pairs]({privacy['figure']})"]
    return "\n".join(lines) + "\n"


def audit_run(cfg: Config, run_dir: str | Path, *, device: str | torch.device = "auto", dataset=None,
              force: bool = False, log: Callable[[str], None] = print) -> Optional[dict]:
    """The whole audit in this process (no Ray); None when it does not apply (points, not images)."""
    check_config(cfg)
    run = check_run(run_dir)
    if not applicable(cfg):
        log(f"audit: not applicable to {cfg.data.name} (points, not images); nothing written")
        return None
    if not force and up_to_date(cfg, run):
        log(f"audit: {run.path / 'audit' / 'privacy.json'} is up to date with the shards; skipped")
        return json.loads((run.path / "audit" / "privacy.json").read_text())
    from .data import load_dataset

    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    inputs = load_inputs(cfg, run, dataset)
    model = domain_model(dataset, run, resolve_device(device)) if "domain" in cfg.audit.spaces else None
    audits = [audit_class(c.name, c.train, c.holdout, c.synthetic, c.members, shard_index=c.shard_index,
                          spaces=cfg.audit.spaces, domain_model=model,
                          chunk_size=cfg.audit.chunk_size, device=device) for c in inputs]
    return finish(cfg, run, inputs, audits, dataset_name=dataset.name, log=log)
