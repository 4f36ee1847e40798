"""Time per training step of each method on one fixed batch (paper Table 2's timing mode).

The paper reports one ImageNet epoch's training time (RTX 4090, batch 128). Here each
method steps on the same synthetic batch, all methods interleaved in rounds after a
warm-up (``repro.measure.interleaved.time_interleaved``), and the median step time is extrapolated
to an epoch of ``epoch_images`` images. Data loading is left out: it is the same for
every method.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from repro.measure.interleaved import time_interleaved
from repro.methods import METHODS, StepContext
from repro.methods.losses import soft_cross_entropy
from repro.models import build_individual, build_model, num_stages
from repro.precision import bf16_products_in_fp32, products_in_fp32
from repro.specs import MethodOptions

IMAGENET_TRAIN_IMAGES = 1_281_167


@dataclass(frozen=True)
class TimedMethod:
    label: str  # e.g. "individual TTTT"
    method: str
    depth: str | None = None  # individual / kd_individual networks


def table2_methods(num_stages: int) -> list[TimedMethod]:
    """The rows of paper Table 2: non-adaptive networks, ADN and an AlphaNet-style net."""
    full, base = "F" * num_stages, "T" * num_stages
    return [TimedMethod(f"individual {full}", "individual", full), TimedMethod(f"individual {base}", "individual", base),
            TimedMethod(f"kd_individual {base}", "kd_individual", base), TimedMethod("alphanet", "alphanet"),
            TimedMethod("adn", "adn")]


class Workload:
    """One model, SGD optimiser and fixed batch, stepping with one training method."""

    def __init__(self, arch: str, method: str, depth: str | None, images: torch.Tensor, targets: torch.Tensor, *,
                 num_classes: int, channels_last: bool = False, teacher=None, options: MethodOptions | None = None,
                 amp: str | None = None, compile: bool = False, fp32_products: bool | None = None):
        """``fp32_products``: run bf16 matrix products in fp32 kernels (``repro.precision``);
        None decides as training does."""
        self.method = METHODS.get(method)
        shape = dict(in_channels=images.shape[1], image_size=images.shape[-1])
        if depth is None:
            self.model = build_model(arch, num_classes, **shape, skip_aware_norms=method != "alphanet")
        else:
            self.model = build_individual(arch, depth, num_classes, **shape)
        self.model = self.model.to(images.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        self.images, self.targets = images, targets
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.options = options or (MethodOptions(depth=depth) if depth else MethodOptions())
        self.teacher = teacher
        self.global_step = 0
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.autocast = (lambda: torch.autocast(images.device.type, dtype=dtype)) if dtype else nullcontext
        self.forward = self.model
        if compile:  # as the training engine compiles (repro/train.py)
            from repro.capture import compiled

            self.forward = compiled(self.model, images.device, configs=len(self.model.configs()))
        self.optimizer_step = compiled(self.optimizer.step, images.device) if compile else self.optimizer.step
        if fp32_products is None:
            fp32_products = products_in_fp32(amp, images.device, compiled=compile)
        self.products = bf16_products_in_fp32 if fp32_products else nullcontext

    def step(self) -> dict[str, torch.Tensor]:
        """One training step; returns its (detached) losses."""
        self.optimizer.zero_grad(set_to_none=True)
        ctx = StepContext(model=self.forward, module=self.model, options=self.options,
                          criterion=soft_cross_entropy, backward=lambda loss: loss.backward(),
                          autocast=self.autocast, seed=0, global_step=self.global_step, state=self.teacher)
        with self.products():
            result = self.method.train_step(self.images, self.targets, ctx)
        self.optimizer_step()
        self.global_step += 1
        return result.losses


def make_workloads(arch: str, methods: list[TimedMethod], images: torch.Tensor, targets: torch.Tensor, *,
                   num_classes: int, channels_last: bool = False) -> dict[str, Workload]:
    teacher = None
    if any(m.method == "kd_individual" for m in methods):
        full = "F" * num_stages(arch)
        teacher = build_individual(arch, full, num_classes, in_channels=images.shape[1],
                                   image_size=images.shape[-1]).to(images.device).eval().requires_grad_(False)
        if channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
    return {m.label: Workload(arch, m.method, m.depth, images, targets, num_classes=num_classes,
                              channels_last=channels_last, teacher=teacher) for m in methods}


def time_training_steps(arch: str, *, input_shape: tuple[int, int, int], num_classes: int, batch_size: int = 128,
                        steps: int = 5, warmup: int = 2, device: str = "cpu", channels_last: bool = False,
                        epoch_images: int = IMAGENET_TRAIN_IMAGES, methods: list[TimedMethod] | None = None):
    """Median step time of each method on one synthetic batch, and the epoch time it implies.

    Returns a DataFrame, one row per method: ``method_label, method, arch, batch_size,
    input_shape, step_ms, step_iqr_ms, steps, device, epoch_images, epoch_h``.
    """
    import pandas as pd

    torch.manual_seed(0)
    images = torch.randn(batch_size, *input_shape, device=device)
    targets = torch.randint(0, num_classes, (batch_size,), device=device)
    methods = methods or table2_methods(num_stages(arch))
    workloads = make_workloads(arch, methods, images, targets, num_classes=num_classes, channels_last=channels_last)
    timings = time_interleaved({label: w.step for label, w in workloads.items()}, repeats=steps, warmup=warmup,
                               device=device)
    rows = []
    for m in methods:
        t = timings[m.label]
        rows.append({"method_label": m.label, "method": m.method, "arch": arch, "batch_size": batch_size,
                     "input_shape": "x".join(map(str, input_shape)), "step_ms": t.median_ms,
                     "step_iqr_ms": t.iqr_ms, "steps": steps, "device": str(device), "epoch_images": epoch_images,
                     "epoch_h": epoch_images / batch_size * t.median_ms / 3.6e6})
    return pd.DataFrame(rows)
