"""Real threads on one pool: seeded programs, race provocation, a stall watchdog.

A round builds a fresh pool, releases N threads together (a barrier), each running its
own seeded program of gets, uses, puts, broken-connection returns and injected faults,
with the switch interval cut to a microsecond so the GIL changes hands mid-operation.
Then, with every thread done, it probes the pool (can it still hand out ``maxsize``
connections? does close() close everything?). It records facts only; ``judges`` decides.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from poolcheck.causes import Cause
from poolcheck.judge.judges import late_by
from poolcheck.load.targets import Target
from poolcheck.model import Invariant
from poolcheck.observe.facts import RoundResult, RoundSpec, Stall
from poolcheck.observe.recording import (
    CallRecord,
    ConnectFailed,
    Interrupted,
    Log,
    Recorder,
    RecordingConnection,
    RecordingFactory,
    contract_error,
)
from poolcheck.observe.watchdog import Hung, Watchdog, in_timed_wait
from poolcheck.settings import ROUND_STALL as STALL

SWITCH_INTERVAL = 1e-6
WAIT_TIMEOUTS_BLOCK = [None, 0.0, 0.02, 1.0]
WAIT_TIMEOUTS_NONBLOCK = [None, 0.0]
SHORT_WAITS = [0.0, 0.02]
PROBE_TIMEOUT = 0.2
WAKEUP_WAIT = 1.0  # the waiter of the wake-up probe: more than judges.GRACE, with room
WAKEUP_SETTLE = 0.05
STORM_WAIT = 0.2  # the storm probe's waiter: its timeout (more than WAKEUP_SETTLE) ...
STORM = 2.0  # ... and how long its wake-ups keep finding nothing, if it waits that long
STORM_PACE = 0.01  # between two wake-ups of the storm
YIELD_PER_LINE = 0.1


class _OpenBarrier:
    """A barrier for one thread: it never waits."""

    def wait(self) -> int:
        return 0


_OPEN_BARRIER: Any = _OpenBarrier()

# A program is a list of steps: (kind, argument)
Step = tuple[str, Any]


def make_program(rng: random.Random, spec: RoundSpec, closer: bool) -> list[Step]:
    timeouts = WAIT_TIMEOUTS_BLOCK if spec.block else WAIT_TIMEOUTS_NONBLOCK
    steps: list[Step] = []
    while len(steps) < spec.ops:
        if rng.random() < 0.1:
            steps.append(("fault", Interrupted if rng.random() < 0.3 else ConnectFailed))
        steps.append(("get", rng.choice(timeouts)))  # holds nothing: may wait for ever
        if rng.random() < 0.3:  # holds one: waits short, or holders starve each other
            steps.append(("get", rng.choice(SHORT_WAITS)))
        steps.append(("use", rng.randint(0, 3)))
        steps.append(("return_all", rng.random()))
    if closer:  # close while the others are busy, not after they are done
        steps.insert(rng.randrange(len(steps) // 3, len(steps) + 1), ("close", None))
    return steps


@contextmanager
def provoked_races() -> Iterator[None]:
    """A tiny switch interval makes the GIL change hands inside pool operations."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


