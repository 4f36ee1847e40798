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
import importlib

# The public names and where they live. Imported on first use (PEP 562), so that light
# modules such as repro.errors and repro.skip load without torch (analysis/ imports them).
_EXPORTS = {
    "load_checkpoint": "repro.checkpoints", "save_checkpoint": "repro.checkpoints",
    "AdaptiveRunner": "repro.deploy", "export_subnetwork": "repro.deploy", "select": "repro.deploy",
    "ARCHS": "repro.models", "build_individual": "repro.models", "build_model": "repro.models",
    "extract_subnetwork": "repro.models", "SkipConfig": "repro.skip",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'repro' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
