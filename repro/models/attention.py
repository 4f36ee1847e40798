"""Which attention kernel a Vision Transformer runs on the CPU.

PyTorch's CPU flash-attention kernel is slow in reduced precision on short sequences:
for vit_mini (50 tokens, heads of 16 dimensions) one forward and backward of its attention
in bfloat16 takes 3-5 times as long as the plain "math" kernel (two matrix products and a
softmax), which makes a bf16 ADN training step about twice as slow as it need be
(``benchmarks/attention_kernel.py``). From about 200 tokens on (ViT-B/16 at 224 px) the
two kernels are level or flash attention wins, and in float32 flash attention wins at any
length. So on the CPU, in reduced precision, networks of up to ``SHORT_SEQUENCE`` tokens
use the math kernel; everywhere else PyTorch chooses as it would. Both kernels compute the
same exact attention, so only rounding differs.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

SHORT_SEQUENCE = 128  # tokens; vit_mini has 50 at 28 px and 65 at 32 px, ViT-B/16 at 224 px 197
REDUCED = (torch.bfloat16, torch.float16)


def attention_kernel(net: nn.Module, x: torch.Tensor) -> AbstractContextManager:
    """The context to run ``net(x)`` in: the math attention kernel for a transformer of a
    short sequence (torchvision's ``seq_length``) on the CPU in reduced precision (autocast
    or reduced-precision inputs), else no change. The kernel choice is process-wide while
    the context is open (``torch.nn.attention.sdpa_kernel``)."""
    tokens = getattr(net, "seq_length", None)
    if tokens is None or tokens > SHORT_SEQUENCE or x.device.type != "cpu":
        return nullcontext()
    if torch.is_autocast_enabled("cpu") or x.dtype in REDUCED:
        return sdpa_kernel(SDPBackend.MATH)
    return nullcontext()
