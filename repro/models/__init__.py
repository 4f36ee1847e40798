"""Adaptive-depth models: the paper's change (``adaptive``) and one file per family."""
from repro.models import mobilenet, resnet, swin, vit  # noqa: F401  (they register their architectures)
from repro.models import convnext, efficientnet  # noqa: F401,E402  (after the paper's families, so they list first)
from repro.models.adaptive import AdaptiveDepthNetwork, Layout, Stage, extract_subnetwork
from repro.models.registry import (ARCHS, ArchConfig, FixedDepthNetwork, build_from_config,
                                   build_individual, build_model, fixed_depth, has_shortcut_norms,
                                   num_stages, official_split)

__all__ = ["ARCHS", "AdaptiveDepthNetwork", "ArchConfig", "FixedDepthNetwork", "Layout", "Stage",
           "build_from_config", "build_individual", "build_model", "extract_subnetwork", "fixed_depth",
           "has_shortcut_norms", "num_stages", "official_split"]
