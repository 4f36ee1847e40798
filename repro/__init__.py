"""adn-repro: adaptive-depth networks (Kang & Lee, NeurIPS 2024), their baselines and analyses.

Public API::

    model = repro.build_model("resnet50", num_classes=1000)     # an ADN
    logits = model(images, skip="TTFF")                           # any of its 2^S sub-networks
    plain = repro.extract_subnetwork(model, "TTTT")               # a plain torchvision network
    model = repro.load_checkpoint("resnet50_adn.pth")             # ours, official or torchvision
    choice = repro.select(model, accuracy, budget_ms=2.5)         # the best sub-network on this device
    runner = repro.AdaptiveRunner(model, choice.table)            # per-request budgets, thread-safe
    repro.export_subnetwork(model, "TTFF", "ttff.onnx")           # ONNX or torch.export (.pt2)
"""
from repro.checkpoints import load_checkpoint, save_checkpoint
from repro.deploy import AdaptiveRunner, export_subnetwork, select
from repro.models import ARCHS, build_individual, build_model, extract_subnetwork
from repro.skip import SkipConfig

__all__ = ["ARCHS", "AdaptiveRunner", "SkipConfig", "build_individual", "build_model", "export_subnetwork",
           "extract_subnetwork", "load_checkpoint", "save_checkpoint", "select"]
