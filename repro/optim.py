"""Optimiser, learning-rate schedule and weight EMA of a recipe (torchvision reference style)."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from repro.errors import ReproError
from repro.specs import Recipe

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
EMBEDDING_NAMES = ("class_token", "pos_embedding", "relative_position_bias_table")


def parameter_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """Weight decay everywhere except, when the recipe says so, on norms and biases and on
    transformer embeddings."""
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            exempt = (recipe.no_decay_norm_bias and (isinstance(module, NORM_TYPES) or name == "bias")) or \
                     (recipe.no_decay_embeddings and name in EMBEDDING_NAMES)
            (no_decay if exempt else decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, recipe: Recipe, *, lr_as_tensor: bool = False,
                   device: torch.device | str = "cpu") -> torch.optim.Optimizer:
    """``lr_as_tensor``: the learning rate lives in a device tensor that ``set_lr`` fills, so
    a compiled (captured) optimiser step reads each step's rate without recompiling."""
    groups = parameter_groups(model, recipe)
    if lr_as_tensor:
        for group in groups:
            group["lr"] = torch.tensor(recipe.lr, device=device)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=recipe.lr)
    raise ReproError(f"unknown optimizer {recipe.optimizer!r}; choose from: sgd, adamw")


def lr_factor(step: int, steps_per_epoch: int, recipe: Recipe) -> float:
    """Multiplier of the peak learning rate before optimiser step ``step`` (0-based).

    Linear warm-up from ``warmup_start_factor``, then cosine decay to ``lr_min`` or
    multistep decay by ``gamma`` at each milestone epoch; updated every step.
    """
    total = recipe.epochs * steps_per_epoch
    warmup = round(recipe.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return recipe.warmup_start_factor + (1 - recipe.warmup_start_factor) * step / warmup
    if recipe.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        floor = recipe.lr_min / recipe.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if recipe.schedule == "multistep":
        epoch = step / steps_per_epoch
        return recipe.gamma ** sum(epoch >= m for m in recipe.milestones)
    raise ReproError(f"unknown schedule {recipe.schedule!r}; choose from: cosine, multistep")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def make_ema(model: nn.Module, recipe: Recipe, world_size: int) -> AveragedModel | None:
    """EMA of weights and buffers, updated every ``ema_steps`` steps; its decay is adjusted
    to the number of updates as in torchvision's reference scripts."""
    if recipe.ema_decay is None:
        return None
    adjust = world_size * recipe.batch_size * recipe.ema_steps / recipe.epochs
    alpha = min(1.0, (1.0 - recipe.ema_decay) * adjust)
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(1.0 - alpha), use_buffers=True)
