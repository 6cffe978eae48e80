"""Run calls into a pool on a worker thread, so a pool that hangs cannot hang poolcheck.

A call that does not return within its limit raises ``Hung`` with the worker's stack; the
worker is abandoned (a daemon thread, it cannot keep the process alive) and the next call
gets a fresh one.
"""

from __future__ import annotations

import queue
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_Job = tuple[Callable[[], Any], list[Any], threading.Event]


class Hung(Exception):
    """A call into the pool did not return in time."""

    def __init__(self, what: str, limit: float, thread: threading.Thread) -> None:
        super().__init__(f"{what} did not return within {limit:g} s")
        self.what = what
        self.limit = limit
        frame = sys._current_frames().get(thread.ident or -1)
        self.stack = ("".join(traceback.format_stack(frame)) if frame
                      else "(no stack: the thread has ended)")
        self.waiting = frame is not None and in_timed_wait(frame)


WAITS = {"wait", "get", "acquire", "wait_for"}


def in_timed_wait(frame: Any) -> bool:
    """Stuck in a wait of the standard library (Condition, Event, Semaphore, queue),
    rather than on a plain lock that nobody will release?"""
    return bool(frame.f_code.co_name in WAITS
                and Path(frame.f_code.co_filename).name in ("threading.py", "queue.py"))


class Watchdog:
    """One worker thread that runs calls one at a time, each under a time limit."""

    def __init__(self) -> None:
        self._worker: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()

    def _start(self) -> threading.Thread:
        self._jobs = queue.SimpleQueue()
        jobs = self._jobs
        worker = threading.Thread(target=self._serve, args=(jobs,), daemon=True,
                                  name="poolcheck-call")
        worker.start()
        return worker

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed back to the caller as it is
                box.append((False, exc))
            done.set()

    def close(self) -> None:
        """Let an idle worker end; a hung one stays blocked where it is."""
        if self._worker is not None:
            self._jobs.put(None)
            self._worker = None

    def __enter__(self) -> Watchdog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, fn: Callable[[], T], limit: float, what: str) -> T:
        if self._worker is None:
            self._worker = self._start()
        box: list[Any] = []
        done = threading.Event()
        self._jobs.put((fn, box, done))
        if not done.wait(limit):
            hung = Hung(what, limit, self._worker)
            self._worker = None  # abandoned: it may never come back
            raise hung
        ok, value = box[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value
