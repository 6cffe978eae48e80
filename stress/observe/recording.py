"""Connections and a factory that record facts about the pool, never conclusions.

Every fact is stamped under one lock with one clock, so the order of the stamps is the
order in which things happened: the judges can then reason about "before" and "after"
without guessing what another thread was doing in between.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class ConnectFailed(ConnectionError):
    """What the recording factory raises when told to fail: the pool must let it through."""


class Interrupted(BaseException):
    """A BaseException that is not an Exception (think KeyboardInterrupt, gevent.Timeout)."""


@dataclass
class CallRecord:
    """One call into the pool: who, what, when it began and ended, and what came of it."""

    thread: int
    op: str  # get | put | discard | close
    conn: int | None = None
    timeout: float | None = None
    call: float = 0.0
    ret: float | None = None  # None: never returned
    outcome: str = "pending"  # ok | EmptyPoolError | ClosedPoolError | what the factory raised
    kept: bool | None = None  # put: the connection was still open when put_conn returned
    error: str | None = None  # an exception the contract does not allow, with its traceback
    connected: bool = False  # get: its thread called the connection factory during it


@dataclass
class Log:
    """Everything one run observed; the judges read it and nothing else."""

    created: dict[int, float] = field(default_factory=dict)
    closed: dict[int, float] = field(default_factory=dict)
    closed_by_caller: set[int] = field(default_factory=set)
    close_calls: dict[int, int] = field(default_factory=dict)  # how often close() was called
    close_times: dict[int, list[tuple[float, bool]]] = field(  # each close(): when, by caller?
        default_factory=dict)
    calls: list[CallRecord] = field(default_factory=list)
    last_event: float = 0.0

    @property
    def handed_out(self) -> int:
        """The program's gets that returned a connection (not the checker's probes, whose
        threads are negative): none, and a check tested nothing."""
        return sum(c.op == "get" and c.outcome == "ok" and c.thread >= 0 for c in self.calls)


class Recorder:
    """Stamps facts under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log = Log(last_event=time.monotonic())
        self._doing: dict[int, CallRecord] = {}  # by caller: its call under way
        self.who: Callable[[], int] = threading.get_ident  # the caller (an event loop's: its task)

    def begin(self, thread: int, op: str, conn: int | None = None,
              timeout: float | None = None) -> CallRecord:
        with self.lock:
            now = self.log.last_event = time.monotonic()
            record = CallRecord(thread, op, conn, timeout, call=now)
            self.log.calls.append(record)
            self._doing[self.who()] = record
            return record

    def end(self, record: CallRecord, outcome: str, conn: int | None = None,
            kept: bool | None = None, error: str | None = None) -> None:
        with self.lock:
            record.ret = self.log.last_event = time.monotonic()
            record.outcome = outcome
            if conn is not None:
                record.conn = conn
            if kept is not None:
                record.kept = kept
            record.error = error

    def connecting(self) -> None:
        """The factory was called: by the thread of the call it marks, whatever follows."""
        with self.lock:
            record = self._doing.get(self.who())
            if record is not None and record.ret is None:
                record.connected = True

    def created(self, ident: int) -> None:
        with self.lock:
            self.log.created[ident] = self.log.last_event = time.monotonic()

    def closed(self, ident: int, by_caller: bool) -> None:
        with self.lock:
            self.log.close_calls[ident] = self.log.close_calls.get(ident, 0) + 1
            self.log.close_times.setdefault(ident, []).append((time.monotonic(), by_caller))
            if ident not in self.log.closed:
                self.log.closed[ident] = self.log.last_event = time.monotonic()
                if by_caller:
                    self.log.closed_by_caller.add(ident)


class RecordingConnection:
    """A fake connection that knows whether it is closed and who is using it."""

    def __init__(self, ident: int, recorder: Recorder | None = None) -> None:
        self.id = ident
        self.closed = False
        self.close_calls = 0
        self.closed_by_caller = False  # the first close was a caller's, not the pool's
        self.user: int | None = None  # thread inside use(), if any
        self._recorder = recorder

    def __hash__(self) -> int:
        """By number, not address: a pool keeping connections in a set then orders them the
        same way in every run, so a replayed schedule replays the same history."""
        return hash(self.id)

    def close(self) -> None:
        self._close(by_caller=False)

    def close_as_caller(self) -> None:
        """The caller found the connection broken and closes it before put_conn(None)."""
        self._close(by_caller=True)

    def _close(self, by_caller: bool) -> None:
        if not self.closed:
            self.closed_by_caller = by_caller
        self.close_calls += 1
        if self._recorder is not None:
            self._recorder.closed(self.id, by_caller)
        self.closed = True

    def use(self, thread: int, steps: int) -> int | None:
        """Pretend to send a request; returns the thread found inside, if any."""
        intruder = self.user
        self.user = thread
        for _ in range(steps):
            time.sleep(0)  # let another thread run while we are "inside"
        if self.user == thread:
            self.user = None
        return intruder

    def __repr__(self) -> str:
        return f"<connection #{self.id}{' closed' if self.closed else ''}>"


class RecordingFactory:
    """The pool's ``connection_factory``: numbers its connections and can be made to fail."""

    def __init__(self, recorder: Recorder | None = None, seed: int | None = None) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._recorder = recorder
        self._jitter = random.Random(seed) if seed is not None else None
        self.created: list[RecordingConnection] = []
        self.fail_next = 0
        self.fail_with: type[BaseException] = ConnectFailed
        self.raised: list[BaseException] = []

    def __call__(self) -> RecordingConnection:
        if self._jitter is not None and self._jitter.random() < 0.5:
            time.sleep(0)  # widen the window between "decided to connect" and "connected"
        if self._recorder is not None:
            self._recorder.connecting()
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                err = self.fail_with("connection refused (injected by poolcheck)")
                self.raised.append(err)
                raise err
            conn = RecordingConnection(next(self._ids), self._recorder)
            self.created.append(conn)
            if self._recorder is not None:
                self._recorder.created(conn.id)
        return conn

    def fault(self, point: str) -> None:
        """A place other than this factory's call where making a connection can fail (an
        adapter's: constructing a library's connection object, before it connects): an
        armed failure is raised at the first such place reached, or by the call."""
        if self._recorder is not None:
            self._recorder.connecting()
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                err = self.fail_with(f"{point} failed (injected by poolcheck)")
                self.raised.append(err)
                raise err

    def owns(self, obj: object) -> bool:
        return isinstance(obj, RecordingConnection) and any(c is obj for c in self.created)

    def injected(self, exc: BaseException) -> bool:
        return any(e is exc for e in self.raised)

    def open_connections(self) -> list[RecordingConnection]:
        with self._lock:
            return [c for c in self.created if not c.closed]


class WaitInterrupted(BaseException):
    """What a controlled run delivers to a caller blocked in get_conn (a stand-in for a
    KeyboardInterrupt or a gevent Timeout): a BaseException, so ``except Exception``
    lets it pass, as the real ones do."""


WAIT_INTERRUPTED = WaitInterrupted.__name__  # the outcome of a get_conn it interrupted


def contract_error(exc: BaseException, factory: RecordingFactory) -> str | None:
    """The contract's name for what a pool raised, or None if it may not raise it.

    Errors are recognised by class name anywhere in the MRO (the contract, section 1), and
    what the factory raised must come through unchanged: the very same object.
    """
    if factory.injected(exc):
        return type(exc).__name__
    names = {k.__name__ for k in type(exc).__mro__}
    for name in ("ClosedPoolError", "EmptyPoolError"):
        if name in names:
            return name
    return None