class _Worker:
    def __init__(self, index: int, pool: Any, program: list[Step], recorder: Recorder,
                 factory: RecordingFactory, rng: random.Random) -> None:
        self.index = index
        self.pool = pool
        self.program = program
        self.recorder = recorder
        self.factory = factory
        self.rng = rng
        self.held: list[RecordingConnection] = []
        self.done: list[str] = []

    def run(self, barrier: threading.Barrier, pool_files: frozenset[str]) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        if pool_files:
            sys.settrace(_yielding_tracer(pool_files, random.Random(self.rng.random())))
        try:
            for kind, arg in self.program:
                getattr(self, f"_{kind}")(arg)
            self._return_all(0.0)
        finally:
            sys.settrace(None)

    def _fault(self, kind: type[BaseException]) -> None:
        self.factory.fail_with = kind
        self.factory.fail_next = 1
        self.done.append(f"arm the factory to raise {kind.__name__}")

    def _get(self, timeout: float | None) -> None:
        record = self.recorder.begin(self.index, "get", timeout=timeout)
        self.done.append(f"get_conn(timeout={timeout})")
        try:
            conn = self.pool.get_conn(timeout=timeout)
        except BaseException as exc:
            end_get_raised(self.recorder, record, exc, self.factory)
            self.done[-1] += f" -> {type(exc).__name__}"
            return
        if end_got(self.recorder, record, conn, self.factory):
            self.done[-1] += f" -> #{conn.id}"
            self.held.append(conn)

    def _use(self, steps: int) -> None:
        for conn in self.held:
            intruder = conn.use(self.index, steps)
            if intruder is not None:
                record = self.recorder.begin(self.index, "use", conn=conn.id)
                self.recorder.end(record, "ok", error=f"thread {intruder} was using "
                                  f"connection #{conn.id} when thread {self.index} began to")

    def _return_all(self, coin: float, one: bool = False) -> None:
        """Give back what this thread holds (only one connection if ``one``)."""
        while self.held:
            conn = self.held.pop()
            if coin < 0.25:  # the caller found it broken: close, then give the slot back
                conn.close_as_caller()
                self._call("discard", conn, lambda: self.pool.put_conn(None))
            else:
                self._call("put", conn, lambda c=conn: self.pool.put_conn(c))
            coin = self.rng.random()
            if one:
                return

    def _close(self, _: object) -> None:
        self._call("close", None, self.pool.close)

    def _call(self, op: str, conn: RecordingConnection | None, fn: Any) -> None:
        record = self.recorder.begin(self.index, op, conn=conn.id if conn else None)
        self.done.append(f"{op}(#{conn.id})" if conn else f"{op}()")
        try:
            fn()
        except BaseException as exc:
            self.recorder.end(record, type(exc).__name__, error=_trace(exc))
            self.done[-1] += f" -> {type(exc).__name__}"
            return
        kept = end_call(self.recorder, record, op, conn)
        if kept is not None:
            self.done[-1] += " -> kept it" if kept else " -> closed it"


# How a call's outcome is recorded, by a thread (``_Worker``, the controlled lanes) or a
# task (``poolcheck.run.aio``): one wording for every judge.

def end_get_raised(recorder: Recorder, record: CallRecord, exc: BaseException,
                   factory: RecordingFactory) -> None:
    """A get_conn that raised: a contract error by its name, anything else with its
    traceback (the errors judge reads it)."""
    name = contract_error(exc, factory)
    recorder.end(record, name or type(exc).__name__, error=None if name else _trace(exc))


def end_got(recorder: Recorder, record: CallRecord, conn: Any,
            factory: RecordingFactory) -> bool:
    """A get_conn that returned: is ``conn`` the factory's (the caller holds it)?"""
    if not factory.owns(conn):
        recorder.end(record, "ok", error=f"get_conn returned {conn!r}, which its "
                     "connection_factory did not make")
        return False
    recorder.end(record, "ok", conn=conn.id)
    return True


def end_call(recorder: Recorder, record: CallRecord, op: str,
             conn: RecordingConnection | None) -> bool | None:
    """A put_conn, discard or close() that returned; for a put, whether it was kept."""
    # Kept unless the *pool* closed it: by now another thread may have got it from the
    # pool and closed it as broken, which proves it was kept.
    kept = None if conn is None or op != "put" else (not conn.closed or conn.closed_by_caller)
    recorder.end(record, "ok", kept=kept)
    return kept


def _yielding_tracer(files: frozenset[str], rng: random.Random,
                     rate: float = YIELD_PER_LINE) -> Any:
    """Give up the GIL at random lines of the pool's own code: races need a switch inside
    a window that may be one line wide, and the switch interval alone rarely lands there."""
    def on_line(frame: Any, event: str, arg: object) -> Any:
        if event == "line" and rng.random() < rate:
            time.sleep(0)
        return on_line

    def on_call(frame: Any, event: str, arg: object) -> Any:
        return on_line if frame.f_code.co_filename in files else None

    return on_call


def pool_files(cls: type) -> frozenset[str]:
    """The source files of the pool class and its bases: where to provoke switches. Also
    where their functions were written (httpcore sets ``__module__`` to its package)."""
    files = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        module = sys.modules.get(klass.__module__)
        path = getattr(module, "__file__", None)
        if not path:
            continue
        files.add(path)
        home = os.path.join(os.path.dirname(path), "")  # its package (or folder): not stdlib
        for value in vars(klass).values():
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None and code.co_filename.startswith(home):
                files.add(code.co_filename)
    return frozenset(files)


def _trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip() + "\n" + "".join(
        traceback.format_tb(exc.__traceback__)[-3:])


