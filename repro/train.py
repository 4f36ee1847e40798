"""The training engine: one loop for every method, data set, device and process count.

``train(spec, runtime)`` trains the run a ``RunSpec`` describes (or returns the finished
record if it exists), with checkpoints every epoch and on SIGINT/SIGTERM, exact resume,
per-epoch validation and a final evaluation of every sub-network. What one step does is
the method's business (repro/methods); Algorithm 1 is repro/methods/adn.py.
"""
from __future__ import annotations

import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from repro import distributed
from repro.accounting import EpochSums, TrainingDiverged, check_finite  # noqa: F401 (TrainingDiverged: API)
from repro.capture import compiled
from repro.data import load_data
from repro.errors import ReproError
from repro.evaluate import evaluate, evaluate_recalibrated, evaluation_table
from repro.files import torch_save
from repro.methods import METHODS, StepContext, check_options
from repro.methods.losses import soft_cross_entropy
from repro.models import ARCHS
from repro.optim import lr_factor, make_ema, make_optimizer, set_lr
from repro.precision import bf16_products_in_fp32, bf16_kernel_note, missing_bf16_units_note, products_in_fp32
from repro.recalibrate import has_batch_norm, recalibration_images
from repro.resume import Checkpointer
from repro.run_data import MIN_EVAL_BATCH, data_settings, mixup_cutmix
from repro.run_lock import held_by_main
from repro.runs import RunRecord, run_directory
from repro.specs import RunSpec
from repro.stopping import Interrupted, stop_requests


# Host reads of the device-side sums: progress line, NaN guard, DDP stop poll.
LOG_EVERY_STEPS = 50


@dataclass(frozen=True)
class Runtime:
    """Run-time choices: where things are and how to run, never what is learned."""

    results_dir: str = "results"
    data_path: str | None = None
    device: str = "auto"
    workers: int = 4
    resume: bool = False
    progress: bool = True
    label: str | None = None  # the progress bar's name
    # a recovery checkpoint mid-epoch at the first logging point this long after the last
    # one (a hard kill loses at most this much work); 0: at every logging point
    checkpoint_minutes: float = 10.0
    # called with (steps done, steps in the run) at each logging point (concurrent runs' bars)
    on_progress: Callable[[int, int], None] | None = None
    # a run another process is training (repro.run_lock): wait for it to let go, else RunBusy
    wait_if_busy: bool = False
    # a run says what its device lacks (bf16 units) as it starts; off where the caller said it
    # once for many runs (reproduce)
    machine_notes: bool = True


@dataclass
class TrainResult:
    record: RunRecord
    reused: bool
    model: nn.Module | None  # None when a finished record was reused


