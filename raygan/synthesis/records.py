"""Generation from trained generators and what is written about it (sample grids, PNG records)."""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn as nn

from raygan.synthesis.generate import generate


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float images (B, C, H, W) -> uint8 (B, H, W, C)."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def encode_png(images: torch.Tensor) -> list[bytes]:
    """One PNG per image (grey for 1 channel, RGB for 3): readable by any image tool."""
    from PIL import Image

    out = []
    for arr in to_uint8(images):
        buf = io.BytesIO()
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 array (H, W) or (H, W, C); bytes of any other format are refused (Pillow
    would otherwise pick a decoder by content: for EPS, Ghostscript running the bytes as PostScript)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data), formats=["PNG"]))




def synth_records(G: nn.Module, *, count: int, seed: int, class_index: int, class_name: str,
                  member: int, method: str, start: int, device="cpu",
                  truncation: float | None = None) -> dict:
    """Columns of one shard chunk: image (PNG bytes) or point (2 floats), label, class, member, ..."""
    extra = {"truncation": truncation} if truncation is not None else {}
    samples = generate(G, count, seed=seed, device=device, **extra)
    columns = {"label": [class_index] * count, "class_name": [class_name] * count,
               "member": [member] * count, "method": [method] * count, "seed": [seed] * count,
               "index": list(range(start, start + count))}
    if samples.dim() == 2:
        columns["point"] = samples.tolist()
    else:
        columns["image"] = encode_png(samples)
    return columns

