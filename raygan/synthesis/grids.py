"""Generation from trained generators and what is written about it (sample grids, PNG records)."""
from __future__ import annotations
from pathlib import Path
import numpy as np
import torch


def save_sample_grid(samples: torch.Tensor, path: Path, *, title: str = "",
                     real: torch.Tensor | None = None) -> None:
    """A PNG of samples: an image grid for images, a scatter for 2D points (real points in grey)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    if samples.dim() == 2:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(4, 4))
        if real is not None:
            ax.scatter(real[:, 0], real[:, 1], s=2, c="0.75", label="real")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", label="generated")
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        plt.close(fig)
    else:
        from torchvision.utils import save_image
        nrow = max(1, int(np.ceil(np.sqrt(len(samples)))))
        save_image(samples, tmp, nrow=nrow, normalize=True, value_range=(-1, 1), padding=1)
    tmp.replace(path)

