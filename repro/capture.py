"""A training step that replays without Python launching each kernel.

Small networks spend a step's time launching thousands of tiny kernels; on a GPU the
device then waits on Python. ``torch.compile`` in ``reduce-overhead`` mode traces the
forward and backward passes (and, separately, the optimiser step) into graphs that CUDA
replays as CUDA graphs; on the CPU inductor fuses norms and activations. Eager execution
stays the reference (tests compare the losses of both over the same steps).
"""
from __future__ import annotations

import torch

BACKEND = "inductor"  # torch.compile's default; tests on the CPU may choose "aot_eager" (same capture, no codegen)


def compiled(fn, device: torch.device, configs: int = 1):
    """``torch.compile`` of the training forward/backward (a model) or of the optimiser
    step: on CUDA in ``reduce-overhead`` mode, so each captured graph replays as a CUDA
    graph instead of Python launching every small kernel. A model is compiled once per
    sub-network it runs (its skip config is a guarded argument), hence the raised limit."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, configs + 2)
    return torch.compile(fn, mode="reduce-overhead" if device.type == "cuda" else None, backend=BACKEND)
