"""Whether a device runs bf16 natively, and how a CPU without bf16 units trains in bf16.

On a CPU, PyTorch's bf16 autocast is fast only with AVX512-BF16 or AMX instructions;
without them its convolutions fall back to slow reference kernels, and a step runs several
times slower than in fp32 (resnet_mini's ADN step: 8.05 s against 1.16 s on one thread of
an AVX2 AMD EPYC, where an AVX512-BF16 one ran it 1.47x faster than fp32). The ``mini``
preset trains with bf16 autocast so that a seed's run is the same spec on every machine.
On a CPU without bf16 units the training step therefore runs the matrix products of
autocast (convolutions, matrix multiplications and their gradients) in fp32 kernels on
bf16 operands and rounds each result once to bf16 (``bf16_products_in_fp32``): what a bf16
unit computes, since the products of two bf16 numbers are exact in fp32 and bf16 kernels
accumulate in fp32 too. Every other operation, attention included, runs as autocast has
it. Only the summation order differs from a native kernel, as it does between any two
machines; the run records which kernels it used. benchmarks/engine_throughput.py measures the speed on yours.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

import torch

# the matrix products among the operations CPU autocast runs in bf16 (its lower-precision list);
# attention keeps autocast's own bf16 kernel
MATRIX_PRODUCTS = ("conv1d", "conv1d.padding", "conv2d", "conv2d.padding", "conv3d", "conv3d.padding", "linear",
                   "matmul", "mm", "bmm", "addmm", "baddbmm", "addbmm")
WIDENED = (torch.float32, torch.bfloat16, torch.float16)
# what a run segment's ``bf16_kernels`` says when its step ran in ``bf16_products_in_fp32``
FP32_PRODUCTS = "matrix products in fp32 kernels on bf16 operands, results rounded to bf16 (no bf16 units)"


def native_bf16(device: torch.device | str) -> bool | None:
    """True when ``device`` computes bf16 in hardware, False when autocast would emulate it,
    None when this PyTorch cannot tell."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return None
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else None
    except RuntimeError:  # a build without oneDNN
        return None


def products_in_fp32(amp: str | None, device: torch.device | str, compiled: bool = False) -> bool:
    """Whether a bf16 training step on ``device`` runs its matrix products in fp32 kernels:
    on a CPU known to lack bf16 units, unless the step is compiled (inductor then decides)."""
    return amp == "bf16" and not compiled and torch.device(device).type == "cpu" and native_bf16(device) is False


def _bf16_valued(value):
    """An fp32 tensor holding the bf16 value that autocast would pass (widened exactly)."""
    if isinstance(value, torch.Tensor) and value.dtype in WIDENED:
        return value.to(torch.bfloat16).float()
    return value


def _product_in_fp32(op):
    def product(*args, **kwargs):
        with torch.autocast("cpu", enabled=False):
            result = op(*map(_bf16_valued, args), **{k: _bf16_valued(v) for k, v in kwargs.items()})
        return result.to(torch.bfloat16)
    return product


@contextmanager
def bf16_products_in_fp32() -> Iterator[None]:
    """While open, CPU autocast runs each matrix product (``MATRIX_PRODUCTS``) in an fp32
    kernel on its operands rounded to bf16 and rounds the result to bf16: the inputs,
    outputs and fp32 accumulation of a bf16 unit, at fp32 speed. The gradients follow the
    same rule, as autograd sees the roundings: each gradient reaching a product is bf16,
    each it hands back is rounded to bf16. Everything else autocast does is unchanged."""
    library = torch.library.Library("aten", "IMPL")  # autocast's own kernels return when it is destroyed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel": autocast's, on purpose
        for name in MATRIX_PRODUCTS:
            packet, _, overload = name.partition(".")
            op = getattr(getattr(torch.ops.aten, packet), overload or "default")
            library.impl(name, _product_in_fp32(op), "AutocastCPU")
    try:
        yield
    finally:
        library._destroy()


def bf16_kernel_note(amp: str | None, device: torch.device | str, fp32_products: bool) -> str | None:
    """What a run's record says about its bf16 kernels (None for a run not in bf16);
    ``fp32_products``: whether its step runs in ``bf16_products_in_fp32``."""
    if amp != "bf16":
        return None
    if fp32_products:
        return FP32_PRODUCTS
    return {True: "native", False: "emulated by PyTorch", None: "unknown"}[native_bf16(device)]


def missing_bf16_units_note(amp: str | None, device: torch.device | str) -> str | None:
    """One line for a run that asks for bf16 autocast on a device without bf16 units;
    None when there is nothing to say."""
    if amp != "bf16" or native_bf16(device) is not False:
        return None
    device = torch.device(device)
    if device.type == "cpu":
        return ("note: this CPU has no bf16 units (AVX512-BF16 or AMX): the bf16 step runs its matrix products in "
                "fp32 kernels with bf16 rounding (repro/precision.py), slower than fp32 here (resnet_mini's ADN runs "
                "trained at a third of the images/s of 2 AVX512-BF16 cores); a plan's times come from finished "
                "runs on CPUs like this one where there are any")
    return (f"warning: bf16 autocast on this {device.type.upper()} is emulated (no bf16 units, compute capability "
            f"< 8.0): each step runs several times slower than fp32 here, and times estimated from other "
            f"machines' runs do not hold")
