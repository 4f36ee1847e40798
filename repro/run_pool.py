"""Independent training runs as N worker processes (``reproduce --jobs N``).

Small networks leave a GPU idle between kernel launches and scale poorly over CPU
threads, so several runs at once give more images per second in aggregate than one run
with the whole machine (benchmarks/engine_throughput.py measures it). Each worker trains
one run at a time with ``repro.train.train``: each writes its own run record and
checkpoints and resumes as a lone run does. On CPU the threads are split between the
workers. Ctrl-C reaches every worker (one process group): each saves its checkpoint and
stops; the same command run again resumes them. A failed run does not stop the others;
the failures are named at the end. A run another process is training (``repro.run_lock``)
is put back until the rest have started, then a worker waits for that process to let go
and finishes the run if it has not.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import signal
import threading
from contextlib import contextmanager
from typing import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

import torch
from tqdm import tqdm

from repro.errors import ReproError
from repro.run_lock import RunBusy
from repro.specs import RunSpec
from repro.stopping import Interrupted

FINISHED, INTERRUPTED, FAILED, BUSY = "finished", "interrupted", "failed", "busy"


def default_jobs(device: str) -> int:
    """CPU: one run per core (two 1-thread runs out-ran one 2-thread run here: see the
    README's benchmark table); a GPU: four runs share it."""
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda:"):
        return 4
    return max(1, torch.get_num_threads())


def _train_one(spec_dict: dict, runtime, threads: int, events) -> tuple[str, str]:
    """Worker: trains one run; returns (status, message). Never raises."""
    from repro.train import train

    torch.set_num_threads(threads)
    spec = RunSpec.from_dict(spec_dict)

    def report(done: int, total: int) -> None:
        events.put((spec.run_id, done, total))

    try:
        train(spec, dataclasses.replace(runtime, progress=False, on_progress=report))
        return FINISHED, ""
    except Interrupted as error:
        return INTERRUPTED, str(error)
    except RunBusy as error:
        return BUSY, error.holder  # the pid of the process training it
    except KeyboardInterrupt:  # Ctrl-C before the run's own handler was installed (while it loaded)
        return INTERRUPTED, "interrupted while starting"
    except BaseException as error:  # noqa: BLE001 - a worker reports every failure to the parent
        return FAILED, f"{type(error).__name__}: {error}" if not isinstance(error, ReproError) else str(error)


class _Bars:
    """One progress line per running run, and the overall bar, fed from the workers' events."""

    def __init__(self, total_runs: int, jobs: int, enabled: bool):
        self.enabled = enabled
        self.overall = tqdm(total=total_runs, desc="runs finished", position=0, disable=not enabled,
                            dynamic_ncols=True)
        self.free = list(range(1, jobs + 1))
        self.bars: dict[str, tqdm] = {}

    def update(self, run_id: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if run_id not in self.bars:
            self.bars[run_id] = tqdm(total=total, desc=run_id, position=self.free.pop(0) if self.free else None,
                                     leave=False, dynamic_ncols=True)
        bar = self.bars[run_id]
        bar.update(done - bar.n)

    def done(self, run_id: str, status: str, message: str) -> None:
        bar = self.bars.pop(run_id, None)
        if bar is not None:
            self.free.append(bar.pos if bar.pos is not None else 0)
            bar.close()
        self.overall.update(1)
        tqdm.write(f"{status} {run_id}" + (f": {message}" if message else ""))

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.overall.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextmanager
def _ctrl_c_raises():
    """SIGINT and SIGTERM raise KeyboardInterrupt in this (main) process while the pool runs,
    whatever it inherited: a shell starts background jobs (``nohup ... &``) with SIGINT
    ignored, and then Ctrl-C to the process group stopped the workers but not this loop,
    which went on handing out queued runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_concurrently(specs: list[RunSpec], runtime, jobs: int,
                       ready: Callable[[RunSpec], bool] = lambda spec: True) -> dict[str, tuple[str, str]]:
    """Trains the runs with ``jobs`` worker processes, each free worker taking the first
    queued run that is ``ready`` (e.g. a student once its teacher has finished); returns
    ``{run_id: (status, message)}``. Runs never ready once nothing else is running are
    failed. A run busy in another process is retried last, waiting for that process.
    Ctrl-C: every worker saves and stops; KeyboardInterrupt is re-raised once they have."""
    total_threads = torch.get_num_threads()
    threads = max(1, total_threads // jobs)
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    events = manager.Queue()
    bars = _Bars(len(specs), jobs, runtime.progress)
    outcome: dict[str, tuple[str, str]] = {}
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            try:
                bars.update(*events.get(timeout=0.5))
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    interrupted = False
    try:
        with _ctrl_c_raises(), ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            queued = list(specs)
            busy: list[RunSpec] = []  # trained by another process: waited for once the rest have started
            running: dict[Future, RunSpec] = {}
            while ((queued or busy) and not interrupted) or running:
                # a run is handed over only when a worker is free: the executor would
                # otherwise pass queued runs to its workers ahead of time, where neither
                # cancel() nor the worker's spent Ctrl-C can stop them
                while not interrupted and len(running) < jobs:
                    spec = next((spec for spec in queued if ready(spec)), None)
                    if spec is not None:
                        queued.remove(spec)
                        running[pool.submit(_train_one, spec.to_dict(), runtime, threads, events)] = spec
                    elif busy:
                        spec = busy.pop(0)
                        waiting = dataclasses.replace(runtime, wait_if_busy=True)
                        running[pool.submit(_train_one, spec.to_dict(), waiting, threads, events)] = spec
                    else:
                        break
                if not running:  # what is left waits on runs that did not finish
                    for spec in queued:
                        outcome[spec.run_id] = (FAILED, "not started: a run it needs did not finish")
                        bars.done(spec.run_id, FAILED, outcome[spec.run_id][1])
                    break
                try:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    # the workers got the signal too: the running ones save and stop
                    interrupted = True
                    continue
                for future in finished:
                    spec = running.pop(future)
                    try:
                        status, message = future.result()
                    except BaseException as error:  # noqa: BLE001 - a worker process died
                        status = INTERRUPTED if interrupted else FAILED  # Ctrl-C also reaches idle workers
                        message = f"worker process ended: {error or type(error).__name__}"
                    if status == BUSY:
                        busy.append(spec)
                        tqdm.write(f"busy {spec.run_id}: another process (pid {message}) trains it; waiting for "
                                   f"it later")
                        continue
                    outcome[spec.run_id] = (status, message)
                    bars.done(spec.run_id, status, message)
    finally:
        stop.set()
        reader.join(timeout=2)
        bars.close()
        manager.shutdown()
    if interrupted:
        raise KeyboardInterrupt
    return outcome
