"""Measurements the artifacts need besides accuracy: training-step timing (Table 2),
latency of sub-networks and of width variants (Figures 5, 6), residual norm ratios
(Figure 3), Grad-CAMs (Figure 8), architecture layouts (Table 5).

Each is computed once per preset and cached under ``results/<preset>/measurements/``
with its settings, the runs it read and its provenance; it is reused while both match.
Timings (training steps, latencies) depend on the device: one taken off the CPU is cached
beside the CPU's under the device kind's name (``timing-cuda.csv``), so neither replaces
the other.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from paper.study import Study
from repro.checkpoints import load_checkpoint
from repro.data import DATASETS, sample_images
from repro.errors import ReproError
from repro.files import torch_save, write_json, write_text
from repro.measure.flops import arch_summary
from repro.measure.latency import measure_depth_and_width, measure_latency
from repro.measure.probes import residual_norm_ratios, stage_grad_cams
from repro.measure.train_cost import IMAGENET_TRAIN_IMAGES, time_training_steps
from repro.models import ARCHS, build_model
from repro.registry import Registry
from repro.runs import RunRecord, collect_environment


@dataclass
class FinishedRun:
    role: str
    arch: str
    method: str
    seed: int
    record: RunRecord


@dataclass
class MeasureContext:
    study: Study
    finished: list[FinishedRun]  # runs of the artifacts being built
    data_path: str | None = None
    device: str = "cpu"

    def runs_in_role(self, role: str, arch: str) -> list[FinishedRun]:
        return sorted((r for r in self.finished if r.role == role and r.arch == arch), key=lambda r: r.seed)


def no_runs(ctx: MeasureContext) -> list[FinishedRun]:
    return []


@dataclass(frozen=True)
class Measurement:
    name: str
    settings: Callable[[Study], dict]
    uses: Callable[[MeasureContext], list[FinishedRun]]
    compute: Callable[[MeasureContext], object]  # DataFrame, or a dict of tensors (saved with torch)
    per_device: bool = False  # a timing: taken and cached per device kind

    @property
    def reads_runs(self) -> bool:
        """Whether it needs trained runs (else ``reproduce`` takes it before training)."""
        return self.uses is not no_runs


MEASUREMENTS: Registry[Measurement] = Registry("measurement")


def measurement(name: str, settings: Callable[[Study], dict], uses=no_runs, per_device: bool = False):
    def register(compute):
        MEASUREMENTS.add(name, Measurement(name, settings, uses, compute, per_device))
        return compute
    return register


def device_kind(device: str) -> str:
    """'cpu', 'cuda', ... of a device string such as 'cuda:1'."""
    return torch.device(device).type


def cached_name(name: str, device: str = "cpu") -> str:
    """File stem of a cached measurement: a timing taken off the CPU carries its device
    kind (``timing-cuda``); the CPU's and every measurement that is no timing do not."""
    kind = device_kind(device)
    return f"{name}-{kind}" if MEASUREMENTS.get(name).per_device and kind != "cpu" else name


def timed_on(names, folder: Path, device: str = "cpu") -> list[str]:
    """The hardware that took the cached timings among ``names`` on ``device``'s kind (the
    GPU's or the CPU's model name, from each cache's provenance), each named once."""
    found, on_gpu, index = [], device_kind(device) == "cuda", torch.device(device).index or 0
    for name in names:
        if not MEASUREMENTS.get(name).per_device or not (info := cache_files(name, folder, device)[0]).exists():
            continue
        hardware = json.loads(info.read_text()).get("hardware") or {}
        gpus = hardware.get("cuda_devices") or []
        label = (gpus[index] if index < len(gpus) else None) if on_gpu else hardware.get("cpu")
        if label and label not in found:
            found.append(label)
    return found


def cache_files(name: str, folder: Path, device: str = "cpu") -> tuple[Path, Path]:
    """(settings and provenance, data) of a cached measurement."""
    stem = cached_name(name, device)
    return folder / f"{stem}.json", folder / (f"{stem}.pt" if name == "cams" else f"{stem}.csv")


def is_cached(name: str, ctx: MeasureContext, folder: Path) -> bool:
    """Whether ``measure`` would reuse the cache: same settings, same input runs."""
    m = MEASUREMENTS.get(name)
    info_file, data_file = cache_files(name, folder, ctx.device)
    if not (info_file.is_file() and data_file.is_file()):
        return False
    key = {"settings": m.settings(ctx.study), "runs": [r.record.path.name for r in m.uses(ctx)]}
    info = json.loads(info_file.read_text())
    return {k: info.get(k) for k in key} == json.loads(json.dumps(key))


def measure(name: str, ctx: MeasureContext, folder: Path, echo=print):
    """The cached measurement if its settings and input runs match, else a fresh one."""
    m = MEASUREMENTS.get(name)
    used = m.uses(ctx)
    key = {"settings": m.settings(ctx.study), "runs": [r.record.path.name for r in used]}
    info_file, data_file = cache_files(name, folder, ctx.device)
    if is_cached(name, ctx, folder):
        return _read(data_file)
    if device_kind(ctx.device) == "cuda" and not torch.cuda.is_available():
        raise ReproError(f"{data_file} is missing or was measured with other settings, and this machine has no "
                         f"CUDA device to measure it on")
    echo(f"measuring {cached_name(name, ctx.device)} ...")
    started = time.perf_counter()
    result = m.compute(ctx)
    _write(data_file, result)
    write_json(info_file, {**key, "wall_s": round(time.perf_counter() - started, 1), **collect_environment()})
    return _read(data_file)


