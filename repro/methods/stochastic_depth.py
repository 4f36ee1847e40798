"""``stochastic_depth``: the "why not just LayerDrop?" baseline (issue 18).

The super-net alone learns from labels, and in training each *skippable* block (the same
blocks the ADN's skip configs leave out) is dropped per sample with probability
``drop_rate``: that sample's block output is replaced by its input, exactly what skipping
the block does at test time. Mandatory blocks always run. No skip-aware norms, no
distillation. At test time its sub-networks are the ADN's skip configs, so its 2^S
sub-networks sit in the same accuracy-vs-GFLOPs plot (paper Figure 4b).

Dropping whole blocks without rescaling follows LayerDrop (Fan et al., *Reducing
Transformer Depth on Demand with Structured Dropout*, ICLR 2020): layers are dropped in
training and pruned at test time, with no compensation, so the pruned network sees in
training what it computes at test. Per-sample rather than per-batch draws (stochastic
depth's "row" mode) keep the batch statistics of BatchNorm smooth and leave no parameter
unused in a DDP step.

Default ``drop_rate = 0.2``: Fan et al. use p = 0.2 in their experiments and recommend
about 0.1-0.2 (higher only when pruning aggressively). Here only the skippable blocks
(7 of ResNet50's 16 blocks, 4 of ViT-b's 12) are ever dropped, so 0.2 per skippable block
drops 0.07-0.09 of all blocks, at the low end of that range, while each block the base-net
leaves out is still absent from a fifth of the samples it sees.
"""
from __future__ import annotations

import torch

from repro.errors import ReproError
from repro.methods.base import METHODS, Method, StepContext, StepResult, super_and_base
from repro.models import build_model


def _drop_whole_block(rate: float):
    def hook(module, args, output):
        if not module.training or rate == 0:
            return output
        x = args[0]
        keep = torch.rand(x.shape[0], device=x.device) >= rate
        return torch.where(keep.view(-1, *[1] * (output.ndim - 1)), output, x)
    return hook


def build_with_drop_path(spec, info):
    """The ADN structure with one shared norm set; its skippable blocks drop per sample in
    training. The hooks are not part of the state dict: a checkpoint reloads as a plain ADN
    without skip-aware norms, which is all evaluation needs."""
    model = build_model(spec.arch, info.num_classes, in_channels=info.in_channels, image_size=info.image_size,
                        split=spec.options.split, skip_aware_norms=False)
    for block in model.blocks():
        if not block.mandatory:
            block.module.register_forward_hook(_drop_whole_block(spec.options.drop_rate))
    return model


def stochastic_depth_step(images, targets, ctx: StepContext) -> StepResult:
    with ctx.autocast():
        logits = ctx.model(images)  # the super-net, skippable blocks dropped at random
        ce = ctx.criterion(logits, targets)
    ctx.backward(ce)
    return StepResult({"ce": ce.detach()}, {"super": logits.detach()})


def check_rate(spec) -> None:
    if not 0 <= spec.options.drop_rate < 1:
        raise ReproError(f"drop-rate must be in [0, 1) (got {spec.options.drop_rate})")


METHODS.add("stochastic_depth", Method(
    name="stochastic_depth",
    summary="LayerDrop-style baseline: super-net on labels, skippable blocks dropped per sample "
            "(--drop-rate, default 0.2), shared norms, no distillation",
    reads=frozenset({"drop_rate", "split"}),
    build_model=build_with_drop_path,
    train_step=stochastic_depth_step,
    monitor_configs=super_and_base,
    check=check_rate,
))
