"""Adaptive-depth models: the paper's change (``adaptive``), plain networks of one depth
(``extract``), the interface both offer (``interface``) and one file per family."""
from repro.models import mobilenet, resnet, swin, vit  # noqa: F401  (they register their architectures)
from repro.models import convnext, efficientnet, regnet  # noqa: F401,E402  (after the paper's families, so they list first)
from repro.models.adaptive import AdaptiveDepthNetwork
from repro.models.extract import FixedDepthNetwork, extract_subnetwork, fixed_depth
from repro.models.interface import ArchConfig, DepthNetwork, is_adaptive
from repro.models.layout import BlockInfo, Layout, Stage
from repro.models.registry import (ARCHS, build_from_config, build_individual, build_model, has_shortcut_norms,
                                   num_stages, official_split)

__all__ = ["ARCHS", "AdaptiveDepthNetwork", "ArchConfig", "BlockInfo", "DepthNetwork", "FixedDepthNetwork",
           "Layout", "Stage", "build_from_config", "build_individual", "build_model", "extract_subnetwork",
           "fixed_depth", "has_shortcut_norms", "is_adaptive", "num_stages", "official_split"]
