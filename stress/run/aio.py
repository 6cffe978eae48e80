"""The controlled scheduler for asyncio pools: an event loop whose every step is chosen.

A thread pool can be preempted between any two lines; an asyncio pool only where it awaits.
This loop runs ready callbacks first in, first out, as asyncio's own does, and leaves to
the chooser what real I/O and real time would decide:

- when each lane's I/O completes: before each of its operations (the caller was busy
  elsewhere) and inside the connection factory (connecting);
- when virtual time jumps to the next timer (``asyncio.sleep``, ``wait_for``, ``timeout``);
- after an ``interrupt`` operation, whether to cancel that lane's ``get_conn`` where it is
  suspended, at any await, woken or not (``task.cancel()``: asyncio's interrupt).

A callback made ready is never run ahead of one made ready before it (a pool may rely
on that order); a completion is an I/O event, queued behind what is ready, as in asyncio.
Programs, strategies, replay tokens, the final probe and the judges are the thread
scheduler's (``poolcheck.run.controlled``), so a report reads the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

from poolcheck.judge.judges import history_of_log
from poolcheck.load.targets import Target
from poolcheck.observe.facts import RoundResult, RoundSpec
from poolcheck.observe.recording import (
    WAIT_INTERRUPTED,
    ConnectFailed,
    RecordingConnection,
    RecordingFactory,
)
from poolcheck.run import coop
from poolcheck.run.controlled import (
    PROBE,
    ControlledRun,
    _project,
    _StepRecorder,
    give_verdict,
    probe_got,
    probe_refused,
)
from poolcheck.run.coop import CLOCK_START, Chooser, Option, Point, substituted
from poolcheck.run.engine import (
    _trace,
    end_call,
    end_get_raised,
    end_got,
    pool_files,
    settle_kept,
)
from poolcheck.run.parallel import Program

LOOP = -2  # a callback no lane's task owns (the pool's own tasks, gather, ...)


class _Loop(asyncio.BaseEventLoop):
    """An event loop that never blocks and never reads a real clock: each ``_run_once``
    takes one decision (see the module's docstring)."""

    aborting = False  # (what coop's clock asks of a scheduler)
    finished = False  # the run is over: what its unwinding tasks do is no fact of it
    just_ran: asyncio.Task[Any] | None = None  # the task of the last step, if it ran one

    def __init__(self, chooser: Chooser, budget: int, horizon: float, files: frozenset[str],
                 ops: Callable[[int], str]) -> None:
        super().__init__()
        self.chooser, self.budget, self.horizon, self.files = chooser, budget, horizon, files
        self.ops = ops
        self.now = CLOCK_START
        self.lanes: dict[asyncio.Task[Any], int] = {}
        # insertion-ordered, never sets: the options' order must be the same in a replay
        self.parked: dict[asyncio.Task[Any], asyncio.Future[None]] = {}  # awaiting "I/O"
        self.armed: dict[asyncio.Task[Any], None] = {}  # in a get_conn that may be cancelled
        self.delivered: dict[asyncio.Task[Any], None] = {}  # cancelled by us, not yet seen
        self.began: dict[asyncio.Task[Any], None] = {}  # armed tasks seen to begin a wait
        self.decisions: list[tuple[int, int, bool]] = []
        self.trail: list[Point] = []
        self.steps = 0
        self.idle_steps = 0  # since virtual time last moved
        self.outcome: tuple[str, str] | None = None
        self.errors: list[tuple[int, BaseException]] = []
        self.diverged = False
        self.set_exception_handler(self._exception)

    def time(self) -> float:
        return self.now

    def _process_events(self, event_list: Any) -> None:
        pass  # no selector: nothing real happens

    def _write_to_self(self) -> None:
        pass

    def unmanaged(self, what: str) -> None:
        self._end("unmanaged", f"the pool blocked the event loop in {what}")

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException) and not isinstance(exc, asyncio.CancelledError):
            task = context.get("task") or context.get("future")
            self.errors.append((self.lanes.get(task, LOOP), exc))  # type: ignore[arg-type]

    async def io(self) -> None:
        """Wait for "I/O": the chooser decides when it completes."""
        task = asyncio.current_task()
        assert task is not None
        done: asyncio.Future[None] = self.create_future()
        self.parked[task] = done
        try:
            await done
        finally:
            self.parked.pop(task, None)

    def _end(self, kind: str, message: str) -> None:
        if self.outcome is None:
            self.outcome = (kind, message)
        self.stop()

    def _owner(self, handle: asyncio.Handle) -> int:
        owner = getattr(getattr(handle, "_callback", None), "__self__", None)
        return self.lanes.get(owner, LOOP) if isinstance(owner, asyncio.Task) else LOOP

    def _where(self, task: asyncio.Task[Any] | None) -> str:
        """The innermost line of the pool's own code the task is suspended in."""
        found = None
        coro: Any = task.get_coro() if task is not None else None
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None and frame.f_code.co_filename in self.files:
                found = frame
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        return coop.where(found) if found is not None else "-"

    def _cancellable(self, task: asyncio.Task[Any]) -> bool:
        """Offer to cancel a waiting task while its I/O is in flight (connecting), when it
        first begins to wait, and once it has been woken, before it resumes (the awaited
        future is done: a wake-up it may swallow); else only when nothing else can happen:
        cancelling it sooner or later between those points changes nothing for it."""
        if task in self.parked:
            return True
        if task is self.just_ran and task not in self.began:  # its first wait: as good as
            self.began[task] = None                           # any time before its wake-up
            return True
        waited: Any = getattr(task, "_fut_waiter", None)
        while isinstance(waited, asyncio.Task) and not waited.done():  # wait_for's inner task
            waited = getattr(waited, "_fut_waiter", None)
        return waited is None or waited.done()

    def _run_once(self) -> None:
        if self.outcome is not None:
            self.stop()
            return
        self.steps += 1
        self.idle_steps += 1
        if self.idle_steps > self.budget:
            self._end("livelock", f"{self.budget} steps without virtual time passing: the "
                      "pool's tasks keep running and none of them finishes")
            return
        ready: Any = self._ready  # type: ignore[attr-defined]  # a deque of Handle
        while ready and ready[0]._cancelled:
            ready.popleft()
        timers: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        while timers and timers[0]._cancelled:
            heapq.heappop(timers)
        options: list[Option] = []
        actions: list[tuple[str, Any]] = []
        if ready:
            options.append(Option(self._owner(ready[0]), False, None))
            actions.append(("run", ready[0]))
        for task, done in self.parked.items():
            if done.done():  # cancelled while it waited: its task is ready already
                continue
            options.append(Option(self.lanes.get(task, LOOP), False, None))
            actions.append(("I/O done", task))
        if timers:
            options.append(Option(self._owner(timers[0]), True, timers[0].when()))
            actions.append(("timer", timers[0]))
        for task in self.armed:  # where a cancellation can matter (see _cancellable)
            if not task.done() and (not options or self._cancellable(task)):
                options.append(Option(self.lanes.get(task, LOOP), False, None, interrupt=True))
                actions.append(("cancel", task))
        if not options:
            stuck = [f"  task {i} waits at {self._where(t)} in {self.ops(i) or '-'}"
                     for t, i in self.lanes.items() if not t.done()]
            self._end("deadlock", "every task waits, none for a timer or I/O:\n"
                      + "\n".join(stuck))
            return
        k = 0
        if len(options) > 1:
            k = self.chooser.choose(options, options[0].thread if ready else None, self.steps)
            if not 0 <= k < len(options):
                self.diverged, k = True, 0
            self.decisions.append((len(options), k, bool(ready)))
        what, subject = actions[k]
        thread = options[k].thread
        owner: object = subject if isinstance(subject, asyncio.Task) else getattr(
            getattr(subject, "_callback", None), "__self__", None)
        where = self._where(owner if isinstance(owner, asyncio.Task) else None)
        self.trail.append(Point(self.steps, thread, where, what, self.ops(thread)))
        self.just_ran = owner if what == "run" and isinstance(owner, asyncio.Task) else None
        if what == "run":
            ready.popleft()._run()
        elif what == "I/O done":
            self.parked.pop(subject).set_result(None)
        elif what == "timer":
            self.now = max(self.now, subject.when())
            self.idle_steps = 0
            if self.now - CLOCK_START > self.horizon:
                self._end("livelock", f"virtual time ran past {self.horizon:g} s")
                return
            while timers and timers[0].when() <= self.now:
                handle = heapq.heappop(timers)
                if not handle._cancelled:
                    handle._scheduled = False  # type: ignore[attr-defined]
                    ready.append(handle)
        else:
            del self.armed[subject]
            self.delivered[subject] = None
            subject.cancel("interrupted by poolcheck while it waited in get_conn")


