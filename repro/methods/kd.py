"""``kd_individual``: a plain network of one depth trained with knowledge distillation.

loss = alpha * CE(labels) + (1 - alpha) * T^2 * KL(teacher || student), with the same alpha
and T as ADN. The teacher is, by default, the finished full-depth individual run (``individual
--depth FFFF`` for four stages) of the same preset, seed and recipe; ``--teacher PATH`` takes
any checkpoint instead. A teacher trained on another data set, or with another number of
classes, is refused.
"""
from __future__ import annotations

import dataclasses

import torch

from repro.checkpoints import checkpoint_dataset, load_checkpoint
from repro.errors import ReproError
from repro.evaluate import check_model_fits_data
from repro.methods.base import METHODS, Method, StepContext, StepResult
from repro.methods.individual import build_fixed, check_depth
from repro.methods.losses import distillation_kl
from repro.models import num_stages
from repro.runs import RunRecord, run_directory
from repro.specs import MethodOptions


def default_teacher_spec(spec):
    """The full-depth individual network of the same preset, seed and recipe."""
    options = MethodOptions(depth="F" * num_stages(spec.arch), split=spec.options.split)
    return dataclasses.replace(spec, method="individual", options=options)


def teacher_path(spec, results_dir) -> str:
    if spec.options.teacher:
        return spec.options.teacher
    teacher = default_teacher_spec(spec)
    record = RunRecord(run_directory(results_dir, teacher))
    if not record.is_finished() or not record.model_file.is_file():
        depth = teacher.options.depth
        raise ReproError(f"kd_individual needs its teacher, the finished individual {depth} run {record.path}; "
                         f"train it first (python cli.py train --arch {spec.arch} --method individual --depth {depth} "
                         f"--dataset {spec.dataset} --preset {spec.preset} --seed {spec.seed}) or pass --teacher")
    return str(record.model_file)


def teacher_finished(spec, results_dir) -> bool:
    """Whether ``spec`` may start as far as its teacher goes: it names a ``--teacher`` path
    (checked when it loads), or its default teacher run has finished with its model."""
    try:
        teacher_path(spec, results_dir)
    except ReproError:
        return False
    return True


def load_teacher(spec, info, results_dir, device):
    path = teacher_path(spec, results_dir)
    teacher_dataset = checkpoint_dataset(path)
    if teacher_dataset is not None and teacher_dataset != spec.dataset:
        raise ReproError(f"teacher {path} was trained on {teacher_dataset}, not {spec.dataset}")
    teacher = load_checkpoint(path, ema=True)
    check_model_fits_data(teacher, info, f"teacher {path}")
    teacher.to(device).eval().requires_grad_(False)
    if spec.recipe.channels_last:  # the student's batches are channels-last: match them (speed only)
        teacher.to(memory_format=torch.channels_last)
    return teacher


def kd_step(images, targets, ctx: StepContext) -> StepResult:
    o = ctx.options
    with torch.no_grad(), ctx.autocast():
        teacher_logits = ctx.state(images)
    with ctx.autocast():
        logits = ctx.model(images)
        ce = ctx.criterion(logits, targets)
        kd = distillation_kl(logits, teacher_logits, o.temperature)
        loss = o.alpha * ce + (1 - o.alpha) * kd
    ctx.backward(loss)
    return StepResult({"ce": ce.detach(), "kd": kd.detach()}, {"net": logits.detach()})


METHODS.add("kd_individual", Method(
    name="kd_individual",
    summary="A plain network of one depth distilled from a teacher (default: the individual FFFF run)",
    reads=frozenset({"depth", "split", "teacher", "alpha", "temperature"}),
    build_model=build_fixed,
    train_step=kd_step,
    monitor_configs=lambda model: model.configs(),
    check=check_depth,
    prepare=load_teacher,
))
