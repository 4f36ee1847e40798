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
    asks. The copies are the logits (and features), small beside a step.

    On CUDA the parameters' gradients are copied out of the graphs' memory too
    (``own_gradients``): a step's two backward passes accumulate into one ``.grad``."""
    import torch._dynamo

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, configs + 2)
    captured = torch.compile(fn, mode="reduce-overhead" if device.type == "cuda" else None, backend=BACKEND)
    if not isinstance(fn, nn.Module):
        return captured
    if device.type == "cuda":
        own_gradients(fn)

    def forward(*args, **kwargs):
        return tree_map_only(torch.Tensor, torch.Tensor.clone, captured(*args, **kwargs))

    return forward


def own_gradients(module: nn.Module) -> list:
    """Keeps each parameter's ``.grad`` in memory of its own, not in a CUDA graph's.

    A parameter's first gradient of a step is the backward graph's output itself, installed
    as ``.grad``. ADN's step then runs the student's forward pass, which begins a new
    CUDA-graph generation and hands that memory to it; the student's backward pass then
    adds into an overwritten ``.grad`` and fails ("accessing tensor output of CUDAGraphs
    that has been overwritten by a subsequent run": gradient accumulation under CUDA-graph
    trees, pytorch/pytorch#169545; seen on an H200 with torch 2.11). A hook after each
    accumulation replaces ``.grad`` with its copy: same values, a parameter that got no
    gradient keeps None (so the optimiser still leaves it alone), and one copy of the
    gradients per backward pass, small beside the pass. Returns the hooks' handles."""
    return [p.register_post_accumulate_grad_hook(_copy_gradient) for p in module.parameters() if p.requires_grad]


def _copy_gradient(parameter: torch.Tensor) -> None:
    parameter.grad = parameter.grad.clone()
