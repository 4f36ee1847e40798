"""Whether a device runs bf16 natively, and what to tell a user whose does not.

On a CPU, bf16 autocast is fast only with AVX512-BF16 or AMX instructions; without them
oneDNN emulates it, and a step runs several times slower than in fp32 (resnet_mini's ADN
step: 8.05 s against 1.16 s on one thread of an AVX2 AMD EPYC, where an AVX512-BF16 one ran
it 1.47x faster than fp32; benchmarks/engine_throughput.py measures it on yours). The
``mini`` preset trains with bf16 autocast so that a seed's run is the same spec on every
machine; on such a CPU it still runs, slowly, and says so.
"""
from __future__ import annotations

import torch


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


def emulated_bf16_warning(amp: str | None, device: torch.device | str) -> str | None:
    """One line for a run that asks for bf16 autocast on a device that would emulate it;
    None when there is nothing to say."""
    if amp != "bf16" or native_bf16(device) is not False:
        return None
    device = torch.device(device)
    lacking = "AVX512-BF16 or AMX instructions" if device.type == "cpu" else "bf16 units (compute capability < 8.0)"
    return (f"warning: bf16 autocast on this {device.type.upper()} is emulated (no {lacking}): each step runs "
            f"several times slower than fp32 here, and times estimated from other machines' runs do not hold")
