"""Looking inside a network: how much each residual block changes its input (paper
Figure 3) and where each block of a stage looks (Grad-CAM, paper Figure 8).

Both work on an ``AdaptiveDepthNetwork`` (any sub-network) and on a ``FixedDepthNetwork``
(its one depth), through ``model.blocks()``. They attach hooks for one call and remove
them afterwards, even on error, and leave the model's train/eval mode as they found it.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from repro.errors import ReproError
from repro.skip import SkipLike


# --------------------------------------------------------------------------- shared
def _running_blocks(model, config) -> list:
    """The blocks of ``model.blocks()`` that sub-network ``config`` runs."""
    return [b for b in model.blocks() if b.mandatory or not config.flags[b.stage]]


@contextmanager
def _probing(model: nn.Module) -> Iterator[list]:
    """Eval mode and a list for hook handles; both undone on exit."""
    was_training = model.training
    handles: list = []
    model.eval()
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    reference = next(model.parameters(), None)
    return reference.device if reference is not None else torch.device("cpu")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ReproError(f"images must be a non-empty (N, C, H, W) tensor, got {shape}")


# --------------------------------------------------------------------------- Figure 3
def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.detach().flatten(1).float().norm(dim=1)


class _ResidualProbe:
    """Hooks on one block collecting ||F(h)|| / ||h|| per sample."""

    def __init__(self, block: nn.Module, branch: str | None, path: str):
        self.block, self.branch, self.path = block, branch, path
        self.ratios: list[torch.Tensor] = []
        self._h_norm = self._f_norm = None

    def attach(self, handles: list) -> None:
        if self.branch is None:
            handles.append(self.block.register_forward_hook(self._on_difference))
            return
        try:
            branch_out = self.block.get_submodule(self.branch)
        except AttributeError:
            raise ReproError(f"block {self.path} has no residual-branch module {self.branch!r}") from None
        handles.append(self.block.register_forward_pre_hook(self._on_input))
        shortcut = getattr(self.block, "downsample", None)
        if shortcut is not None:
            # Runs after the pre-hook, so h becomes the projected shortcut that F(h) is added to.
            handles.append(shortcut.register_forward_hook(self._on_shortcut))
        handles.append(branch_out.register_forward_hook(self._on_branch))
        handles.append(self.block.register_forward_hook(self._on_output))

    def _on_input(self, module, args) -> None:
        self._h_norm = _norms(args[0])

    def _on_shortcut(self, module, args, output) -> None:
        self._h_norm = _norms(output)

    def _on_branch(self, module, args, output) -> None:
        self._f_norm = _norms(output)

    def _on_output(self, module, args, output) -> None:
        self.ratios.append((self._f_norm / self._h_norm).cpu())

    def _on_difference(self, module, args, output) -> None:
        h = args[0]
        self.ratios.append((_norms(output - h) / _norms(h)).cpu())


def residual_norm_ratios(model, images: torch.Tensor, skip: SkipLike = None, *, batch_size: int = 64):
    """||F(h)||_2 / ||h||_2 of every residual block that sub-network ``skip`` runs
    (paper Figure 3: small in skippable blocks of an ADN, which only refine features).

    h is what the residual branch's output F(h) is added to: the block input, or the
    output of the projection shortcut (``downsample``) where the block has one. With
    ``model.layout.residual_branch`` set (ResNet: ``bn3``), F(h) is that submodule's
    output; otherwise F(h) = block(h) - h (ViT and Swin blocks, whose two residual
    additions, attention and MLP, are taken together; MobileNetV2). MobileNetV2 blocks
    without a residual connection (``use_res_connect`` False: stride or channel change)
    are left out of the table.

    images: (N, C, H, W), fed in chunks of ``batch_size``; skip: default the super-net
    (a ``FixedDepthNetwork``'s own depth). Norms are per image over all non-batch
    dimensions.

    Returns a pandas DataFrame, one row per block in forward order: ``stage`` and
    ``block`` (1-based), ``role`` ("mandatory"/"skippable"), ``path`` (module path in
    ``model.net``), ``ratio_mean`` and ``ratio_std`` (over images, ddof 1: NaN for one
    image), ``images``.
    """
    import pandas as pd

    _check_images(images)
    config = model.parse_skip(skip)
    blocks = [b for b in _running_blocks(model, config) if getattr(b.module, "use_res_connect", True)]
    probes = [_ResidualProbe(b.module, model.layout.residual_branch, b.path) for b in blocks]
    device = _device(model)
    with _probing(model) as handles, torch.no_grad():
        for probe in probes:
            probe.attach(handles)
        for chunk in images.split(batch_size):
            model(chunk.to(device), skip=config)
    rows = []
    for b, probe in zip(blocks, probes):
        ratios = torch.cat(probe.ratios)
        rows.append({"stage": b.stage + 1, "block": b.index + 1, "role": "mandatory" if b.mandatory else "skippable",
                     "path": b.path, "ratio_mean": ratios.mean().item(),
                     "ratio_std": ratios.std().item() if len(ratios) > 1 else math.nan, "images": len(ratios)})
    return pd.DataFrame(rows, columns=["stage", "block", "role", "path", "ratio_mean", "ratio_std", "images"])


# --------------------------------------------------------------------------- Figure 8
def stage_grad_cams(model, images: torch.Tensor, stage: int, skip: SkipLike = None,
                    target_classes: int | Sequence[int] | torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Grad-CAM (Selvaraju et al. 2017) of each block of one stage (paper Figure 8).

    For every block of ``stage`` (1-based) that sub-network ``skip`` runs: the gradient
    of the target logit (default: each image's predicted class) w.r.t. the block's
    output, averaged over space as channel weights; ReLU of the weighted channel sum;
    bilinearly upsampled to the input size and scaled to [0, 1] per image (min-max; an
    all-zero map stays zero).

    Block outputs may be NCHW (ResNet, MobileNetV2), NHWC (Swin) or tokens (ViT: a
    class token, dropped, then a square grid of patch tokens). In a ViT the last
    block's patch tokens get no gradient (the head reads the class token only), so its
    map is zero. Parameters' ``requires_grad`` and ``.grad`` are not touched: gradients
    are taken w.r.t. the block outputs only.

    Returns {block path: (N, H, W) float tensor on the CPU}, in forward order.
    """
    _check_images(images)
    config = model.parse_skip(skip)
    if not 1 <= stage <= model.num_stages:
        raise ReproError(f"stage {stage}: {model.name} has stages 1 to {model.num_stages}")
    blocks = [b for b in _running_blocks(model, config) if b.stage == stage - 1]
    activations: dict[str, torch.Tensor] = {}

    def keep(path):
        def hook(module, args, output):
            activations[path] = output
        return hook

    with _probing(model) as handles, torch.enable_grad():
        for b in blocks:
            handles.append(b.module.register_forward_hook(keep(b.path)))
        # An input that requires grad makes every activation part of the graph, even
        # when the parameters are frozen.
        x = images.to(_device(model)).detach().requires_grad_(True)
        logits = model(x, skip=config)
        targets = _targets(logits, target_classes)
        score = logits.gather(1, targets[:, None]).sum()
        outputs = [activations[b.path] for b in blocks]
        grads = torch.autograd.grad(score, outputs, allow_unused=True)
    size = images.shape[-2:]
    cams = {}
    for b, output, grad in zip(blocks, outputs, grads):
        grad = torch.zeros_like(output) if grad is None else grad
        cams[b.path] = _grad_cam(_as_nchw(output.detach(), model.layout.channel_dim),
                                 _as_nchw(grad, model.layout.channel_dim), size)
    return cams


def _targets(logits: torch.Tensor, target_classes) -> torch.Tensor:
    n = len(logits)
    if target_classes is None:
        return logits.argmax(dim=1)
    targets = torch.as_tensor(target_classes, device=logits.device).long().flatten()
    if targets.numel() == 1:
        targets = targets.expand(n)
    if targets.numel() != n or targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ReproError(f"target classes must be one class or one per image ({n}), "
                         f"each in 0..{logits.shape[1] - 1}")
    return targets


def _as_nchw(t: torch.Tensor, channel_dim: int) -> torch.Tensor:
    if t.ndim == 4:
        return t if channel_dim == 1 else t.permute(0, 3, 1, 2)
    if t.ndim == 3:  # tokens (N, L, D), possibly with a leading class token
        n, length, dim = t.shape
        for drop in (0, 1):
            side = math.isqrt(length - drop)
            if side * side == length - drop:
                return t[:, drop:].reshape(n, side, side, dim).permute(0, 3, 1, 2)
    raise ReproError(f"Grad-CAM is implemented for convolutional (N, C, H, W) and square token-grid "
                     f"stage outputs, not shape {tuple(t.shape)}")


def _grad_cam(activation: torch.Tensor, grad: torch.Tensor, size) -> torch.Tensor:
    weights = grad.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.float()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    low = cam.flatten(1).min(dim=1).values[:, None, None]
    high = cam.flatten(1).max(dim=1).values[:, None, None]
    return ((cam - low) / (high - low).clamp_min(1e-12)).clamp(0, 1).cpu()