class _Lane:
    """One task of a program: the thread lanes' operations, awaited."""

    def __init__(self, index: int, loop: _Loop, recorder: _StepRecorder,
                 factory: RecordingFactory) -> None:
        self.index, self.loop, self.recorder, self.factory = index, loop, recorder, factory
        self.pool: Any = None
        self.held: list[RecordingConnection] = []
        self.interrupt_next = False
        self.can_close = True

    async def play(self, ops: Sequence[str], timeout: float | None) -> None:
        for op in ops:
            await self.loop.io()  # the caller was busy elsewhere for a while
            await self.op(op, timeout)

    async def op(self, op: str, timeout: float | None) -> None:
        if op == "get":
            await self.get(timeout)
        elif op == "wait":
            await self.get(None)
        elif op == "interrupt":
            self.interrupt_next = True
        elif op == "fail":
            self.factory.fail_with, self.factory.fail_next = ConnectFailed, 1
        elif op == "close":
            if self.can_close:
                await self.call("close", None, self.pool.close)
        elif self.held:
            conn = self.held.pop()
            if op == "put":
                await self.call("put", conn, lambda: self.pool.put_conn(conn))
            else:
                conn.close_as_caller()
                await self.call("discard", conn, lambda: self.pool.put_conn(None))

    async def get(self, timeout: float | None) -> None:
        record = self.recorder.begin(self.index, "get", timeout=timeout)
        task = asyncio.current_task()
        assert task is not None
        if self.interrupt_next:
            self.interrupt_next = False
            self.loop.armed[task] = None
            self.loop.began.pop(task, None)
        try:
            conn = await self.pool.get_conn(timeout=timeout)
        except GeneratorExit:
            raise
        except asyncio.CancelledError as exc:
            if self.loop.finished:
                raise
            if task in self.loop.delivered:  # ours: it counts as an interrupt
                del self.loop.delivered[task]
                _uncancel(task)
                self.recorder.end(record, WAIT_INTERRUPTED)
            else:
                self.recorder.end(record, "CancelledError", error=_trace(exc))
            return
        except BaseException as exc:
            if self.loop.finished:
                raise
            end_get_raised(self.recorder, record, exc, self.factory)
            return
        finally:
            self.loop.armed.pop(task, None)
        if task in self.loop.delivered:  # the pool swallowed the cancellation: allowed
            del self.loop.delivered[task]
            _uncancel(task)
        if end_got(self.recorder, record, conn, self.factory):
            self.held.append(conn)

    async def call(self, op: str, conn: RecordingConnection | None,
                   fn: Callable[[], object]) -> None:
        """put_conn or close(), plain or coroutine functions (CONTRACT section 1)."""
        record = self.recorder.begin(self.index, op, conn=conn.id if conn else None)
        try:
            result = fn()
            if inspect.isawaitable(result):
                await result
        except GeneratorExit:
            raise
        except BaseException as exc:
            if self.loop.finished:
                raise
            self.recorder.end(record, type(exc).__name__, error=_trace(exc))
            return
        end_call(self.recorder, record, op, conn)

    async def return_all(self) -> None:
        while self.held:
            conn = self.held.pop()
            await self.call("put", conn, lambda c=conn: self.pool.put_conn(c))  # type: ignore[misc]