def _write(path: Path, result) -> None:
    if path.suffix == ".pt":
        torch_save(path, result)
    else:
        write_text(path, result.to_csv(index=False))


def _read(path: Path):
    if path.suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)
    return pd.read_csv(path)


def _trained_model(run: FinishedRun):
    if not run.record.model_file.is_file():
        raise ReproError(f"this measurement needs the weights of run {run.record.path.name}, but its model.pt is "
                         f"not here (run records are committed without checkpoints); move {run.record.path} "
                         f"away to retrain it")
    return load_checkpoint(run.record.model_file, ema=True)


def _arch_shape(arch: str) -> tuple[int, int, int]:
    spec = ARCHS.get(arch)
    return spec.in_channels, spec.resolution, spec.resolution


# --------------------------------------------------------------------------- Table 2
def _epoch_images(study: Study) -> int:
    """ImageNet's epoch for ImageNet-size networks, else the study's own data set."""
    if ARCHS.get(study.timing_arch).resolution >= 224:
        return IMAGENET_TRAIN_IMAGES
    return DATASETS.get(study.dataset).train_images


@measurement("timing", lambda s: {"arch": s.timing_arch, "batch": s.timing_batch, "steps": s.timing_steps,
                                  "epoch_images": _epoch_images(s)}, per_device=True)
def timing(ctx: MeasureContext):
    s = ctx.study
    return time_training_steps(s.timing_arch, input_shape=_arch_shape(s.timing_arch),
                               num_classes=ARCHS.get(s.timing_arch).num_classes, batch_size=s.timing_batch, steps=s.timing_steps, device=ctx.device,
                               epoch_images=_epoch_images(s))


# --------------------------------------------------------------------------- Figures 5 and 6
@measurement("latency", lambda s: {"arch": s.convnet, "repeats": s.latency_repeats, "batch_size": 1},
             per_device=True)
def latency(ctx: MeasureContext):
    s = ctx.study
    return measure_latency(build_model(s.convnet), _arch_shape(s.convnet), device=ctx.device,
                           repeats=s.latency_repeats)


@measurement("depth_width_latency", lambda s: {"arch": "resnet50", "resolution": s.width_resolution,
                                               "repeats": s.latency_repeats, "batch_size": 1},
             per_device=True)
def depth_width_latency(ctx: MeasureContext):
    """ResNet50's sub-networks and width variants in one interleaved comparison (Figure 6a)."""
    r = ctx.study.width_resolution
    return measure_depth_and_width(build_model("resnet50"), (3, r, r), device=ctx.device,
                                   repeats=ctx.study.latency_repeats)


# --------------------------------------------------------------------------- Table 5
def _study_archs(study: Study) -> list[str]:
    names = [*study.table1_archs, *study.ablation_archs, study.convnet, study.transformer]
    return list(dict.fromkeys(names))


@measurement("layouts", lambda s: {"archs": _study_archs(s)})
def layouts(ctx: MeasureContext):
    table = arch_summary(_study_archs(ctx.study))
    return table.rename(columns={"mandatory/skippable": "split", "super_params_m": "params_m"})


# --------------------------------------------------------------------------- Figures 3 and 8
def _adn_and_individual(ctx: MeasureContext) -> list[FinishedRun]:
    arch = ctx.study.convnet
    return ctx.runs_in_role("ADN", arch) + ctx.runs_in_role("individual", arch)


@measurement("norms", lambda s: {"arch": s.convnet, "images": s.norm_images}, _adn_and_individual)
def norms(ctx: MeasureContext):

    images, _, _ = sample_images(ctx.study.dataset, ctx.study.norm_images, data_path=ctx.data_path)
    tables = []
    for run in _adn_and_individual(ctx):
        table = residual_norm_ratios(_trained_model(run), images)
        role = "ADN super-net" if run.method == "adn" else "individual"
        tables.append(table.rename(columns={"role": "kind"}).assign(role=role, arch=run.arch, seed=run.seed))
    return pd.concat(tables, ignore_index=True)


CAM_STAGE = 3


@measurement("cams", lambda s: {"arch": s.convnet, "images": s.cam_images, "stage": CAM_STAGE}, _adn_and_individual)
def cams(ctx: MeasureContext):
    images, _, _ = sample_images(ctx.study.dataset, ctx.study.cam_images, data_path=ctx.data_path)
    runs = {r.method: r for r in reversed(_adn_and_individual(ctx))}  # the first seed of each
    models = {method: _trained_model(run) for method, run in runs.items()}  # each loaded once
    result: dict[str, dict[str, torch.Tensor]] = {}
    for role, method, skip in (("ADN super-net", "adn", None), ("ADN base-net", "adn", "base"),
                               ("individual", "individual", None)):
        if method not in models:
            continue
        model = models[method]
        skippable = {b.path for b in model.blocks() if not b.mandatory}
        maps = stage_grad_cams(model, images, CAM_STAGE, skip)
        result[role] = {f"{CAM_STAGE}.{i + 1}" + (" (skippable)" if path in skippable else ""): cam
                        for i, (path, cam) in enumerate(maps.items())}
    return {"cams": result, "images": images}
