"""Saving and loading models: our own checkpoints, the official release's, torchvision's.

Every file is read with ``torch.load(..., weights_only=True)``: a checkpoint must never
run code. Nothing is returned half-loaded: a file that does not fit raises
``CheckpointError`` with one line saying why.
"""
from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from repro.errors import ReproError
from repro.files import torch_save
from repro.models import (ARCHS, AdaptiveDepthNetwork, ArchConfig, build_from_config, build_individual, build_model,
                          is_adaptive)

FORMAT = "adn-repro"
FORMAT_VERSION = 1
# Keys under which training scripts wrap a state dict (torchvision reference, timm, ours).
WRAPPER_KEYS = ("model", "state_dict", "model_ema", "module")


class CheckpointError(ReproError):
    pass


# --------------------------------------------------------------------------- our format
def checkpoint_payload(model: nn.Module) -> dict:
    """The model part of one of our checkpoints: plain data and tensors only."""
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "arch_config": model.config.to_dict(),
               "state_dict": model.state_dict()}
    if not is_adaptive(model):  # a network of one depth is rebuilt with that depth
        payload["depth"] = str(model.configs()[0])
    return payload


def save_checkpoint(path: str | Path, model: nn.Module, **extra) -> Path:
    """Writes ``model`` (and JSON-like ``extra`` entries) atomically."""
    return torch_save(path, {**checkpoint_payload(model), **extra})