def _uncancel(task: asyncio.Task[Any]) -> None:
    """Forget a cancellation the lane has handled (Python 3.11+ counts them)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


class _Connect:
    """The pool's ``connection_factory``, a coroutine function: connecting takes I/O."""

    def __init__(self, factory: RecordingFactory, loop: _Loop,
                 recorder: _StepRecorder) -> None:
        self.factory, self.loop, self.recorder = factory, loop, recorder

    async def __call__(self) -> RecordingConnection:
        if not self.loop.finished:
            self.recorder.connecting()  # the get holds a slot from here, whatever follows
        await self.loop.io()
        return self.factory()

    def fault(self, point: str) -> None:
        """An adapter's other place where making a connection fails (RecordingFactory's)."""
        self.factory.fault(point)


async def _probe(probe: _Lane, facts: RoundResult, timeout: float | None) -> None:
    """After the program, alone: what the pool was left in (``controlled._probe``)."""
    probe.factory.fail_next = 0
    maxsize, block = facts.spec.maxsize, facts.spec.block
    await probe.return_all()
    closed = any(c.op == "close" for c in facts.log.calls)
    if block and not closed:
        for _ in range(maxsize):
            await probe.get(timeout)
        probe_got(facts, len(probe.held))
        await probe.return_all()
    if not facts.has_close:
        return
    if not closed:
        await probe.call("close", None, probe.pool.close)
    await probe.get(0.0)
    if not probe_refused(facts):
        await probe.return_all()
    facts.left_open = sorted(c.id for c in probe.factory.open_connections())


