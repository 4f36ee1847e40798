"""The paper's published numbers (analysis/reference/paper.csv) and our architectures' analogues.

``paper.csv`` holds only what PAPER.md quotes from the official README model zoo
(ImageNet val, 224 px) plus the individual networks derived from the published gains;
each row names its source. Tables 2, 3, 4 and 7 of the paper are not there, so the
tables built from it show NaN in their ``paper_*`` columns.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

REFERENCE_CSV = Path(__file__).parent / "reference" / "paper.csv"

# Our architecture -> the paper's model it stands in for (vit_b_32 has no model-zoo entry).
PAPER_ANALOGUE = {
    "resnet_mini": "ResNet50",
    "resnet50": "ResNet50",
    "mobilenet_v2_mini": "MobileNetV2",
    "mobilenet_v2": "MobileNetV2",
    "vit_mini": "ViT-b/16",
    "vit_b_16": "ViT-b/16",
    "swin_t": "Swin-T",
}

REFERENCE_COLUMNS = ["artifact", "model", "network", "skip", "gflops", "acc1_pct", "delta_pct",
                     "dataset", "source"]


def load_reference() -> pd.DataFrame:
    """Returns paper.csv: columns REFERENCE_COLUMNS; gflops in G multiply-adds, accuracies in %."""
    return pd.read_csv(REFERENCE_CSV, dtype={"skip": str})


def paper_model(arch: str) -> str | None:
    """The paper's model name for one of our architectures, or None (e.g. vit_b_32)."""
    return PAPER_ANALOGUE.get(arch)
