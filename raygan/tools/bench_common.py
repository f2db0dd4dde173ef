"""What every benchmark of `raygan bench` shares: the name of the device a result was measured on, and
seed 000's DCGAN timing that the dcgan and gpu benchmarks set their numbers beside. It sits below
raygan.tools.bench (the registry of benchmarks), bench_pack and bench_gpu, which all read it."""
from __future__ import annotations

import platform

import torch

PAPER_DCGAN_STEPS = 50_000           # seed 000, Supplement B: 50K steps at batch 64 per DCGAN
PAPER_DCGAN_MINUTES = (70, 75)       # "DCGAN takes around 70-75 min to train on one class"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's threads and processor: the heading of a benchmark's result."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
