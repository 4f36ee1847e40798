"""Stopping a run cleanly: SIGINT and SIGTERM set an event that the training loop polls
between steps, so that it finishes the step in progress, saves a checkpoint and raises
``Interrupted`` (exit status 2 at the command line, with the command that resumes).
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from repro.errors import ReproError


class Interrupted(ReproError):
    pass


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
