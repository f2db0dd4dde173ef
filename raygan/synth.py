"""Generation from trained generators and what is written about it (sample grids, PNG records)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


def truncated_normal(shape: tuple[int, ...], tau: float, generator: torch.Generator,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal draws restricted to [-tau, tau] (the truncation trick, seed 001 after Brock et
    al., 2018): every entry outside is redrawn, not clipped, until it falls inside; deterministic for a
    given generator state."""
    if not tau > 0:
        raise ValueError(f"the truncation threshold tau must be > 0, got {tau}")
    z = torch.randn(shape, generator=generator, device=device)
    outside = z.abs() > tau
    while bool(outside.any()):
        z[outside] = torch.randn(int(outside.sum()), generator=generator, device=device)
        outside = z.abs() > tau
    return z


@torch.no_grad()
def generate(G: nn.Module, n: int, *, seed: int, batch_size: int = 2048,
             device: torch.device | str = "cpu", truncation: float | None = None) -> torch.Tensor:
    """n samples from G (eval mode), seeded; returned on the CPU.

    ``truncation`` = tau draws the latents from N(0, I) truncated to [-tau, tau] (``truncated_normal``);
    None draws plain N(0, I), the same latents as before truncation existed.
    """
    rng = torch.Generator(device=device).manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        z = (torch.randn(b, G.z_dim, generator=rng, device=device) if truncation is None
             else truncated_normal((b, G.z_dim), truncation, rng, device))
        out.append(G(z).cpu())
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