def run_round(target: Target, spec: RoundSpec, watchdog: Watchdog) -> RoundResult:
    recorder = Recorder()
    factory = RecordingFactory(recorder, seed=spec.seed)
    rng = random.Random(spec.seed)
    result = RoundResult(spec, recorder.log, {}, has_close=target.has_close)
    try:
        pool = watchdog.call(lambda: target.make(spec.maxsize, spec.block, None, factory),
                             2.0, "the pool's constructor")
    except Hung as hung:
        result.stall = Stall(Invariant.DEADLOCK_FREE, f"{hung}\n{hung.stack}")
        return result
    except Exception as exc:
        result.construct_error = f"{target.cls.__name__}(...) raised {exc!r}"
        return result
    closer = rng.randrange(spec.threads) if spec.closer and target.has_close else -1
    workers = [_Worker(i, pool, make_program(random.Random(rng.random()), spec, i == closer),
                       recorder, factory, random.Random(rng.random()))
               for i in range(spec.threads)]
    barrier = threading.Barrier(spec.threads)
    files = pool_files(target.cls)
    threads = [threading.Thread(target=w.run, args=(barrier, files), daemon=True,
                                name=f"poolcheck-worker-{w.index}") for w in workers]
    with provoked_races():
        for t in threads:
            t.start()
        stalled = _watch(threads, recorder)
    result.last_ops = {w.index: w.done[-6:] for w in workers}
    if stalled:
        probe = _Worker(-1, pool, [], recorder, factory, random.Random(0))
        result.stall = _diagnose(probe, spec, threads, workers, recorder, watchdog)
        if not _release_by_closing(probe, threads, recorder, watchdog, target.has_close):
            settle_kept(recorder.log)
            return result
    _probe_and_close(pool, spec, factory, recorder, watchdog, result)
    settle_kept(recorder.log)
    return result


def settle_kept(log: Log) -> None:
    """A put that saw its connection closed on return may still have kept it: another
    thread can get it, and the pool close it again, before the first put returns. A later
    get_conn that handed the connection out proves it was kept."""
    for put in log.calls:
        if put.op == "put" and put.kept is False and any(
                g.op == "get" and g.conn == put.conn and g.ret is not None and g.ret > put.call
                for g in log.calls):
            put.kept = True


def _release_by_closing(closer: _Worker, threads: list[threading.Thread],
                        recorder: Recorder, watchdog: Watchdog, has_close: bool) -> bool:
    """After a stall, close() may free the stuck threads: then the round can be finished."""
    if not has_close or any(c.op == "close" for c in recorder.log.calls):
        return False
    try:
        watchdog.call(lambda: closer._close(None), 2.0, "close() after a stall")
    except BaseException:
        return False
    deadline = time.monotonic() + STALL
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def _watch(threads: list[threading.Thread], recorder: Recorder) -> bool:
    """Wait for the threads; True if they stop making progress first."""
    for t in threads:
        while t.is_alive():
            t.join(0.05)
            if t.is_alive() and time.monotonic() - recorder.log.last_event > STALL:
                return True
    return False


def _diagnose(probe: _Worker, spec: RoundSpec, threads: list[threading.Thread],
              workers: list[_Worker], recorder: Recorder, watchdog: Watchdog) -> Stall:
    """Name what the stuck threads show, most specific first."""
    frames = sys._current_frames()
    now = time.monotonic()
    pending = {w.index: _pending(recorder, w.index) for w, t in zip(workers, threads,
                                                                   strict=True) if t.is_alive()}
    stuck = sorted(pending)
    stacks = "\n".join(
        f"thread {w.index}, last operations: {'; '.join(w.done[-4:])}\n"
        + "".join(traceback.format_stack(frames[t.ident]))
        for w, t in zip(workers, threads, strict=True)
        if t.is_alive() and t.ident in frames)
    waits = {i: c for i, c in pending.items() if c is not None and c.op == "get"}
    idents = {w.index: t.ident for w, t in zip(workers, threads, strict=True)}
    for i, c in sorted(waits.items()):
        frame = frames.get(idents[i] or -1)
        if (c.timeout is not None and now - c.call > c.timeout + late_by(c.timeout)
                and frame is not None and in_timed_wait(frame)):
            return Stall(Invariant.TIMEOUT, f"thread {i}'s get_conn(timeout={c.timeout}) has not "
                         f"returned after {now - c.call:.1f} s\n{stacks}")
    closes = [c.ret for c in recorder.log.calls if c.op == "close" and c.ret is not None]
    if closes and waits and len(waits) == len(stuck):
        return Stall(Invariant.CLOSED,
                     f"close() returned {now - min(closes):.1f} s ago, yet threads "
                     f"{stuck} still wait in get_conn instead of raising ClosedPoolError\n"
                     f"{stacks}", cause=Cause.CLOSE_WOKE_NOBODY)
    if spec.block and waits and len(waits) == len(stuck) and not any(w.held for w in workers):
        # Every stuck thread waits in get_conn and nobody holds a connection: the pool
        # has what they need, unless it lost it. Ask it once more, from here.
        probe.factory.fail_next = 0  # an armed fault would answer for the pool
        try:
            watchdog.call(lambda: probe._get(0.0), 2.0, "get_conn(timeout=0)")
        except Hung:
            pass
        else:
            served = bool(probe.held)
            asked = [c for c in recorder.log.calls if c.thread == probe.index][-1]
            with contextlib.suppress(Hung):  # give it back, recorded like any return
                watchdog.call(lambda: probe._return_all(1.0), 2.0, "put_conn")
            if served:
                return Stall(Invariant.WAKEUP, f"threads {stuck} wait in get_conn(timeout=None) "
                             f"for {STALL:g} s although no connection is checked out, and a "
                             f"new get_conn(timeout=0) is served at once: a wakeup was lost"
                             f"\n{stacks}")
            if asked.outcome == "EmptyPoolError":
                return Stall(Invariant.CAPACITY, f"threads {stuck} wait in get_conn(timeout=None) "
                             "for ever: no connection is checked out, yet the pool says it is "
                             f"full (slots were lost)\n{stacks}")
    return Stall(Invariant.DEADLOCK_FREE,
                 f"no progress for {STALL:g} s; threads {stuck} are stuck\n"
                 f"{stacks}")


