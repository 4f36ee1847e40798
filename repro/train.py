"""The training engine: one loop for every method, data set, device and process count.

``train(spec, runtime)`` trains the run a ``RunSpec`` describes (or returns the finished
record if it exists), with checkpoints every epoch and on SIGINT/SIGTERM, exact resume,
per-epoch validation and a final evaluation of every sub-network. What one step does is
the method's business (repro/methods); Algorithm 1 is repro/methods/adn.py.
"""
from __future__ import annotations

import random
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from repro import distributed
from repro.checkpoints import CheckpointError, checkpoint_payload, read_checkpoint
from repro.data import load_data
from repro.errors import ReproError
from repro.evaluate import evaluate, evaluation_table, topk_correct
from repro.files import torch_save
from repro.methods import METHODS, StepContext, check_options
from repro.methods.losses import soft_cross_entropy
from repro.models import ARCHS
from repro.optim import lr_factor, make_ema, make_optimizer, set_lr
from repro.runs import RunRecord, run_directory
from repro.specs import RunSpec


class Interrupted(ReproError):
    pass


class TrainingDiverged(ReproError):
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
    if record.exists() and not runtime.resume:
        raise ReproError(f"run {record.path} exists but did not finish ({record.env().get('status', '?')}); "
                         f"pass --resume to continue it from its last checkpoint")
    processes = distributed.start(runtime.device)
    try:
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
        if self.recipe.amp and self.device.type != "cuda":
            raise ReproError(f"amp={self.recipe.amp} needs a CUDA device; this run would use the CPU")
        seed_everything(spec.seed)
        r = self.recipe
        self.data = load_data(spec.dataset, **data_settings(spec), device=self.device, data_path=runtime.data_path,
                              workers=runtime.workers, rank=processes.rank, world_size=processes.world_size)
        info = self.data.info
        ARCHS.get(spec.arch).check_input(info.in_channels, info.image_size, where=f"data set {spec.dataset}")
        self.model = self.method.build_model(spec, info).to(self.device)
        if r.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, r)
        self.ema = make_ema(self.model, r, processes.world_size)
        self.scaler = torch.amp.GradScaler("cuda") if r.amp == "fp16" else None
        self.mix = mixup_cutmix(r, info.num_classes)
        prepare = self.method.prepare
        self.method_state = prepare(spec, info, runtime.results_dir, self.device) if prepare else None
        self.steps_per_epoch = len(self.data.train)
        self.epoch, self.step, self.global_step, self.partial = 0, 0, 0, None

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        resumed_from, restart = self.resume_point()
        if self.processes.is_main and not self.record.exists():
            self.record.create(self.spec)
        self.processes.barrier()
        started = self.record.start_segment(resumed_from, **restart) if self.processes.is_main else 0.0
        train_model = self.model
        if self.processes.distributed:
            # Each pass leaves out some parameters (skippable blocks, unused norm sets).
            ids = [self.device.index] if self.device.type == "cuda" else None
            train_model = DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        try:
            with stop_requests() as stop:
                while self.epoch < self.recipe.epochs:
                    stats = self.train_epoch(train_model, stop)
                    if stats is None:
                        self.save_checkpoint()
                        raise Interrupted(f"interrupted at epoch {self.epoch + 1}, step {self.step}; the "
                                          f"checkpoint is saved: run the same command with --resume to continue")
                    self.finish_epoch(stats)
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
        """Trains from (self.epoch, self.step) to the epoch's end; None if stopped early."""
        self.model.train()
        sums = self.partial or {"images": 0, "data_s": 0.0, "train_s": 0.0, "losses": {}, "correct": {}}
        bar = tqdm(total=self.steps_per_epoch, initial=self.step, leave=False, mininterval=1.0, dynamic_ncols=True,
                   desc=f"epoch {self.epoch + 1}/{self.recipe.epochs}",
                   disable=not (self.runtime.progress and self.processes.is_main))
        batches = iter(self.data.train.epoch(self.epoch, start_step=self.step))
        while self.step < self.steps_per_epoch:
            if self.processes.any(stop.is_set()):
                bar.close()
                self.partial = sums
                return None
            start = time.perf_counter()
            images, targets = next(batches)
            loaded = time.perf_counter()
            result = self.train_step(train_model, images, targets)
            done = time.perf_counter()
            sums["images"] += len(images)
            sums["data_s"] += loaded - start
            sums["train_s"] += done - start
            for name, value in result.losses.items():
                sums["losses"][name] = sums["losses"].get(name, 0.0) + float(value) * len(images)
            for role, logits in result.logits.items():
                sums["correct"][role] = sums["correct"].get(role, 0) + topk_correct(logits, targets, ks=(1,))[0]
            self.step += 1
            self.global_step += 1
            bar.update(1)
            if self.step % 10 == 0:
                bar.set_postfix(loss=f"{sum(float(v) for v in result.losses.values()):.3f}",
                                img_s=f"{sums['images'] / sums['train_s']:.0f}")
        bar.close()
        self.partial = None
        return sums

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
        total = sum(result.losses.values())
        if not torch.isfinite(total):
            kept = (f"the last good checkpoint, {self.record.checkpoint_file}, is kept"
                    if self.record.checkpoint_file.is_file() else "no checkpoint had been saved yet")
            raise TrainingDiverged(f"the loss became {float(total)} at epoch {self.epoch + 1}, step {self.step + 1}; "
                                   f"stopped without saving: {kept} (try a lower learning rate)")
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
            self.optimizer.step()
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
        line = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        line.update({f"train_loss_{k}": v / sums["images"] for k, v in sums["losses"].items()})
        line.update({f"train_acc1_pct_{k}": 100 * v / sums["images"] for k, v in sums["correct"].items()})
        line.update({f"val_acc1_pct_{row.skip}": row.acc1_pct for row in val})
        line.update({f"val_loss_{row.skip}": row.loss for row in val})
        line.update({"images_per_s": sums["images"] * self.processes.world_size / sums["train_s"],
                     "data_share_pct": 100 * sums["data_s"] / sums["train_s"],
                     "epoch_s": sums["train_s"], "eval_s": time.perf_counter() - start})
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
        """Results per split; a method that prepares a model per sub-network (AlphaNet's BN
        recalibration) prepares it once for all splits."""
        model = self.evaluation_model()
        configs = configs or model.configs()
        if self.method.model_for_eval is None:
            return {name: evaluate(model, batches, configs) for name, batches in splits.items()}
        results = {name: [] for name in splits}
        for config in configs:
            prepared = self.method.model_for_eval(model, config, self.data.train, self.spec)
            for name, batches in splits.items():
                results[name] += evaluate(prepared, batches, [config])
        return results

    def final_evaluation(self):
        info = self.data.info
        splits = self.evaluate_splits({"val": self.data.val, "test": self.data.test})
        return evaluation_table(self.evaluation_model(), splits, (info.in_channels, info.image_size, info.image_size))

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
    settings = dict(batch_size=r.batch_size, seed=spec.seed, train_subset=r.train_subset, test_subset=r.test_subset,
                    val_size=r.val_size, augment=r.augment, channels_last=r.channels_last)
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
    save a checkpoint. A second SIGINT interrupts at once."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def request(signum, frame):
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
