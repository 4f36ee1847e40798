"""``individual``: a plain, non-adaptive network of one depth trained on labels alone.

``depth=FFFF`` is the usual full network; ``depth=TTTT`` the paper's "-Base" network. The
network is made by the same builder as the ADN (its blocks for that depth, ordinary norms).
"""
from __future__ import annotations

from repro.errors import ReproError
from repro.methods.base import METHODS, Method, StepContext, StepResult
from repro.models import build_individual, num_stages
from repro.skip import SkipConfig


def build_fixed(spec, info):
    return build_individual(spec.arch, spec.options.depth, info.num_classes, in_channels=info.in_channels,
                            image_size=info.image_size, split=spec.options.split)


def individual_step(images, targets, ctx: StepContext) -> StepResult:
    with ctx.autocast():
        logits = ctx.model(images)
        ce = ctx.criterion(logits, targets)
    ctx.backward(ce)
    return StepResult({"ce": ce.detach()}, {"net": logits.detach()})


def check_depth(spec) -> None:
    if spec.options.depth is None:
        raise ReproError(f"method {spec.method} needs --depth (e.g. FFFF for the full network, TTTT for -Base)")
    SkipConfig.parse(spec.options.depth, num_stages(spec.arch), spec.arch)


METHODS.add("individual", Method(
    name="individual",
    summary="A plain network of one depth (--depth FFFF full, TTTT '-Base'), cross-entropy only",
    reads=frozenset({"depth", "split"}),
    build_model=build_fixed,
    train_step=individual_step,
    monitor_configs=lambda model: model.configs(),
    check=check_depth,
))
