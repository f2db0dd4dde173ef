"""raygan: ensembles of GANs that turn a private labelled image set into a shareable synthetic one.

The listing of this package reads as the pipeline: ``config`` -> ``data`` -> ``gan`` -> ``ensemble`` ->
``synthesis`` -> ``evaluation`` / ``metrics`` -> ``audit`` -> ``reporting``; ``runs`` is the run folder
every stage reads and writes, ``tools`` holds plan and bench, and ``cluster`` is the only package that
imports Ray. ``python -m raygan <command>`` is the ``raygan`` command.

The specification is five papers and reports, called "seed 000" to "seed 004" throughout the code:

- seed 000: Eilertsen et al., *Ensembles of GANs for synthetic training data generation* (the main
  paper: independent per-class ensembles, AdaGAN as the alternative, the 25-Gaussian grid, the
  two-class image sets, the memorisation check);
- seed 001: Slim, *Boosting generative networks for incremental learning* (on-the-fly generation,
  transforms, filtering, truncation, sample reweighting, MS-SSIM);
- seed 002: Liu & Hu, *GAN-based image data augmentation* (fully connected GANs, label smoothing,
  mixing ratios, recursive training);
- seed 003: Ferianc & Manocha, *GANs for synthetic image generation* (class-conditional DCGAN, the
  classifier score, the PCA baseline);
- seed 004: Leung et al., *Synthetic data generation* (LayerNorm DCGAN per class, per-class FID).

AdaGAN is Tolstikhin et al., *AdaGAN: Boosting Generative Models* (NeurIPS 2017).
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

__version__ = "0.2.0"


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
    """What made a run: raygan's version and, for a git checkout (an editable install), its commit."""
    commit = None
    source = Path(__file__).resolve().parent.parent
    if (source / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                 text=True, timeout=10)
            commit = out.stdout.strip() or None if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"version": __version__, "git_commit": commit}
