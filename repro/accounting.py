"""Per-epoch training sums kept on the device, read by the host only at logging points.

Reading a loss (``float(loss)``), a correct count (``int(...)``) or a finiteness flag
every step makes the host wait for the device each step: on a GPU that serialises
Python's kernel launches with the device's work and leaves it idle most of the time
for small networks. Here every step only adds device tensors; ``read()`` copies them to
the host once (one synchronisation) at a logging interval and at the epoch's end, and
the NaN guard checks what it read.
"""
from __future__ import annotations

import math

import torch

from repro.errors import ReproError


class TrainingDiverged(ReproError):
    pass


class EpochSums:
    """Images, loss sums (per loss part) and top-1 correct counts (per role) of one epoch,
    plus host-side timing. ``partial`` restores the floats a checkpoint saved mid-epoch."""

    def __init__(self, partial: dict | None = None):
        partial = partial or {}
        self.images: int = partial.get("images", 0)
        self.data_s: float = partial.get("data_s", 0.0)
        self.train_s: float = partial.get("train_s", 0.0)
        # floats (restored) or device tensors (this segment): a float plus a tensor is a tensor
        self.losses: dict[str, float | torch.Tensor] = dict(partial.get("losses", {}))
        self.correct: dict[str, float | torch.Tensor] = dict(partial.get("correct", {}))

    def add(self, losses: dict[str, torch.Tensor], logits: dict[str, torch.Tensor], targets: torch.Tensor) -> None:
        """One step's detached losses (batch means) and logits; no host synchronisation."""
        n = len(targets)
        self.images += n
        hard = targets.argmax(dim=1) if targets.dim() > 1 else targets  # mixup: the most likely class
        for name, value in losses.items():
            self.losses[name] = self.losses.get(name, 0.0) + value.detach().float() * n
        for role, out in logits.items():
            self.correct[role] = self.correct.get(role, 0.0) + (out.argmax(dim=1) == hard).sum()

    def read(self) -> dict:
        """The sums as host floats (one device synchronisation): the form a checkpoint saves."""
        names = [("losses", k) for k in self.losses] + [("correct", k) for k in self.correct]
        values = [getattr(self, part)[k] for part, k in names]
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        if tensors:
            device_values = iter(torch.stack([t.float() for t in tensors]).tolist())
            values = [next(device_values) if isinstance(v, torch.Tensor) else v for v in values]
        out = {"images": self.images, "data_s": self.data_s, "train_s": self.train_s, "losses": {}, "correct": {}}
        for (part, key), value in zip(names, values):
            out[part][key] = float(value)
        return out


def check_finite(read: dict, where: str, kept: str) -> None:
    """The NaN guard at a logging point: any non-finite step loss since the epoch began
    leaves a non-finite sum. Raised before any checkpoint of that state is written."""
    total = sum(read["losses"].values())
    if not math.isfinite(total):
        raise TrainingDiverged(f"the loss became {total} {where}; stopped without saving: {kept} "
                               f"(try a lower learning rate)")
