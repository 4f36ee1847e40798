"""A training step that replays without Python launching each kernel.

Small networks spend a step's time launching thousands of tiny kernels; on a GPU the
device then waits on Python. ``torch.compile`` in ``reduce-overhead`` mode traces the
forward and backward passes (and, separately, the optimiser step) into graphs that CUDA
replays as CUDA graphs; on the CPU inductor fuses norms and activations. Eager execution
stays the reference (tests compare the losses of both over the same steps).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.utils._pytree import tree_map_only

BACKEND = "inductor"  # torch.compile's default; tests on the CPU may choose "aot_eager" (same capture, no codegen)


def compiled(fn, device: torch.device, configs: int = 1) -> Callable:
    """``torch.compile`` of the training forward/backward (a model) or of the optimiser
    step: on CUDA in ``reduce-overhead`` mode, so each captured graph replays as a CUDA
    graph instead of Python launching every small kernel. A model is compiled once per
    sub-network it runs (its skip config is a guarded argument), hence the raised limit.

    A model's outputs are copied out of the graphs' memory: one step runs the model twice
    (teacher, then student) and reads the teacher's logits after the student's pass has
    started. CUDA-graph trees take that second call, after the teacher's backward, for a
    new iteration and hand the teacher's output memory to it, so reading the logits then
    fails ("accessing tensor output of CUDAGraphs that has been overwritten by a subsequent
    run") unless they were cloned outside the compiled function, which is what PyTorch
    asks. The copies are the logits (and features), small beside a step."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, configs + 2)
    captured = torch.compile(fn, mode="reduce-overhead" if device.type == "cuda" else None, backend=BACKEND)
    if not isinstance(fn, nn.Module):
        return captured

    def forward(*args, **kwargs):
        return tree_map_only(torch.Tensor, torch.Tensor.clone, captured(*args, **kwargs))

    return forward
