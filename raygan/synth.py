"""Generation from trained generators and what is written about it (sample grids, PNG records)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


@torch.no_grad()
def generate(G: nn.Module, n: int, *, seed: int, batch_size: int = 2048,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """n samples from G (eval mode), seeded; returned on the CPU."""
    rng = torch.Generator(device=device).manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        out.append(G(torch.randn(b, G.z_dim, generator=rng, device=device)).cpu())
    return torch.cat(out) if out else torch.empty(0)


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
    """PNG bytes -> uint8 array (H, W) or (H, W, C)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def chunk_seed(seed: int, class_index: int, member: int, chunk: int) -> int:
    """The seed of one synthesis chunk: shards are reproducible chunk by chunk."""
    return int(np.random.SeedSequence([seed, class_index, member, chunk, 7]).generate_state(1)[0])


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