def _pending(recorder: Recorder, thread: int) -> CallRecord | None:
    with recorder.lock:
        calls = [c for c in recorder.log.calls if c.thread == thread]
    return calls[-1] if calls and calls[-1].ret is None else None


def _probe_and_close(pool: Any, spec: RoundSpec, factory: RecordingFactory,
                     recorder: Recorder, watchdog: Watchdog, result: RoundResult) -> None:
    """Every thread is done and every connection returned: what state is the pool in?"""
    probe = _Worker(-1, pool, [], recorder, factory, random.Random(0))
    factory.fail_next = 0
    call = _guarded_call(watchdog, result)
    closed = any(c.op == "close" for c in recorder.log.calls)
    if spec.block and not closed:
        for _ in range(spec.maxsize):
            if not call(lambda: probe._get(PROBE_TIMEOUT), "get_conn (capacity probe)"):
                return
        got = len(probe.held)
        result.capacity_intact = got == spec.maxsize
        if got < spec.maxsize:
            result.probe_empty = (
                f"with every connection returned, the pool handed out only {got} of "
                f"maxsize={spec.maxsize} connections at once")
        elif not (_wakeup_probe(probe, recorder, factory, spec.seed, result) and (
                not spec.storm or _storm_probe(probe, spec, recorder, factory, result, call))):
            return
        elif result.has_close:
            if not _close_probe(probe, spec, recorder, factory, result, call):
                return
            closed = True
        call(lambda: probe._return_all(1.0), "put_conn (capacity probe)")
    if not result.has_close:
        return
    # A second close() would tidy up what the first one missed, and hide it.
    if not closed and not call(lambda: probe._close(None), "close()"):
        return
    if not call(lambda: probe._get(0.0), "get_conn on the closed pool"):
        return
    last = recorder.log.calls[-1]
    if last.outcome != "ClosedPoolError":
        result.closed_get = f"get_conn on the closed pool gave {last.outcome}" + (
            f" #{last.conn}" if last.conn else "")
        call(lambda: probe._return_all(1.0), "put_conn")
    result.left_open = sorted(c.id for c in factory.open_connections())


def _wakeup_probe(probe: _Worker, recorder: Recorder, factory: RecordingFactory,
                  seed: int, result: RoundResult) -> bool:
    """The pool is full (the probe holds every connection): does one return wake a waiter?

    A waiter blocks in get_conn(timeout=WAKEUP_WAIT); once it has had time to block, the
    probe frees a slot (a broken connection: close, put_conn(None)) or returns a
    connection, as the seed picks. A correct pool serves the waiter at once; one that loses
    the wake-up lets it time out with a slot or a connection free, which judge_wakeup
    sees in the stamps. If the waiter was not blocked yet, it simply finds what is free:
    no false alarm, just no test. False if the waiter hung (the round is then a stall).
    """
    thread = _start_waiter(-2, probe, recorder, factory, seed, "poolcheck-waiter")
    probe._return_all(0.0 if random.Random(seed).random() < 0.5 else 1.0, one=True)
    thread.join(WAKEUP_WAIT + STALL)
    if thread.is_alive():
        result.stall = Stall(Invariant.DEADLOCK_FREE,
                             "a get_conn waiting for a returned connection "
                             f"did not return within {WAKEUP_WAIT + STALL:g} s")
        return False
    return True


