"""Figures and image grids as PNG files, written through the run folder's one atomic writer.

Figures are drawn on a plain ``matplotlib.figure.Figure``: no pyplot state and no backend switch at run
time, so drawing is safe in any process (a Ray worker, a test, a notebook with its own backend). A file
in a URI run folder's mirror reaches storage as it is written, like every other atomic write.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from raygan.runs import atomic_write_bytes


def figure(**kwargs) -> Figure:
    """A new figure (``figsize`` etc. as for matplotlib's Figure)."""
    return Figure(**kwargs)


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 110, tight: bool = True) -> Path:
    """Render ``fig`` as PNG and write it atomically to ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_image_grid(images: torch.Tensor, path: str | Path, *, nrow: int, padding: int = 1) -> Path:
    """Images in [-1, 1] (B, C, H, W) as one PNG grid (the pixels torchvision's save_image writes)."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images, nrow=nrow, padding=padding, normalize=True, value_range=(-1, 1))
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
