"""Generation from trained generators and what is written about it (sample grids, PNG records)."""
from __future__ import annotations

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


def _draw(G: nn.Module, n: int, rng: torch.Generator, device, truncation: float | None) -> torch.Tensor:
    """n latents of G from ``rng``: N(0, I), or truncated to [-tau, tau] (``truncated_normal``)."""
    return (torch.randn(n, G.z_dim, generator=rng, device=device) if truncation is None
            else truncated_normal((n, G.z_dim), truncation, rng, device))


def latents(G: nn.Module, n: int, *, seed: int, device: torch.device | str = "cpu",
            truncation: float | None = None) -> torch.Tensor:
    """The n latents generate(G, n, seed=seed) feeds G when n fits one batch."""
    return _draw(G, n, torch.Generator(device=device).manual_seed(seed), device, truncation)


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
        out.append(G(_draw(G, b, rng, device, truncation)).cpu())
    return torch.cat(out) if out else torch.empty(0)
