"""The training engine: one loop for every method, data set, device and process count.

``train(spec, runtime)`` trains the run a ``RunSpec`` describes (or returns the finished
record if it exists), with checkpoints every epoch and on SIGINT/SIGTERM, exact resume,
per-epoch validation and a final evaluation of every sub-network. What one step does is
the method's business (repro/methods); Algorithm 1 is repro/methods/adn.py.
"""
from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from repro import distributed
from repro.accounting import EpochSums, TrainingDiverged, check_finite  # noqa: F401 (TrainingDiverged: API)
from repro.capture import compiled
from repro.checkpoints import CheckpointError, checkpoint_payload, read_checkpoint
from repro.data import load_data
from repro.errors import ReproError
from repro.evaluate import evaluate, evaluate_recalibrated, evaluation_table
from repro.files import torch_save
from repro.methods import METHODS, StepContext, check_options
from repro.methods.losses import soft_cross_entropy
from repro.models import ARCHS
from repro.optim import lr_factor, make_ema, make_optimizer, set_lr
from repro.precision import emulated_bf16_warning
from repro.recalibrate import has_batch_norm, recalibration_images
from repro.run_lock import held_by_main
from repro.runs import RunRecord, run_directory
from repro.specs import RunSpec


# Host reads of the device-side sums: progress line, NaN guard, DDP stop poll.
LOG_EVERY_STEPS = 50
# Evaluation batches are at least this large: a small training batch (the smoke preset's 16)
# made evaluating every sub-network twice (stored and re-estimated statistics) most of a
# smoke run's time. The images on which BatchNorm statistics are re-estimated are joined into
# batches of that size too (the loader's batches cannot be larger than a tiny training set).
# The mini and quick presets train with 128 already, so their evaluation is as before.
MIN_EVAL_BATCH = 128


