"""What each preset's study contains: architectures, data set, depths, splits and
measurement sizes. Data, not code paths: ``reproduce`` reads these to know which runs
and measurements an artifact needs.

The CPU presets (smoke, quick, mini) study the CPU-sized analogues on Fashion-MNIST:
``resnet_mini`` stands in for ResNet50, ``vit_mini`` for ViT-b/16 (and ViT-b/32 in the
ablation), ``mobilenet_v2_mini`` for MobileNetV2. ``paper`` names the paper's own
ImageNet networks.
"""
from __future__ import annotations

from dataclasses import dataclass

from repro.errors import ReproError


@dataclass(frozen=True)
class Study:
    preset: str
    dataset: str
    convnet: str  # the ResNet of Tables 2-4, 7 and Figures 3-6, 8
    transformer: str  # the ViT of Figure 7
    table1_archs: tuple[str, ...]  # Tables 1 and 6
    ablation_archs: tuple[str, ...]  # Table 3 (ResNet50 and ViT-b/32 in the paper)
    individual_depths: tuple[str, ...]  # Figure 4b: individual networks besides FFFF and TTTT
    kd_depths: tuple[str, ...]  # Figure 4b: KD-individual networks
    convnet_splits: tuple[tuple[int, ...], ...]  # Table 7 / Figure 6b, besides the official split
    transformer_long_split: tuple[int, ...]  # Figure 7: two skippable blocks per group
    timing_arch: str  # Table 2's timing mode (fake ImageNet-size batches)
    timing_batch: int
    timing_steps: int
    latency_repeats: int
    width_resolution: int  # Figure 6a: ResNet50 depth vs width variants at this input size
    cam_images: int = 4
    norm_images: int = 256
    only_archs: tuple[str, ...] = ()  # reproduce --arch: the runs (and table rows) of these architectures only


STUDIES = {
    "smoke": Study("smoke", "fashion_mnist", "resnet_mini", "vit_mini", ("resnet_mini",), ("resnet_mini",),
                   ("TTFF",), ("TTTT",), ((1, 1, 2, 1),), (1, 1, 1, 1), timing_arch="resnet_mini",
                   timing_batch=16, timing_steps=2, latency_repeats=5, width_resolution=64, cam_images=2,
                   norm_images=64),
    "quick": Study("quick", "fashion_mnist", "resnet_mini", "vit_mini", ("resnet_mini",), ("resnet_mini",),
                   ("TFFF", "TTFF", "TTTF"), ("TTTT",), ((1, 1, 2, 1), (2, 3, 5, 2)), (1, 1, 1, 1),
                   timing_arch="resnet50", timing_batch=16, timing_steps=3, latency_repeats=20,
                   width_resolution=224),
    "mini": Study("mini", "fashion_mnist", "resnet_mini", "vit_mini", ("resnet_mini", "mobilenet_v2_mini", "vit_mini"),
                  ("resnet_mini", "vit_mini"), ("TFFF", "TTFF", "TTTF"), ("TFFF", "TTFF", "TTTF", "TTTT"),
                  ((1, 1, 2, 1), (2, 3, 5, 2)), (1, 1, 1, 1), timing_arch="resnet50", timing_batch=32,
                  timing_steps=3, latency_repeats=30, width_resolution=224),
    "paper": Study("paper", "imagenet", "resnet50", "vit_b_16", ("resnet50", "mobilenet_v2", "vit_b_16", "swin_t"),
                   ("resnet50", "vit_b_32"), ("TFFF", "TTFF", "TTTF"), ("TFFF", "TTFF", "TTTF", "TTTT"),
                   ((1, 1, 2, 1), (2, 3, 5, 2)), (1, 1, 1, 1), timing_arch="resnet50", timing_batch=128,
                   timing_steps=20, latency_repeats=30, width_resolution=224),
}


def study_for(preset: str) -> Study:
    try:
        return STUDIES[preset]
    except KeyError:
        raise ReproError(f"unknown preset {preset!r}; choose one of {', '.join(STUDIES)}") from None
