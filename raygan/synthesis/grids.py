"""Sample grids of a member: an image grid for images, a scatter for 2D points."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from raygan.figures import figure, save_figure, save_image_grid


def save_sample_grid(samples: torch.Tensor, path: Path, *, title: str = "",
                     real: torch.Tensor | None = None) -> None:
    """A PNG of samples: an image grid for images, a scatter for 2D points (real points in grey)."""
    if samples.dim() != 2:
        save_image_grid(samples, path, nrow=max(1, int(np.ceil(np.sqrt(len(samples))))))
        return
    fig = figure(figsize=(4, 4))
    ax = fig.subplots()
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.75", label="real")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", label="generated")
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    save_figure(fig, path, dpi=100)