def train(spec: RunSpec, runtime: Runtime = Runtime()) -> TrainResult:
    check_options(spec)
    record = RunRecord(run_directory(runtime.results_dir, spec))
    if record.is_finished():
        return TrainResult(record, True, None)
    processes = distributed.start(runtime.device)
    try:
        with held_by_main(record.path, processes, wait=runtime.wait_if_busy):
            if record.is_finished():  # by the process that held the run before
                return TrainResult(record, True, None)
            if record.exists() and not runtime.resume:
                raise ReproError(f"run {record.path} exists but did not finish ({record.env().get('status', '?')}); "
                                 f"pass --resume to continue it from its last checkpoint")
            return Trainer(spec, runtime, record, processes).run()
    finally:
        distributed.stop(processes)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, spec: RunSpec, runtime: Runtime, record: RunRecord, processes):
        self.spec, self.runtime, self.record, self.processes = spec, runtime, record, processes
        self.recipe, self.method = spec.recipe, METHODS.get(spec.method)
        self.device = processes.device
        if self.recipe.amp == "fp16" and self.device.type != "cuda":
            raise ReproError("amp=fp16 needs a CUDA device (its loss scaling is a GPU feature); this run would use "
                             "the CPU: use --amp bf16 there")
        seed_everything(spec.seed)
        r = self.recipe
        self.data = load_data(spec.dataset, **data_settings(spec), device=self.device, data_path=runtime.data_path,
                              workers=runtime.workers, rank=processes.rank, world_size=processes.world_size)
        info = self.data.info
        ARCHS.get(spec.arch).check_input(info.in_channels, info.image_size, where=f"data set {spec.dataset}")
        self.model = self.method.build_model(spec, info).to(self.device)
        if r.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, r, lr_as_tensor=r.compile, device=self.device)
        self.optimizer_step = compiled(self.optimizer.step, self.device) if r.compile else self.optimizer.step
        self.ema = make_ema(self.model, r, processes.world_size)
        self.scaler = torch.amp.GradScaler("cuda") if r.amp == "fp16" else None
        self.fp32_products = products_in_fp32(r.amp, self.device, compiled=r.compile)
        self.mix = mixup_cutmix(r, info.num_classes)
        prepare = self.method.prepare
        self.method_state = prepare(spec, info, runtime.results_dir, self.device) if prepare else None
        self.steps_per_epoch = len(self.data.train)
        self.epoch, self.step, self.global_step, self.partial = 0, 0, 0, None
        self._unaugmented_train = None  # loaded on first use (BatchNorm recalibration)
        self.checkpoints = Checkpointer(spec, record, self.model, self.optimizer, self.scaler, self.ema,
                                        processes.is_main)
        self.last_checkpoint = time.monotonic()
        self.segment_started = None  # this process's segment of the run record, once it starts

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        resumed_from, restart = self.resume_point()
        if self.processes.is_main and not self.record.exists():
            self.record.create(self.spec)
        if (self.processes.is_main and self.runtime.machine_notes
                and (warning := missing_bf16_units_note(self.recipe.amp, self.device))):
            tqdm.write(warning, file=sys.stderr)
        self.processes.barrier()
        data = {"dataset": self.data.info.name,
                "sources": [{"file": f, "sha256": h} for f, h in self.data.info.sources]}
        kernels = bf16_kernel_note(self.recipe.amp, self.device, self.fp32_products)
        precision = {"bf16_kernels": kernels} if kernels else {}
        if self.processes.is_main:
            self.segment_started = self.record.start_segment(resumed_from, **restart, data=data,
                                                             device=str(self.device), **precision)
        train_model = self.model
        if self.processes.distributed:
            # Each pass leaves out some parameters (skippable blocks, unused norm sets).
            ids = [self.device.index] if self.device.type == "cuda" else None
            train_model = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        if self.recipe.compile:
            train_model = compiled(train_model, self.device, configs=len(self.model.configs()))
        try:
            with stop_requests() as stop:
                while self.epoch < self.recipe.epochs:
                    stats = self.train_epoch(train_model, stop)
                    if stats is None:
                        self.save_checkpoint()
                        raise Interrupted(f"interrupted at epoch {self.epoch + 1}, step {self.step}; the "
                                          f"checkpoint is saved: run the same command with --resume to continue")
                    self.finish_epoch(stats)
                # every epoch is checkpointed: a stop now ends the evaluation at once, and
                # --resume runs it again
                stop.interrupt_now = ("interrupted during the final evaluation; every epoch is saved: run the "
                                      "same command with --resume to evaluate again")
                if stop.is_set():
                    raise Interrupted(stop.interrupt_now)
                table = self.final_evaluation()
        except Interrupted:
            self._end("interrupted")
            raise
        except BaseException:
            self._end("failed")
            raise
        if self.processes.is_main:
            torch_save(self.record.model_file, self.checkpoints.model_payload())
            self.record.write_evaluation(table)
            self._end("finished")
        return TrainResult(self.record, False, self.model)

    def _end(self, status: str) -> None:
        if self.processes.is_main and self.record.exists():
            self.record.end_segment(self.segment_started, status)

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, train_model: nn.Module, stop) -> dict | None:
        """Trains from (self.epoch, self.step) to the epoch's end; None if stopped early.

        The step itself never waits for the device: sums stay on it (``EpochSums``) and
        are read, and checked for NaN, every ``LOG_EVERY_STEPS`` steps and at the end."""
        self.model.train()
        sums = EpochSums(self.partial)
        bar = tqdm(total=self.steps_per_epoch, initial=self.step, leave=False, mininterval=1.0, dynamic_ncols=True,
                   desc=self.runtime.label or f"epoch {self.epoch + 1}/{self.recipe.epochs}",
                   disable=not (self.runtime.progress and self.processes.is_main))
        batches = iter(self.data.train.epoch(self.epoch, start_step=self.step))
        checked_step, segment_start = self.step, time.perf_counter()

        def read_and_check() -> dict:
            nonlocal checked_step
            if self.runtime.on_progress is not None:
                total = self.recipe.epochs * self.steps_per_epoch
                self.runtime.on_progress(self.epoch * self.steps_per_epoch + self.step, total)
            read = sums.read()
            read["train_s"] += time.perf_counter() - segment_start
            check_finite(read, f"at epoch {self.epoch + 1}, steps {checked_step + 1}-{self.step}",
                         self.checkpoints.kept())
            checked_step = self.step
            return read

        while self.step < self.steps_per_epoch:
            # one collective per logging interval under DDP; a local flag otherwise
            poll = not self.processes.distributed or self.step % LOG_EVERY_STEPS == 0
            if poll and self.processes.any(stop.is_set()):
                bar.close()
                self.partial = read_and_check()
                return None
            start = time.perf_counter()
            images, targets = next(batches)
            sums.data_s += time.perf_counter() - start
            result = self.train_step(train_model, images, targets)
            sums.add(result.losses, result.logits, targets)
            self.step += 1
            self.global_step += 1
            bar.update(1)
            if self.step % LOG_EVERY_STEPS == 0 and self.step < self.steps_per_epoch:
                read = read_and_check()
                bar.set_postfix(loss=f"{sum(read['losses'].values()) / read['images']:.3f}",
                                img_s=f"{read['images'] / read['train_s']:.0f}")
                if time.monotonic() - self.last_checkpoint >= 60 * self.runtime.checkpoint_minutes:
                    self.partial = read  # checked finite just now
                    self.save_checkpoint()
        read = read_and_check()  # waits for the device: the epoch's wall time is complete
        bar.close()
        self.partial = None
        return read

    def train_step(self, train_model: nn.Module, images: torch.Tensor, targets: torch.Tensor):
        r = self.recipe
        set_lr(self.optimizer, r.lr * lr_factor(self.global_step, self.steps_per_epoch, r))
        if self.mix is not None:
            images, targets = self.mix(images, targets)
        self.optimizer.zero_grad(set_to_none=True)
        ctx = StepContext(
            model=train_model, module=self.model, options=self.spec.options,
            criterion=lambda logits, t: soft_cross_entropy(logits, t, r.label_smoothing),
            backward=lambda loss: (self.scaler.scale(loss) if self.scaler else loss).backward(),
            autocast=self._autocast, seed=self.spec.seed, global_step=self.global_step, state=self.method_state)
        with bf16_products_in_fp32() if self.fp32_products else nullcontext():
            result = self.method.train_step(images, targets, ctx)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if r.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), r.clip_grad_norm)
        if r.clip_grad_value is not None:
            nn.utils.clip_grad_value_(self.model.parameters(), r.clip_grad_value)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer_step()
        if self.ema is not None and self.global_step % r.ema_steps == 0:
            self.ema.update_parameters(self.model)
            if self.epoch < r.warmup_epochs:
                self.ema.n_averaged.fill_(0)  # follow the weights during warm-up (torchvision reference)
        return result

    def _autocast(self):
        if not self.recipe.amp:
            return nullcontext()
        dtype = torch.bfloat16 if self.recipe.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def finish_epoch(self, sums: dict) -> None:
        self.epoch += 1
        self.step = 0
        r = self.recipe
        self.sync_buffers()
        start = time.perf_counter()
        every = r.eval_all_every
        configs = None if every and self.epoch % every == 0 else self.method.monitor_configs(self.model)
        val = self.evaluate(self.data.val, configs)
        line = {"epoch": self.epoch, "lr": float(self.optimizer.param_groups[0]["lr"])}
        line.update({f"train_loss_{k}": v / sums["images"] for k, v in sums["losses"].items()})
        line.update({f"train_acc1_pct_{k}": 100 * v / sums["images"] for k, v in sums["correct"].items()})
        line.update({f"val_acc1_pct_{row.skip}": row.acc1_pct for row in val})
        line.update({f"val_loss_{row.skip}": row.loss for row in val})
        line.update({"images_per_s": sums["images"] * self.processes.world_size / sums["train_s"],
                     "data_share_pct": 100 * sums["data_s"] / sums["train_s"],
                     "epoch_s": sums["train_s"], "eval_s": time.perf_counter() - start})
        if hasattr(os, "getloadavg"):  # how busy the machine was: epoch times are only comparable at like loads
            line["machine_load_5min"] = os.getloadavg()[1]
        if self.processes.is_main:
            self.record.append_metrics(line)
            if self.runtime.progress:
                summary = ", ".join(f"{row.skip} {row.acc1_pct:.2f}%" for row in val)
                tqdm.write(f"epoch {self.epoch}/{r.epochs}: val acc@1 {summary} ({line['images_per_s']:.0f} img/s)")
        self.save_checkpoint()

    def sync_buffers(self) -> None:
        """DDP keeps parameters equal, but each rank's last forward pass updates its own BN
        statistics: take rank 0's, so every rank evaluates and saves the same model."""
        if self.processes.distributed:
            for module in (self.model, self.ema):
                for buffer in module.buffers() if module is not None else ():
                    torch.distributed.broadcast(buffer, 0)

    # ------------------------------------------------------------------ evaluation
    def evaluation_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self, batches, configs=None):
        return self.evaluate_splits({"split": batches}, configs)["split"]

    def evaluate_splits(self, splits: dict, configs=None) -> dict:
        """Results per split with the method's own protocol: stored BatchNorm statistics,
        or (AlphaNet-style, whose norms are not updated in training) statistics
        re-estimated per sub-network, once for all splits."""
        model = self.evaluation_model()
        configs = configs or model.configs()
        images = self.method.eval_bn_images(self.spec) if self.method.eval_bn_images else 0
        if not images:
            return {name: evaluate(model, batches, configs) for name, batches in splits.items()}
        return evaluate_recalibrated(model, splits, configs, self.recalibration_images(images))

    def recalibration_images(self, images: int) -> list[torch.Tensor]:
        """The first ``images`` training images, un-augmented, the same on every rank."""
        if self._unaugmented_train is None:
            settings = {**data_settings(self.spec), "augment": False}
            self._unaugmented_train = load_data(self.spec.dataset, **settings, device=self.device,
                                                data_path=self.runtime.data_path, workers=self.runtime.workers).train
        return recalibration_images(self._unaugmented_train, images, MIN_EVAL_BATCH)

    def final_evaluation(self):
        """Every sub-network on val and test; with ``recalibrate_bn_images``, each also with
        BatchNorm statistics re-estimated for it (the ``*_recalibrated`` columns)."""
        info = self.data.info
        model, splits = self.evaluation_model(), {"val": self.data.val, "test": self.data.test}
        results = self.evaluate_splits(splits)
        again, images = None, self.recipe.recalibrate_bn_images
        if images and has_batch_norm(model):
            again = evaluate_recalibrated(model, splits, model.configs(), self.recalibration_images(images))
        return evaluation_table(model, results, (info.in_channels, info.image_size, info.image_size), again)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        self.checkpoints.save({"epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                               "partial": self.partial})
        self.last_checkpoint = time.monotonic()
        if self.segment_started is not None:  # the main process, once its segment has started
            self.record.checkpointed(self.segment_started)

    def resume_point(self) -> tuple[dict | None, dict]:
        """(where training resumes, what the record's segment notes): ``Checkpointer.resume_point``."""
        state, notes = self.checkpoints.resume_point(self.runtime.resume)
        if state is None:
            return None, notes
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.partial = state["partial"]
        return {"epoch": self.epoch, "step": self.step}, notes
