"""Atomic file writes: a reader (or a crash) never sees a half-written file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch

from repro.errors import ReproError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Calls ``write(tmp_path)`` for a temporary file beside ``path``, then renames it
    over ``path`` in one step. On any failure the temporary file is removed and an
    existing ``path`` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    except OSError as error:
        raise ReproError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def append_line(path: str | Path, line: str) -> None:
    """Appends one line (e.g. a JSON record) and flushes it to disk."""
    with open(path, "a") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def torch_save(path: str | Path, obj) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def check_writable(path: str | Path) -> Path:
    """Fails early, with one clear line, when ``path`` could not be written: its folder
    cannot be created or written to, or it is a folder itself. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise ReproError(f"cannot write {path}: it is a folder")
    _check_creatable(path, path.parent)
    return path


def check_writable_folder(path: str | Path) -> Path:
    """As ``check_writable``, for a folder that files will be written into (created if
    missing when the work starts, not here)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ReproError(f"cannot write into {path}: it is a file, not a folder")
    _check_creatable(path, path)
    return path


def _check_creatable(path: Path, folder: Path) -> None:
    """Probes the nearest existing folder at or above ``folder`` by creating (and at once
    removing) a temporary file: ``os.access`` says yes to root even on /proc or a
    read-only mount."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise ReproError(f"cannot write {path}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ReproError(f"cannot write {path}: no file can be created in {folder} ({error.strerror or error})") from None
