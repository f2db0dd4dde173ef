"""Figures and image grids as PNG files, written through the run folder's one atomic writer.

Figures are drawn on a plain ``matplotlib.figure.Figure``: no pyplot state and no backend switch at run
time, so drawing is safe in any process (a Ray worker, a test, a notebook with its own backend). A file
in a URI run folder's mirror reaches storage as it is written, like every other atomic write.
Image grids are what a person looks at: each is upscaled by an integer factor with nearest neighbour
so that every cell is at least MIN_CELL_PX pixels on its shorter side (8x8 digits become 48x48).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from raygan.runs import atomic_write_bytes

# The shorter side, in PNG pixels, that every cell of an image grid is upscaled to at least.
MIN_CELL_PX = 48


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


def upscale_factor(height: int, width: int, *, min_cell_px: int = MIN_CELL_PX) -> int:
    """The integer factor that makes an image of height x width at least ``min_cell_px`` on its
    shorter side: ceil(min_cell_px / min(height, width)), at least 1 (8x8 -> 6, 28x28 -> 2, 64x64 -> 1)."""
    return max(1, -(-int(min_cell_px) // max(1, min(int(height), int(width)))))


def save_image_grid(images: torch.Tensor, path: str | Path, *, nrow: int, padding: int = 1,
                    min_cell_px: int = MIN_CELL_PX) -> Path:
    """Images in [-1, 1] (B, C, H, W) as one PNG grid: the pixels torchvision's save_image writes,
    every pixel (padding too) then an s x s block, s = :func:`upscale_factor` (nearest neighbour, so
    8x8 digits are legible at a glance and no pixel value is invented); ``min_cell_px=1`` keeps s = 1."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images, nrow=nrow, padding=padding, normalize=True, value_range=(-1, 1))
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8).numpy()
    s = upscale_factor(images.shape[-2], images.shape[-1], min_cell_px=min_cell_px)
    pixels = pixels.repeat(s, axis=0).repeat(s, axis=1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
