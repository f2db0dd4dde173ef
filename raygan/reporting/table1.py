"""Seed 000 Experiment 1: the 25-Gaussian grid, Table 1 and Figure 1, end to end in the core.

Train `grid_eval.gans` GANs as members of the single class "grid", draw `points_per_gan` points from
each, run the bootstrap of Supplement A for T = 1..max_ensemble, and write table1.md / table1.json and
a scatter coloured by member (Figure 1) into the run folder.

With gan.pacgan = m > 1 every GAN's discriminator is PacGAN's (Lin et al. 2018; raygan.gan.models.d_levers)
and the table names its rows PacGANm; the paper column of a single PacGAN is then PacGAN's published
figure for m where one is known (PAPER_PACGAN), of an ensemble of them "-" (no paper reports one).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from raygan import seeds
from raygan.config import Config
from raygan.data import check_batch_fits, load_dataset
from raygan.data.grid2d import grid_means
from raygan.ensemble.mixture import load_mixture
from raygan.ensemble.training import train_independent
from raygan.figures import figure, save_figure
from raygan.metrics.grid import Table1Row, nearest_modes, table1_bootstrap
from raygan.runs import RunFolder, atomic_write_text
from raygan.synthesis.generate import generate

logger = logging.getLogger(__name__)

# Seed 000 Table 1 (modes of 25, high-quality %), mean +- std; PacGAN's paper for comparison.
PAPER_TABLE1 = {
    1: (18.8, 2.6, 75.7, 4.6),
    2: (24.6, 0.8, 75.1, 3.4),
    3: (24.8, 0.7, 75.3, 2.9),
    4: (25.0, 0.1, 75.2, 2.6),
    5: (25.0, 0.0, 75.3, 2.3),
}


# Lin et al. 2018 (PacGAN) on the same grid, by packing degree m: m = 1 is their unpacked GAN (as the
# source documents' index gives it, with no spread for its high-quality share), m = 4 their PacGAN4 (as
# seed 000's Table 1 cites it).
PAPER_PACGAN = {
    1: (17.3, 0.8, 94.8, None),
    4: (24.8, 0.2, 93.6, 0.6),
}


def _cell(mean: float, std) -> str:
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {std:.1f}"


def _paper(ensemble_size: int, pacgan: int):
    if pacgan == 1:
        return PAPER_TABLE1.get(ensemble_size)
    return PAPER_PACGAN.get(pacgan) if ensemble_size == 1 else None


def format_table1(rows: list[Table1Row], pacgan: int = 1) -> str:
    """Markdown table of ours beside the paper's, Table 1 layout; ``pacgan`` (gan.pacgan) > 1 names the
    rows PacGANm and compares a single one with PacGAN's paper."""
    lines = ["| Method | Modes (max 25), ours | Modes, paper | High quality %, ours | High quality %, paper |",
             "|---|---|---|---|---|"]
    base = "GAN" if pacgan == 1 else f"PacGAN{pacgan}"
    for r in rows:
        name = base if r.ensemble_size == 1 else f"EnsGAN-{r.ensemble_size}" + ("" if pacgan == 1 else f" of {base}")
        paper = _paper(r.ensemble_size, pacgan)
        pm = _cell(paper[0], paper[1]) if paper else "-"
        ph = _cell(paper[2], paper[3]) if paper else "-"
        lines.append(f"| {name} | {r.modes_mean:.1f} ± {r.modes_std:.1f} | {pm} | "
                     f"{r.high_quality_mean:.1f} ± {r.high_quality_std:.1f} | {ph} |")
    return "\n".join(lines)


def scatter_by_member(pools: list[np.ndarray], real: np.ndarray, path: Path, n_show: int = 500) -> None:
    """Seed 000 Figure 1: real data and each member's samples in its own colour."""
    from matplotlib import colormaps

    fig = figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.scatter(real[:5000, 0], real[:5000, 1], s=4, c="k", label="real")
    cmap = colormaps["tab10"]
    for m, points in enumerate(pools):
        ax.scatter(points[:n_show, 0], points[:n_show, 1], s=3, color=cmap(m % 10), alpha=0.6,
                   label=f"GAN {m}")
    ax.set_aspect("equal")
    ax.set_title(f"25-Gaussian grid: {len(pools)} independently trained GANs")
    ax.legend(markerscale=3, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, path)


def run_table1(cfg: Config) -> dict:
    """Train (or resume) the GANs, bootstrap, write the table and the figure; returns the result."""
    dataset = load_dataset(cfg.data)
    check_batch_fits(dataset, cfg.train.batch_size)
    run = RunFolder.for_config(cfg)
    run.check_compatible(cfg)
    run.write_config(cfg)
    members_cfg = cfg.replace(ensemble={"members": cfg.grid_eval.gans, "weights": None})
    logger.info(f"training {cfg.grid_eval.gans} GANs of {cfg.train.steps} steps on {dataset.summary()}")
    train_independent(members_cfg, dataset, run)

    mixture = load_mixture(run, "grid", cfg.grid_eval.gans)
    means, sigma = grid_means(), cfg.data.grid_sigma
    pools, samples = [], []
    for m, G in enumerate(mixture.generators):
        points = generate(G, cfg.grid_eval.points_per_gan, seed=seeds.grid_gan_points(cfg.train.seed, m)).numpy()
        samples.append(points)
        pools.append(nearest_modes(points, means, sigma))
    rows = table1_bootstrap(pools, max_ensemble=cfg.grid_eval.max_ensemble,
                            eval_points=min(cfg.grid_eval.eval_points, cfg.grid_eval.points_per_gan),
                            repeats=cfg.grid_eval.repeats, seed=cfg.train.seed)
    table = format_table1(rows, pacgan=cfg.gan.pacgan)
    figure = run.path / "plots" / "grid_members.png"
    scatter_by_member(samples[: min(10, len(samples))], dataset.train["grid"].numpy(), figure)
    result = {"rows": [asdict(r) for r in rows], "pacgan": cfg.gan.pacgan,
              "paper": PAPER_TABLE1 if cfg.gan.pacgan == 1 else {1: PAPER_PACGAN.get(cfg.gan.pacgan)},
              "gans": cfg.grid_eval.gans, "steps": cfg.train.steps, "repeats": cfg.grid_eval.repeats,
              "figure": str(figure.relative_to(run.path))}
    atomic_write_text(run.path / "eval" / "table1.json", json.dumps(result, indent=2))
    atomic_write_text(run.path / "eval" / "table1.md", table + "\n")
    run.update_manifest(table1="eval/table1.json")
    result["table"] = table
    result["run_dir"] = str(run.path)
    return result
