"""train.cuda_graphs: a pack's whole step (both forward and backward passes, both Adam updates)
captured once in a CUDA graph and replayed (raygan.gan.pack is its only user). Latents and indices are
drawn outside the graph, as in an eager step, and copied into its static inputs; Adam runs capturable
(its step count on the GPU); the dropout generators advance on every replay as they would eagerly.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

# Eager steps before a CUDA graph is captured: the first step creates Adam's state and every lazily
# allocated buffer, which a capture must find in place (PyTorch's CUDA-graph notes warm up on a side
# stream the same way).
GRAPH_WARMUP_STEPS = 3


def make_capturable(opt: torch.optim.Adam) -> None:
    """Adam in the form a CUDA graph can replay: capturable, its step counts on the parameters' device."""
    for group in opt.param_groups:
        group["capturable"] = True
    for p, state in opt.state.items():
        if "step" in state:
            state["step"] = state["step"].to(device=p.device, dtype=torch.float32)


class GraphedStep:
    """``compute(idx, z)`` (the packed step on minibatch indices and latents, returning its losses)
    run eagerly for GRAPH_WARMUP_STEPS steps on a side stream, then captured once in a CUDA graph and
    replayed with every later step's indices and latents copied into the graph's static inputs."""

    def __init__(self, compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 generators: list[torch.Generator], device: torch.device):
        self.compute, self.generators, self.device = compute, generators, device
        self.graph: Optional[torch.cuda.CUDAGraph] = None
        self.calls = 0

    def _eager(self, idx: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            out = self.compute(idx, z)
        torch.cuda.current_stream(self.device).wait_stream(side)
        return out

    def _capture(self, idx: torch.Tensor, z: torch.Tensor) -> None:
        self.idx, self.z = idx.clone(), z.clone()
        self.graph = torch.cuda.CUDAGraph()
        for rng in self.generators:  # dropout's generators advance on every replay, as eagerly
            self.graph.register_generator_state(rng)
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(self.graph):
            self.out = self.compute(self.idx, self.z)

    def __call__(self, idx: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.graph is None and self.calls < GRAPH_WARMUP_STEPS:
            self.calls += 1
            return self._eager(idx, z)
        if self.graph is None:
            self._capture(idx, z)  # records the step without running it: the replay below runs it
        self.idx.copy_(idx)
        self.z.copy_(z)
        self.graph.replay()
        return self.out.clone()