def _start_waiter(index: int, probe: _Worker, recorder: Recorder, factory: RecordingFactory,
                  seed: int, name: str, timeout: float = WAKEUP_WAIT) -> threading.Thread:
    """A thread that calls get_conn(timeout) on the probe's pool, given time to block in
    it (too little time only weakens the probe, never fakes a failure)."""
    waiter = _Worker(index, probe.pool, [("get", timeout)], recorder, factory,
                     random.Random(seed))
    thread = threading.Thread(target=waiter.run, args=(_OPEN_BARRIER, frozenset()),
                              daemon=True, name=name)
    thread.start()
    threading.Event().wait(WAKEUP_SETTLE)
    return thread


def _storm_probe(probe: _Worker, spec: RoundSpec, recorder: Recorder,
                 factory: RecordingFactory, result: RoundResult, call: Any) -> bool:
    """The pool is full again: does a waiter whose every wake-up finds nothing still time
    out on time?

    A waiter blocks in get_conn(timeout=STORM_WAIT). While it waits (STORM at most), the
    probe returns a connection and takes it straight back, every STORM_PACE, so that each
    return wakes the waiter to find nothing. A correct pool raises EmptyPoolError after
    STORM_WAIT all the same, which ends the storm; one that starts the timeout again at
    each wake-up waits until the storm is over, which judge_timeout sees. If the waiter
    wins a connection, it gives it back: no test, no false alarm.
    """
    if not call(lambda: probe._get(PROBE_TIMEOUT), "get_conn (storm probe)"):
        return False
    thread = _start_waiter(-4, probe, recorder, factory, spec.seed, "poolcheck-storm-waiter",
                           STORM_WAIT)
    end = time.monotonic() + STORM
    pace = threading.Event()
    while (thread.is_alive() and len(probe.held) == spec.maxsize
           and time.monotonic() < end):
        if not call(lambda: _return_and_retake(probe), "put_conn, get_conn (storm probe)"):
            return False
        pace.wait(STORM_PACE)  # pacing, not synchronisation: the log stays small
    thread.join(STORM_WAIT + STALL)
    if thread.is_alive():
        result.stall = Stall(Invariant.TIMEOUT, f"a get_conn(timeout={STORM_WAIT}) whose wake-ups "
                             f"found nothing did not return within {STORM + STALL:g} s")
        return False
    if len(probe.held) == spec.maxsize:  # as the close probe expects: one free
        return bool(call(lambda: probe._return_all(1.0, one=True), "put_conn (storm probe)"))
    return True


def _return_and_retake(probe: _Worker) -> None:
    """Back to back on one thread, so that the waiter this return wakes finds nothing."""
    probe._return_all(1.0, one=True)
    probe._get(0.0)


def _close_probe(probe: _Worker, spec: RoundSpec, recorder: Recorder,
                 factory: RecordingFactory, result: RoundResult, call: Any) -> bool:
    """The pool is full again: does close() wake a caller waiting in get_conn?

    A waiter blocks in get_conn(timeout=WAKEUP_WAIT) and the probe calls close(). A correct
    pool wakes it with ClosedPoolError at once; one that does not lets it time out with
    EmptyPoolError, which judge_closed sees in the stamps. A waiter not yet blocked finds
    the pool closed: no false alarm. False if something hung (the round is then a stall).
    """
    if not call(lambda: probe._get(PROBE_TIMEOUT), "get_conn (close probe)"):
        return False
    thread = _start_waiter(-3, probe, recorder, factory, spec.seed, "poolcheck-close-waiter")
    if not call(lambda: probe._close(None), "close() (close probe)"):
        return False
    thread.join(WAKEUP_WAIT + STALL)
    if thread.is_alive():
        result.stall = Stall(Invariant.CLOSED, "a get_conn(timeout=1) waiting when close() was "
                             f"called did not return within {WAKEUP_WAIT + STALL:g} s",
                             cause=Cause.CLOSE_WOKE_NOBODY)
        return False
    return True


def _guarded_call(watchdog: Watchdog, result: RoundResult) -> Any:
    def call(fn: Any, what: str) -> bool:
        try:
            watchdog.call(fn, 2.0 + PROBE_TIMEOUT, what)
        except Hung as hung:
            result.stall = Stall(Invariant.DEADLOCK_FREE,
                                 f"{hung} (all threads done)\n{hung.stack}")
            return False
        return True
    return call
