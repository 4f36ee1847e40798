"""A fixed handful of real images from a data set (probes: norm ratios, Grad-CAM)."""
from __future__ import annotations

import torch

from repro.data.registry import DatasetInfo, load_data
from repro.errors import ReproError


def sample_images(dataset: str, count: int, *, split: str = "test", data_path: str | None = None,
                  device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, DatasetInfo]:
    """The first ``count`` images (normalised, not augmented) and labels of one split, in
    the split's fixed order, with the data set's info."""
    if count < 1:
        raise ReproError(f"--images {count}: need at least one image")
    if split not in ("train", "val", "test"):
        raise ReproError(f"split {split!r}: choose train, val or test")
    data = load_data(dataset, batch_size=count, device=device, data_path=data_path, augment=False)
    images, labels = [], []
    kept = 0
    for x, y in getattr(data, split).epoch(0):
        images.append(x)
        labels.append(y)
        kept += len(y)
        if kept >= count:
            break
    if not images:
        raise ReproError(f"data set {dataset} has no {split} images")
    return torch.cat(images)[:count], torch.cat(labels)[:count], data.info
