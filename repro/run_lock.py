"""One process trains a run at a time.

Two commands whose plans share a run (``reproduce table3`` and ``reproduce table4`` both
need the official ADN run; a second terminal resuming the same ``train``) would otherwise
train it at once into the same directory, interleaving its metrics and overwriting each
other's checkpoints. The process training a run holds an exclusive advisory lock
(``flock``) on ``<run>/.lock``; the operating system releases it when the process ends, a
hard kill included, so a lock never outlives its holder (a killed holder leaves the file,
which is harmless and git-ignored). The file keeps the holder's pid, for the message a
second process gets. Where ``fcntl`` does not exist (Windows) runs are not locked.
"""
from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from pathlib import Path

from repro.errors import ReproError

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

LOCK_NAME = ".lock"  # git-ignored: never part of a committed record


class RunBusy(ReproError):
    """Another process is training this run now (``holder``: its pid, or "?")."""

    def __init__(self, message: str, holder: str = "?"):
        super().__init__(message)
        self.holder = holder


def lock_file(run_path: Path) -> Path:
    return Path(run_path) / LOCK_NAME


@contextmanager
def holding(run_path: Path, wait: bool = False):
    """Holds the run's lock while the block runs. Busy: waits for the holder to let go
    when ``wait``, else raises ``RunBusy`` naming the holder's pid. The lock file goes
    when the block ends, and with it a run directory left empty (the run failed before
    it began)."""
    if fcntl is None:
        yield
        return
    path = lock_file(run_path)
    handle = _locked(path, wait)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        # removed while still locked: a process waiting on it finds it gone and starts anew
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # only if empty: the run failed before it began
        except OSError:
            pass
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _locked(path: Path, wait: bool):
    """The lock file, open and locked; retried when its holder removed it meanwhile."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(path, "a+")
        except FileNotFoundError:  # the directory was removed meanwhile (an empty run's)
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RunBusy(f"run {path.parent.name} is being trained by another process (pid {holder}); wait for it "
                          f"to finish, or stop it (its checkpoint resumes with --resume)", holder) from None
        try:
            current = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return handle
        handle.close()


@contextmanager
def held_by_main(run_path: Path, processes, wait: bool = False):
    """``holding`` for the processes of one run (``repro.distributed.Processes``): the main
    one holds the lock, and when it is busy every process raises ``RunBusy``."""
    with ExitStack() as stack:
        busy = None
        if processes.is_main:
            try:
                stack.enter_context(holding(run_path, wait))
            except RunBusy as error:
                busy = error
        if processes.any(busy is not None):
            raise busy or RunBusy(f"run {Path(run_path).name} is being trained by another process")
        yield
