"""ADN training, paper Algorithm 1, and its ablations and distillation strategies.

Per batch: the teacher (the super-net) learns from labels, alpha * CE; the student (the
base-net) learns from the teacher's detached soft outputs, (1 - alpha) * T^2 * KL; two
backward passes (the super-net's graph is freed before the base-net runs) or one summed
backward, same gradient; one optimiser step. Only these two sub-networks are trained.

Ablations (paper Table 3): ``self_distill=False`` (student on labels), ``skip_aware_norms=False``
(one shared norm set), ``feature_distill=True`` (stage outputs distilled too). Beyond the
paper (issue 13): ``skip_aware_shortcuts=True`` gives the projection-shortcut BatchNorms of
mandatory blocks their own skip-aware set too; the official code shares them, so both passes
of Algorithm 1 mix two input distributions into their running statistics.
Distillation strategies (paper Table 4), ``distill_strategy``:
  super_to_base     the super-net teaches the base-net (Algorithm 1; default);
  super_to_random   the super-net teaches a random other sub-network each step;
  random_to_random  a random sub-network (learning from labels) teaches a random sub-network
                    that skips a strict superset of its stages (a shallower one).
Random draws come from a generator seeded by (seed, step): identical across ranks and resumes.
"""
from __future__ import annotations

import torch

from repro.errors import ReproError
from repro.methods.base import METHODS, Method, StepContext, StepResult, super_and_base
from repro.methods.losses import distillation_kl, feature_kl
from repro.models import build_model
from repro.skip import SkipConfig

STRATEGIES = ("super_to_base", "super_to_random", "random_to_random")


def build_adaptive(spec, info):
    o = spec.options
    return build_model(spec.arch, info.num_classes, in_channels=info.in_channels, image_size=info.image_size,
                       split=o.split, skip_aware_norms=o.skip_aware_norms,
                       skip_aware_shortcuts=o.skip_aware_shortcuts)


def pick_pair(num_stages: int, strategy: str, generator: torch.Generator) -> tuple[SkipConfig, SkipConfig]:
    """(teacher, student) sub-networks of one step."""
    configs = SkipConfig.all(num_stages)
    if strategy == "super_to_base":
        return configs[0], configs[-1]
    if strategy == "super_to_random":
        return configs[0], configs[1 + int(torch.randint(len(configs) - 1, (1,), generator=generator))]
    teacher = configs[int(torch.randint(len(configs) - 1, (1,), generator=generator))]  # any but the base-net
    shallower = [c for c in configs if c != teacher and all(s or not t for t, s in zip(teacher.flags, c.flags))]
    return teacher, shallower[int(torch.randint(len(shallower), (1,), generator=generator))]


def adn_step(images: torch.Tensor, targets: torch.Tensor, ctx: StepContext) -> StepResult:
    o = ctx.options
    teacher, student = pick_pair(ctx.module.num_stages, o.distill_strategy, ctx.generator())
    with ctx.autocast():
        out = ctx.model(images, teacher, return_features=o.feature_distill)
        teacher_logits, teacher_features = out if o.feature_distill else (out, None)
        ce = ctx.criterion(teacher_logits, targets)
        teacher_loss = o.alpha * ce
    if o.two_backward:
        ctx.backward(teacher_loss)
    with ctx.autocast():
        out = ctx.model(images, student, return_features=o.feature_distill)
        student_logits, student_features = out if o.feature_distill else (out, None)
        if o.self_distill:
            kd = distillation_kl(student_logits, teacher_logits, o.temperature, o.kl_topk)
        else:
            kd = ctx.criterion(student_logits, targets)
        losses = {"ce": ce.detach(), "kd": kd.detach()}
        if o.feature_distill:
            fkd = feature_kl(student_features, [f.detach() for f in teacher_features], o.temperature,
                             ctx.module.layout.channel_dim)
            losses["feature_kd"] = fkd.detach()
            kd = kd + fkd
        student_loss = (1 - o.alpha) * kd
    ctx.backward(student_loss if o.two_backward else teacher_loss + student_loss)
    return StepResult(losses, {"teacher": teacher_logits.detach(), "student": student_logits.detach()})


def check_adn(spec) -> None:
    o = spec.options
    if o.distill_strategy not in STRATEGIES:
        raise ReproError(f"unknown distill strategy {o.distill_strategy!r}; choose from: {', '.join(STRATEGIES)}")
    if not 0 <= o.alpha <= 1 or o.temperature <= 0:
        raise ReproError(f"alpha must be in [0, 1] and temperature > 0 (got {o.alpha}, {o.temperature})")
    if o.kl_topk is not None and o.kl_topk < 2:
        raise ReproError(f"kl-topk must be at least 2 (got {o.kl_topk})")


METHODS.add("adn", Method(
    name="adn",
    summary="Adaptive depth network, paper Algorithm 1: super-net on labels, base-net distilled from it "
            "(ablations --no-self-distill, --no-skip-norms, --feature-distill; beyond the paper "
            "--skip-aware-shortcuts)",
    reads=frozenset({"alpha", "temperature", "kl_topk", "two_backward", "feature_distill", "self_distill",
                     "skip_aware_norms", "split", "distill_strategy", "skip_aware_shortcuts"}),
    build_model=build_adaptive,
    train_step=adn_step,
    monitor_configs=super_and_base,
    check=check_adn,
))