def model_from_payload(payload: dict, source: str = "checkpoint") -> nn.Module:
    try:
        config = ArchConfig.from_dict(payload["arch_config"])
        if config.arch not in ARCHS:
            raise CheckpointError(f"{source} is of architecture {config.arch!r}, which this version "
                                  f"does not know")
        if "depth" in payload:
            model = build_individual(config.arch, payload["depth"], config.num_classes,
                                     in_channels=config.in_channels, image_size=config.image_size,
                                     split=config.split)
        else:
            model = build_from_config(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{source} is damaged: {_first_line(error)}") from None
    except RuntimeError as error:
        raise CheckpointError(f"{source} does not fit its own architecture: {_first_line(error)}") from None
    return model


# --------------------------------------------------------------------------- reading
def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with weights only, and one clear line for every way it can fail."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # torchvision's reference scripts store their arguments as an argparse.Namespace.
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if found:
            raise CheckpointError(f"{path} holds a pickled object ({found.group(1)}) rather than tensors "
                                  f"and plain data; refusing to load it (a checkpoint must never run code)") from None
        raise unreadable(path) from None
    except Exception:  # torch.load fails on foreign or damaged bytes with many error types
        raise unreadable(path) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dictionary")
    return obj


def unreadable(path: Path) -> CheckpointError:
    """One sentence naming the file; torch's own explanation (hundreds of characters about
    ``weights_only``) would not help."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    # torch.save writes a zip archive; its legacy format starts with a pickle protocol byte.
    if magic[:4] == b"PK\x03\x04" or magic[:1] == b"\x80":
        return CheckpointError(f"{path} is not a readable PyTorch checkpoint: it is corrupt or truncated")
    return CheckpointError(f"{path} is not a readable PyTorch checkpoint: it is another kind of file")


def load_checkpoint(path: str | Path, arch: str | None = None, *, ema: bool = False) -> nn.Module:
    """A ready model (in eval mode) from any supported checkpoint file.

    (a) our checkpoints, which name their architecture; (b) the official release's state
    dicts (``*_skip`` norms), possibly wrapped under ``model``/``model_ema`` and with
    ``module.`` prefixes; (c) torchvision's plain ImageNet weights, whose skip-aware norms
    start as copies of the main norms. ``arch`` is checked against (a) and picks the
    architecture for (b) and (c); without it the architecture is recognised from the keys.
    ema: prefer ``model_ema`` weights where a file holds both.
    """
    obj = read_checkpoint(path)
    if obj.get("format") == FORMAT:
        if ema and isinstance(obj.get("ema_state_dict"), dict):
            obj = {**obj, "state_dict": obj["ema_state_dict"]}
        model = model_from_payload(obj, str(path))
        if arch is not None and model.config.arch != arch:
            raise CheckpointError(f"{path} is a {model.config.arch} checkpoint, not {arch}")
        return model.eval()
    state = _unwrap_state_dict(obj, ema, path)
    return import_state_dict(state, arch, source=str(path)).eval()


def _unwrap_state_dict(obj: dict, ema: bool, path) -> dict[str, torch.Tensor]:
    keys = ("model_ema",) + WRAPPER_KEYS if ema else WRAPPER_KEYS
    for key in keys:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path} is not a state dict: entry {key!r} is a {type(value).__name__}")
        if key == "n_averaged":  # torch.optim.swa_utils.AveragedModel's counter
            continue
        state[key.removeprefix("module.")] = value
    if not state:
        raise CheckpointError(f"{path} holds no model weights")
    return state


# --------------------------------------------------------------------------- foreign state dicts
def import_state_dict(state: dict[str, torch.Tensor], arch: str | None = None,
                      source: str = "state dict") -> AdaptiveDepthNetwork:
    """An ADN from an official-release or torchvision state dict (see ``load_checkpoint``)."""
    official = any("_skip." in key for key in state)
    candidates = [arch] if arch is not None else [a for a in ARCHS.names() if ARCHS.get(a).resolution == 224]
    problems = {}
    for name in candidates:
        mapped = _map_keys(state, name, official)
        shape = _infer_shape(name, mapped)
        if shape is None:
            problems[name] = "its classifier or input layer is missing"
            continue
        num_classes, in_channels = shape
        with torch.device("meta"):
            probe = build_model(name, num_classes, in_channels=in_channels)
        problem = _mismatch(probe, mapped, official)
        if problem is None:
            model = build_model(name, num_classes, in_channels=in_channels)
            _fill_skip_norms(model, mapped)
            model.load_state_dict(mapped)
            return model
        problems[name] = problem
    if arch is not None:
        raise CheckpointError(f"{source} does not fit {arch}: {problems[arch]}")
    kind = "an official-release" if official else "a torchvision-style"
    raise CheckpointError(f"{source} looks like {kind} state dict, but its keys match no registered "
                          f"architecture ({', '.join(candidates)}); pass the architecture explicitly "
                          f"to see what differs")


def _map_keys(state: dict, arch: str, official: bool) -> dict[str, torch.Tensor]:
    rename = ARCHS.get(arch).official_keys if official else None
    return {f"net.{rename(k) if rename else k}": v for k, v in state.items()}


def _infer_shape(arch: str, mapped: dict) -> tuple[int, int] | None:
    """(num_classes, in_channels) read off the weights of the classifier and input layer."""
    with torch.device("meta"):
        probe = build_model(arch)
    linears = [n for n, m in probe.named_modules() if isinstance(m, nn.Linear)]
    convs = [n for n, m in probe.named_modules() if isinstance(m, nn.Conv2d)]
    head, stem = f"{linears[-1]}.weight", f"{convs[0]}.weight"
    if head not in mapped or stem not in mapped:
        return None
    return mapped[head].shape[0], mapped[stem].shape[1]


def _mismatch(probe: nn.Module, mapped: dict, official: bool) -> str | None:
    expected = probe.state_dict()
    optional = set() if official else {k for k in expected if ".skip." in k}
    missing = sorted(set(expected) - set(mapped) - optional)
    unexpected = sorted(set(mapped) - set(expected))
    wrong = sorted(k for k in set(expected) & set(mapped) if expected[k].shape != mapped[k].shape)
    if not (missing or unexpected or wrong):
        return None
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)):
        if keys:
            parts.append(f"{len(keys)} keys {label} (e.g. {keys[0].removeprefix('net.')})")
    return ", ".join(parts)


def _fill_skip_norms(model: nn.Module, mapped: dict) -> None:
    """Plain weights have no skip-aware norms: start them as copies of the main norms."""
    for key in model.state_dict():
        if ".skip." in key and key not in mapped:
            mapped[key] = mapped[key.replace(".skip.", ".")]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


__all__ = ["CheckpointError", "checkpoint_payload", "import_state_dict", "load_checkpoint",
           "model_from_payload", "read_checkpoint", "save_checkpoint"]


def checkpoint_dataset(path: str | Path) -> str | None:
    """The data set a run's checkpoint was trained on (None for other checkpoints)."""
    obj = read_checkpoint(path)
    spec = obj.get("spec")
    return spec.get("dataset") if isinstance(spec, dict) else None
