"""What a run saves so that it can continue exactly where it stopped, and how it resumes.

A checkpoint holds the model (and its EMA), the optimiser, the gradient scaler, the loop's
position (epoch, step, global step and the running epoch's partial sums) and the random
generators' states, so that a resumed run ends with the weights of an uninterrupted one
(tests/test_train.py, tests/test_recovery.py). Only the main process writes.
"""
from __future__ import annotations

import random
import sys

import torch
from tqdm import tqdm

from repro.checkpoints import CheckpointError, checkpoint_payload, read_checkpoint
from repro.errors import ReproError
from repro.files import torch_save
from repro.runs import RunRecord
from repro.specs import RunSpec


class Checkpointer:
    """Saves and restores one run's training state in its record's checkpoint file."""

    def __init__(self, spec: RunSpec, record: RunRecord, model, optimizer, scaler, ema, is_main: bool):
        self.spec, self.record, self.is_main = spec, record, is_main
        self.model, self.optimizer, self.scaler, self.ema = model, optimizer, scaler, ema

    def model_payload(self) -> dict:
        """The model (and its EMA weights) with the run's spec: what model.pt holds."""
        payload = checkpoint_payload(self.model)
        if self.ema is not None:
            payload["ema_state_dict"] = {k.removeprefix("module."): v for k, v in self.ema.state_dict().items()
                                         if k.startswith("module.")}
        return {**payload, "spec": self.spec.to_dict()}

    def save(self, train_state: dict) -> None:
        """Writes the checkpoint (atomically); ``train_state``: epoch, step, global_step, partial."""
        if not self.is_main:
            return
        payload = self.model_payload()
        payload.update({
            "train_state": train_state,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        })
        torch_save(self.record.checkpoint_file, payload)

    def kept(self) -> str:
        """What a failed run leaves to resume from, in words."""
        return (f"the last good checkpoint, {self.record.checkpoint_file}, is kept"
                if self.record.checkpoint_file.is_file() else "no checkpoint had been saved yet")

    def resume_point(self, resume: bool) -> tuple[dict | None, dict]:
        """(the restored train state, or None to start from the beginning; what the record's
        segment notes). ``--resume`` of an unfinished run without a checkpoint (killed in its
        first epoch) starts it over and says so; a damaged checkpoint is never silently
        replaced by a new start, and a checkpoint whose record lacks some of its epochs is
        not resumed into a record that would start at its epoch."""
        if not resume:
            return None, {}
        if self.record.checkpoint_file.exists():
            checkpoint = self.read()
            epoch, recorded = checkpoint.get("train_state", {}).get("epoch", 0), len(self.record.metrics())
            if recorded < epoch:
                # the record was lost or replaced (seen: a copy of the tree sent over a run's folder):
                # resuming would write a record whose first epochs never happened
                raise ReproError(f"run {self.record.path} has a checkpoint after {epoch} epochs but its record "
                                 f"holds {recorded}; put its record files back (spec.json, env.json, metrics.jsonl) "
                                 f"or move the checkpoint away to train the run anew")
            return self.load(checkpoint), {}
        if not self.record.exists():
            return None, {}  # a new run (reproduce passes --resume to every run)
        epochs = len(self.record.metrics())
        if epochs:
            raise ReproError(f"run {self.record.path} has metrics of {epochs} epochs but no checkpoint to resume "
                             f"from; move the folder away to train the run anew")
        if self.is_main:
            tqdm.write(f"warning: run {self.record.path} has no checkpoint to resume from; training it from the "
                       f"beginning", file=sys.stderr)
        return None, {"restart": "no checkpoint"}

    def read(self) -> dict:
        """The run's checkpoint, read but not yet loaded, once it is known to be this run's."""
        try:
            checkpoint = read_checkpoint(self.record.checkpoint_file)
        except CheckpointError as error:
            raise CheckpointError(f"cannot resume: {error}; the run was not started over (move the file away "
                                  f"to train it from the beginning)") from None
        if checkpoint.get("spec") != self.spec.to_dict():
            raise ReproError(f"{self.record.checkpoint_file} belongs to another run spec; refusing to resume from it")
        return checkpoint

    def load(self, checkpoint: dict) -> dict:
        """Loads a checkpoint ``read`` returned into the model, optimiser, scaler, EMA and random
        generators; returns its train state."""
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
        return state


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
