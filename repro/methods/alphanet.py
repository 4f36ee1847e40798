"""``alphanet``: AlphaNet-style sandwich training (Wang et al., ICML 2021), depth only, as
the paper's Table 2 configures it.

Sub-network space: the ADN's own 2^S configs. One step: the max net (super-net) learns from
labels; then ``num_sampled`` random sub-networks (each stage flag drawn uniformly; a draw
may repeat or equal the max/min net, as in AlphaNet, unless ``allow_duplicates=False``)
and finally the min net (base-net) learn by in-place distillation from the max net's
detached logits with the adaptive alpha-divergence (``divergence=kl``: KL instead); each
pass backpropagates at once; gradients are clipped by value at 1.0; one optimiser step.

Norms: AlphaNet has no skip-aware norms. All sub-networks share one BatchNorm set whose
running statistics are not updated in training (momentum 0); every evaluated sub-network
gets its statistics recalibrated on ``bn_recalibration_images`` un-augmented training
images first (repro/recalibrate.py, the code every method's recalibrated columns use).
"""
from __future__ import annotations

import torch
from torch import nn

from repro.errors import ReproError
from repro.methods.base import METHODS, Method, StepContext, StepResult, super_and_base
from repro.methods.losses import alpha_divergence, distillation_kl
from repro.models import build_model
from repro.skip import SkipConfig


def build_shared_norms(spec, info):
    model = build_model(spec.arch, info.num_classes, in_channels=info.in_channels, image_size=info.image_size,
                        split=spec.options.split, skip_aware_norms=False)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.0  # statistics are recalibrated per sub-network after training
    return model


def sample_configs(num_stages: int, count: int, generator: torch.Generator,
                   allow_duplicates: bool = True) -> list[SkipConfig]:
    """``count`` random sub-networks; without duplicates they are distinct and differ from
    the max and min nets (when that many exist)."""
    if allow_duplicates:
        flags = torch.rand(count, num_stages, generator=generator) < 0.5
        return [SkipConfig(tuple(bool(f) for f in row)) for row in flags]
    middle = SkipConfig.all(num_stages)[1:-1]
    order = torch.randperm(len(middle), generator=generator)[:count]
    return [middle[int(i)] for i in order]


def alphanet_step(images, targets, ctx: StepContext) -> StepResult:
    o = ctx.options
    num_stages = ctx.module.num_stages
    with ctx.autocast():
        max_logits = ctx.model(images, SkipConfig.super_net(num_stages))
        ce = ctx.criterion(max_logits, targets)
    ctx.backward(ce)
    teacher = max_logits.detach()
    sampled = sample_configs(num_stages, o.num_sampled, ctx.generator(), o.allow_duplicates)
    divergences = []
    for config in sampled + [SkipConfig.base_net(num_stages)]:
        with ctx.autocast():
            logits = ctx.model(images, config)
            if o.divergence == "alpha":
                loss, divergence = alpha_divergence(logits, teacher, o.alpha_min, o.alpha_max)
            else:
                loss = distillation_kl(logits, teacher)
                divergence = loss.detach()
        ctx.backward(loss)
        divergences.append(divergence)
    return StepResult({"ce": ce.detach(), "divergence": torch.stack(divergences).mean()},
                      {"max": teacher, "min": logits.detach()})


def check_alphanet(spec) -> None:
    o = spec.options
    if o.divergence not in ("alpha", "kl"):
        raise ReproError(f"unknown divergence {o.divergence!r}; choose from: alpha, kl")
    if o.num_sampled < 0:
        raise ReproError("num-sampled must be >= 0")


METHODS.add("alphanet", Method(
    name="alphanet",
    summary="AlphaNet-style sandwich rule over depths: max net on labels, 2 random + min net by alpha-divergence",
    reads=frozenset({"split", "num_sampled", "divergence", "alpha_min", "alpha_max", "allow_duplicates",
                     "bn_recalibration_images"}),
    build_model=build_shared_norms,
    train_step=alphanet_step,
    monitor_configs=super_and_base,
    check=check_alphanet,
    eval_bn_images=lambda spec: spec.options.bn_recalibration_images,
    recipe_defaults=(("clip_grad_value", 1.0),),
))