def _phase(loop: _Loop, bodies: Sequence[tuple[int, Callable[[], Coroutine[Any, Any, None]]]],
           crashes: list[tuple[int, BaseException]]) -> None:
    """Run the bodies as tasks until all end or the loop stops (a deadlock, ...)."""
    tasks = []
    for index, body in bodies:
        task = loop.create_task(body())
        loop.lanes[task] = index
        tasks.append(task)
    with contextlib.suppress(RuntimeError):  # "stopped before Future completed": an outcome
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    if loop.outcome is None:
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                crashes.append((loop.lanes[task], cast(BaseException, task.exception())))


def _discard(loop: _Loop) -> None:
    """Let the tasks a stop left suspended go (their unwinding records nothing)."""
    loop.finished = True
    for task in list(loop.lanes):
        if not task.done():
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            with contextlib.suppress(BaseException):
                task.get_coro().close()
    with contextlib.suppress(BaseException):
        loop.close()


def run_async(target: Target, program: Program, maxsize: int, block: bool,
              chooser: Chooser, budget: int, get_timeout: float) -> ControlledRun:
    """One run of ``program`` on a fresh asyncio pool (``controlled.run_controlled``'s
    phases: the prefix on task 0, the branches on tasks 1, 2, ..., the probe on -1)."""
    recorder = _StepRecorder()
    factory = RecordingFactory(recorder)
    files = pool_files(target.cls)
    calls = len(program.prefix) + sum(len(b) for b in program.branches)
    loop = _Loop(chooser, budget, 100.0 + 10 * get_timeout * (calls + maxsize + 2), files,
                 lambda t: recorder.ops.get(t, ""))
    recorder.who = lambda: id(asyncio.current_task(loop))
    connect = _Connect(factory, loop, recorder)
    timeout = get_timeout if block else None
    facts = RoundResult(RoundSpec(0, len(program.branches), calls, maxsize, block, False),
                        recorder.log, {}, has_close=target.has_close)
    crashes: list[tuple[int, BaseException]] = []
    prefix = _Lane(0, loop, recorder, factory)
    lanes = [_Lane(i, loop, recorder, factory) for i in range(1, len(program.branches) + 1)]
    for lane in (prefix, *lanes):
        lane.can_close = target.has_close

    async def build_and_prefix() -> None:
        prefix.pool = target.make(maxsize, block, None, connect, on_loop=True)
        await prefix.play(program.prefix, timeout)

    def branch(lane: _Lane, ops: Sequence[str]) -> Callable[[], Coroutine[Any, Any, None]]:
        return lambda: lane.play(ops, timeout)

    collecting = gc.isenabled()
    gc.disable()  # a collection would run finalizers at points no schedule decides
    coop._ACTIVE.append(cast(coop.Scheduler, loop))  # the pool's time.monotonic(): virtual
    try:
        with substituted(target.cls, files, _project(target.cls), only_time=True):
            _phase(loop, [(0, build_and_prefix)], crashes)
            if loop.outcome is None and not crashes and lanes:
                for lane in lanes:
                    lane.pool = prefix.pool
                for i, conn in enumerate(prefix.held):
                    lanes[i % len(lanes)].held.append(conn)
                prefix.held = []
                _phase(loop, [(lane.index, branch(lane, ops))
                              for lane, ops in zip(lanes, program.branches, strict=True)],
                       crashes)
            if loop.outcome is None and not crashes:
                probe = _Lane(PROBE, loop, recorder, factory)
                probe.pool, probe.can_close = prefix.pool, target.has_close
                probe.held = [c for lane in (prefix, *lanes) for c in lane.held]
                _phase(loop, [(PROBE, lambda: _probe(probe, facts, timeout))], crashes)
    finally:
        coop._ACTIVE.remove(cast(coop.Scheduler, loop))
        log = recorder.log
        recorder.log = type(log)()  # what unwinding tasks do next is no fact of the run
        _discard(loop)
        if collecting:
            gc.enable()
    settle_kept(log)
    history = history_of_log(log, maxsize, block)
    run = ControlledRun(target, program, maxsize, block,
                        [k for _, k, _ in loop.decisions], list(loop.decisions),
                        list(loop.trail), loop.steps, loop.now - CLOCK_START, get_timeout,
                        history, budget=budget, diverged=loop.diverged or getattr(
                            chooser, "diverged", False))
    return give_verdict(run, loop.outcome, crashes + loop.errors, facts)

