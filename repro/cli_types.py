"""Click parameter types for the command line: every option is checked where it enters, so
a bad value is one line naming it, before any work starts (``python cli.py --help``)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import click
import torch

from repro.errors import ReproError
from repro.files import check_writable, check_writable_folder


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and inf (which pass every comparison or
    reach the optimizer as an overflow)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


POSITIVE_INT = click.IntRange(min=1)                 # epochs, batch sizes, subsets, repeats, threads, pixels
NON_NEGATIVE_INT = click.IntRange(min=0)             # seeds, data loader workers
POSITIVE_FLOAT = FiniteFloatRange(min=0, min_open=True)  # learning rate, temperature
NON_NEGATIVE_FLOAT = FiniteFloatRange(min=0)         # minutes between recovery checkpoints
UNIT_INTERVAL = FiniteFloatRange(0, 1)               # a weight such as alpha
HALF_OPEN_UNIT = FiniteFloatRange(0, 1, max_open=True)  # label smoothing: [0, 1)
OPEN_UNIT = FiniteFloatRange(0, 1, min_open=True, max_open=True)  # EMA decay: (0, 1)
EXISTING_FOLDER = click.Path(exists=True, file_okay=False)  # an explicit --data-path


class Checkpoint(click.Path):
    """A checkpoint file that exists (what it holds is checked when it is read)."""

    def __init__(self):
        super().__init__(dir_okay=False)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        if not Path(path).is_file():  # (a folder is refused by click.Path)
            self.fail(f"checkpoint not found: {path}", param, ctx)
        return path


CHECKPOINT = Checkpoint()


class Output(click.Path):
    """A file or folder the command will write: refused before any work if it could not be."""

    def __init__(self, folder: bool = False):
        super().__init__(file_okay=not folder, dir_okay=folder)
        self.folder = folder

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        try:
            (check_writable_folder if self.folder else check_writable)(path)
        except ReproError as error:
            self.fail(str(error), param, ctx)
        return path


OUTPUT_FILE = Output()
OUTPUT_FOLDER = Output(folder=True)

DEVICE_PATTERN = re.compile(r"(cpu|cuda)(?::(\d+))?")


def parse_device(text: str, allow_auto: bool = False, allow_absent: bool = False) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (and ``auto`` where allowed), refused unless that
    device exists on this machine (``allow_absent``: a well-formed name is enough, for
    reading what was measured on it elsewhere). Returns the string as given."""
    if text == "auto" and allow_auto:
        return text
    found = DEVICE_PATTERN.fullmatch(text)
    if found is None:
        choices = "cpu, cuda, cuda:N" + (", auto" if allow_auto else "")
        raise ReproError(f"--device {text!r} is not a device name ({choices})")
    kind, index = found.group(1), found.group(2)
    if kind == "cuda" and not allow_absent:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ReproError(f"--device {text}: no CUDA device is available on this machine")
        if index is not None and int(index) >= count:
            raise ReproError(f"--device {text}: this machine has {count} CUDA device{'s' * (count > 1)} "
                             f"(cuda:0..cuda:{count - 1})")
    return text


class Device(click.ParamType):
    name = "device"

    def __init__(self, allow_auto: bool = False, allow_absent: bool = False):
        self.allow_auto, self.allow_absent = allow_auto, allow_absent

    def convert(self, value, param, ctx):
        try:
            return parse_device(str(value), self.allow_auto, self.allow_absent)
        except ReproError as error:
            self.fail(str(error).removeprefix("--device "), param, ctx)


DEVICE = Device()
DEVICE_OR_AUTO = Device(allow_auto=True)
ANY_DEVICE_OR_AUTO = Device(allow_auto=True, allow_absent=True)  # checked where it is used
