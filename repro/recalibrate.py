"""BatchNorm statistics re-estimated for one sub-network, and how far the stored ones are.

Why it exists: in ADN training the shared norms (the projection shortcuts' in the official
ResNet) are updated by the super-net's and the base-net's passes alike, so their running
statistics mix two input distributions, and the 2^S - 2 sub-networks that were never
trained see combinations of statistics that no training pass produced. Stored statistics
are the paper's protocol and stay the main number; re-estimating them per sub-network on
a few thousand training images (``torch.optim.swa_utils.update_bn``: reset, cumulative
average, the sub-network's own path) shows how much of an accuracy gap is statistics and
how much is weights. AlphaNet-style training recalibrates every evaluated sub-network the
same way (its norms are not updated in training).
"""
from __future__ import annotations

import copy
import functools

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from repro.models import build_model
from repro.skip import SkipConfig

NORM_TYPES = nn.modules.batchnorm._BatchNorm


class _Selected(nn.Module):
    """One sub-network of an adaptive model as a plain ``module(x)`` (what ``update_bn`` calls)."""

    def __init__(self, model: nn.Module, config: SkipConfig):
        super().__init__()
        self.model, self.config = model, config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images, self.config)


def recalibration_images(train_batches, images: int, min_batch: int = 1) -> list[torch.Tensor]:
    """The first ``images`` training images of epoch 0 of un-augmented training batches
    (a ``Batches`` of ``load_data(..., augment=False)``), as a list of batches; consecutive
    batches are joined until each holds at least ``min_batch`` images (the last may hold
    fewer): the same images in the same order, in fewer, larger forward passes."""
    out, pending, kept = [], [], 0
    for batch, _ in train_batches.epoch(0):
        pending.append(batch[: images - kept])
        kept += len(pending[-1])
        if sum(map(len, pending)) >= min_batch or kept >= images:
            out.append(pending[0] if len(pending) == 1 else torch.cat(pending))
            pending = []
        if kept >= images:
            break
    if pending:
        out.append(torch.cat(pending))
    return out


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, NORM_TYPES) for m in model.modules())


@functools.cache
def arch_has_batch_norm(arch: str) -> bool:
    """Whether a registered architecture has BatchNorm statistics to re-estimate (vit_mini's
    LayerNorm keeps none); builds the network once per architecture."""
    return has_batch_norm(build_model(arch, num_classes=10))


def norm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every BatchNorm buffer of ``model`` (running mean and variance, batch count), by name."""
    return {f"{name}.{key}": buffer for name, module in model.named_modules() if isinstance(module, NORM_TYPES)
            for key, buffer in module.named_buffers(recurse=False)}


class RecalibratedCopy:
    """One copy of ``model`` holding the BatchNorm statistics re-estimated for each of
    ``configs`` on ``batches``: ``use(config)`` loads that sub-network's into ``self.model``
    (in eval mode), as ``recalibrated`` would give it; ``model`` itself is never changed.
    One copy instead of one per sub-network, so that an evaluation can run them all on the
    same batch and share their stage outputs (``repro.evaluate.evaluate_recalibrated``)."""

    def __init__(self, model: nn.Module, configs: list[SkipConfig], batches: list[torch.Tensor]):
        self.model = copy.deepcopy(model)
        self.statistics = {}
        for config in configs:
            with torch.no_grad():
                update_bn(batches, _Selected(self.model, config))  # resets every norm first
            self.statistics[config] = {name: b.clone() for name, b in norm_buffers(self.model).items()}
        self.model.eval()
        self._buffers = norm_buffers(self.model)

    def use(self, config: SkipConfig) -> None:
        with torch.no_grad():
            for name, value in self.statistics[config].items():
                self._buffers[name].copy_(value)


def recalibrated(model: nn.Module, config: SkipConfig, batches: list[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` in eval mode whose BatchNorm running statistics are re-estimated
    for sub-network ``config`` on ``batches``; ``model`` itself is never changed."""
    return RecalibratedCopy(model, [config], batches).model


def used_norms(model: nn.Module, config: SkipConfig, images: torch.Tensor) -> list[str]:
    """Names of the BatchNorms that sub-network ``config`` runs through, in call order."""
    called = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: called.append(name))
             for name, m in model.named_modules() if isinstance(m, NORM_TYPES)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(images[:1], config)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    # a skip-aware norm whose stage skips is called but hands over to its ``skip`` set
    return [name for name in dict.fromkeys(called) if f"{name}.skip" not in called]


def bn_drift(model: nn.Module, config: SkipConfig, batches: list[torch.Tensor]):
    """Per BatchNorm on ``config``'s path: how far its stored running statistics are from
    the ones re-estimated on ``batches`` for that sub-network.

    Columns: ``norm`` (module name), ``shortcut`` (a projection shortcut's norm),
    ``mean_abs_log_var_ratio`` (mean over channels of |log(stored var / re-estimated var)|)
    and ``mean_abs_mean_shift_std`` (mean of |stored mean - re-estimated mean| in
    re-estimated standard deviations).
    """
    import pandas as pd

    stored_norms, fresh = dict(model.named_modules()), dict(recalibrated(model, config, batches).named_modules())
    rows = []
    for name in used_norms(model, config, batches[0]):
        stored, new = stored_norms[name], fresh[name]
        var_old, var_new = stored.running_var.double().clamp_min(1e-12), new.running_var.double().clamp_min(1e-12)
        shift = (stored.running_mean.double() - new.running_mean.double()).abs() / var_new.sqrt()
        rows.append({"norm": name, "shortcut": ".downsample." in f".{name}.",
                     "mean_abs_log_var_ratio": float((var_old / var_new).log().abs().mean()),
                     "mean_abs_mean_shift_std": float(shift.mean())})
    return pd.DataFrame(rows, columns=["norm", "shortcut", "mean_abs_log_var_ratio", "mean_abs_mean_shift_std"])


def bn_drift_on_dataset(model: nn.Module, dataset: str, skip: str | None, images: int, *,
                        data_path: str | None = None, source: str = "the model", batch_size: int = 256):
    """``bn_drift`` of sub-network ``skip`` (default: the network's first config, the
    super-net) re-estimated on the first ``images`` un-augmented training images."""
    from repro.data import load_data
    from repro.evaluate import check_model_fits_data

    data = load_data(dataset, batch_size=batch_size, data_path=data_path, augment=False)
    check_model_fits_data(model, data.info, source)
    config = model.parse_skip(skip) if skip else model.configs()[0]
    return bn_drift(model, config, recalibration_images(data.train, images)).assign(skip=str(config))
