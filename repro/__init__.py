"""adn-repro: adaptive-depth networks (Kang & Lee, NeurIPS 2024), their baselines and analyses.

Public API::

    model = repro.build_model("resnet50", num_classes=1000)     # an ADN
    logits = model(images, skip="TTFF")                           # any of its 2^S sub-networks
    plain = repro.extract_subnetwork(model, "TTTT")               # a plain torchvision network
    model = repro.load_checkpoint("resnet50_adn.pth")             # ours, official or torchvision
"""
from repro.checkpoints import load_checkpoint, save_checkpoint
from repro.models import ARCHS, build_individual, build_model, extract_subnetwork
from repro.skip import SkipConfig

__all__ = ["ARCHS", "SkipConfig", "build_individual", "build_model", "extract_subnetwork",
           "load_checkpoint", "save_checkpoint"]