class Interrupted(ReproError):
    pass


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
        self.mix = mixup_cutmix(r, info.num_classes)
        prepare = self.method.prepare
        self.method_state = prepare(spec, info, runtime.results_dir, self.device) if prepare else None
        self.steps_per_epoch = len(self.data.train)
        self.epoch, self.step, self.global_step, self.partial = 0, 0, 0, None
        self._unaugmented_train = None  # loaded on first use (BatchNorm recalibration)
        self.last_checkpoint = time.monotonic()

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        resumed_from, restart = self.resume_point()
        if self.processes.is_main and not self.record.exists():
            self.record.create(self.spec)
        if self.processes.is_main and (warning := emulated_bf16_warning(self.recipe.amp, self.device)):
            tqdm.write(warning, file=sys.stderr)
        self.processes.barrier()
        data = {"dataset": self.data.info.name,
                "sources": [{"file": f, "sha256": h} for f, h in self.data.info.sources]}
        started = (self.record.start_segment(resumed_from, **restart, data=data, device=str(self.device))
                   if self.processes.is_main else 0.0)
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
            self._end(started, "interrupted")
            raise
        except BaseException:
            self._end(started, "failed")
            raise
        if self.processes.is_main:
            torch_save(self.record.model_file, self._model_payload())
            self.record.write_evaluation(table)
            self._end(started, "finished")
        return TrainResult(self.record, False, self.model)

    def _end(self, started: float, status: str) -> None:
        if self.processes.is_main and self.record.exists():
            self.record.end_segment(started, status)

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
                         self.kept_checkpoint())
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

    def kept_checkpoint(self) -> str:
        return (f"the last good checkpoint, {self.record.checkpoint_file}, is kept"
                if self.record.checkpoint_file.is_file() else "no checkpoint had been saved yet")

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
    def _model_payload(self) -> dict:
        payload = checkpoint_payload(self.model)
        if self.ema is not None:
            payload["ema_state_dict"] = {k.removeprefix("module."): v for k, v in self.ema.state_dict().items()
                                         if k.startswith("module.")}
        return {**payload, "spec": self.spec.to_dict()}

    def save_checkpoint(self) -> None:
        if not self.processes.is_main:
            return
        payload = self._model_payload()
        payload.update({
            "train_state": {"epoch": self.epoch, "step": self.step, "global_step": self.global_step,
                            "partial": self.partial},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        })
        torch_save(self.record.checkpoint_file, payload)
        self.last_checkpoint = time.monotonic()

    def resume_point(self) -> tuple[dict | None, dict]:
        """(where training resumes, what the record's segment notes). ``--resume`` of an
        unfinished run without a checkpoint (killed in its first epoch) starts it over and
        says so; a damaged checkpoint is never silently replaced by a new start."""
        if not self.runtime.resume:
            return None, {}
        if self.record.checkpoint_file.exists():
            return self.restore(), {}
        if not self.record.exists():
            return None, {}  # a new run (reproduce passes --resume to every run)
        epochs = len(self.record.metrics())
        if epochs:
            raise ReproError(f"run {self.record.path} has metrics of {epochs} epochs but no checkpoint to resume "
                             f"from; move the folder away to train the run anew")
        if self.processes.is_main:
            tqdm.write(f"warning: run {self.record.path} has no checkpoint to resume from; training it from the "
                       f"beginning", file=sys.stderr)
        return None, {"restart": "no checkpoint"}

    def restore(self) -> dict:
        try:
            checkpoint = read_checkpoint(self.record.checkpoint_file)
        except CheckpointError as error:
            raise CheckpointError(f"cannot resume: {error}; the run was not started over (move the file away "
                                  f"to train it from the beginning)") from None
        if checkpoint.get("spec") != self.spec.to_dict():
            raise ReproError(f"{self.record.checkpoint_file} belongs to another run spec; refusing to resume from it")
        try:
            self.model.load_state_dict(checkpoint["state_dict"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            if self.scaler is not None:
                self.scaler.load_state_dict(checkpoint["scaler"])
            if self.ema is not None:
                self.ema.load_state_dict(checkpoint["ema"])
            state = checkpoint["train_state"]
            rng = checkpoint["rng"]
        except (KeyError, RuntimeError, ValueError) as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ReproError(f"{self.record.checkpoint_file} cannot be resumed from: {detail}") from None
        torch.set_rng_state(rng["torch"])
        random.setstate(_as_tuple(rng["python"]))
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.epoch, self.step, self.global_step = state["epoch"], state["step"], state["global_step"]
        self.partial = state["partial"]
        return {"epoch": self.epoch, "step": self.step}


def data_settings(spec: RunSpec) -> dict:
    """The ``load_data`` arguments a spec determines. ``fake`` data takes the shape and
    class count of the architecture's native input."""
    r = spec.recipe
    settings = dict(batch_size=r.batch_size, eval_batch_size=max(r.batch_size, MIN_EVAL_BATCH), seed=spec.seed,
                    train_subset=r.train_subset, test_subset=r.test_subset, val_size=r.val_size, augment=r.augment,
                    channels_last=r.channels_last)
    if spec.dataset == "imagenet":
        settings.update(auto_augment=r.auto_augment, random_erase=r.random_erase, interpolation=r.interpolation,
                        val_resize=r.val_resize)
    if spec.dataset == "fake":
        arch = ARCHS.get(spec.arch)
        settings.update(fake_shape=(arch.in_channels, arch.resolution, arch.resolution),
                        fake_num_classes=arch.num_classes)
    return settings


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def mixup_cutmix(recipe, num_classes: int):
    """torchvision's batch MixUp/CutMix (one of them per batch), as the paper's ViT/Swin recipes."""
    from torchvision.transforms import v2

    choices = []
    if recipe.mixup_alpha > 0:
        choices.append(v2.MixUp(alpha=recipe.mixup_alpha, num_classes=num_classes))
    if recipe.cutmix_alpha > 0:
        choices.append(v2.CutMix(alpha=recipe.cutmix_alpha, num_classes=num_classes))
    return v2.RandomChoice(choices) if choices else None


@contextmanager
def stop_requests():
    """An Event set by SIGINT/SIGTERM, so the loop can stop after the step in progress and
    save a checkpoint. A second SIGINT interrupts at once. Once ``event.interrupt_now`` holds
    a message (nothing left to save), a signal raises ``Interrupted`` with it at once."""
    event = threading.Event()
    event.interrupt_now = None
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def request(signum, frame):
        if event.interrupt_now:
            event.set()
            raise Interrupted(event.interrupt_now)
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
