"""Deterministic, replayable interleavings: parallel programs under a controlled scheduler.

Real-thread stress (``poolcheck.run.parallel``) finds races by luck and cannot replay them. Here
the same programs run on real threads of which only one runs at a time (``poolcheck.run.coop``):
every switch point (a line of the pool's own code, an operation on a lock, condition,
semaphore, event or queue) is a decision, and the decisions that had more than one option
make up the schedule. A failing schedule replays exactly from its *replay token*.

Strategies: a seeded random walk, PCT (probabilistic concurrency testing, depth ``d``),
an exhaustive search with at most ``k`` preemptions, and Hypothesis drawing the program
and the choices together so that a failure shrinks towards fewer operations and fewer
preemptions. Each run records a contract history judged by ``linearize.check``; a
deadlock (every thread waits, none with a deadline), a run past its step budget, or an
exception the contract does not allow is a failure too.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import gc
import itertools
import json
import os
import random
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from poolcheck.causes import Cause
from poolcheck.errors import LoadError, TokenError
from poolcheck.judge import linearize
from poolcheck.judge.judges import Finding, history_of_log, interrupted_by, judge_order
from poolcheck.judge.linearize_report import format_report
from poolcheck.load.targets import Target, load
from poolcheck.model import Invariant
from poolcheck.observe.facts import RoundResult, RoundSpec
from poolcheck.observe.history import History
from poolcheck.observe.recording import (
    CallRecord,
    Recorder,
    RecordingFactory,
    WaitInterrupted,
)
from poolcheck.run import coop
from poolcheck.run.coop import (
    ABORTED,
    CLOCK_START,
    STALL,
    Chooser,
    Option,
    Point,
    Scheduler,
    substituted,
)
from poolcheck.run.engine import pool_files, settle_kept
from poolcheck.run.parallel import LANES, MAX_OPS, OPS, Program
from poolcheck.run.parallel import _Lane as _ParallelLane
from poolcheck.run.shrink import shrink_greedily
from poolcheck.settings import CONTROLLED_CONFIGURATIONS, Configuration

SLOT_RUNS = 2  # runs of one small program under one strategy in the check's first round
BUDGET = 20_000  # switch points per run without virtual time passing: more is a livelock
GET_TIMEOUT = 1.0  # block=True: a get waits this long (virtual seconds) before EmptyPoolError
TRAIL_SHOWN = 40
TOKEN_PREFIX = "pc1."
# the parallel programs' operations, and "wait": get_conn(timeout=None), which real threads
# cannot afford (a lost wake-up would hang them) and a controlled run turns into an exact
# deadlock (see _deadlock)
CONTROLLED_OPS = (*OPS, "wait", "interrupt")


def programs(interrupts: bool = False) -> st.SearchStrategy[Program]:
    """Programs of the controlled operations; "interrupt" only if ``interrupts``."""
    ops = CONTROLLED_OPS if interrupts else tuple(o for o in CONTROLLED_OPS if o != "interrupt")
    # get and put twice as likely: most races need two of each
    step = st.tuples(st.integers(0, LANES), st.sampled_from(("get", "put", *ops)))
    return st.lists(step, min_size=1, max_size=MAX_OPS).map(Program.of)
EXIT_REPRODUCED, EXIT_NOT_REPRODUCED, EXIT_BAD_TOKEN = 1, 0, 2


# -- strategies ------------------------------------------------------------------------------


class RandomWalk:
    """At each decision, any option with equal probability."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, options: Sequence[Option], current: int | None, step: int) -> int:
        return self.rng.randrange(len(options))


class PCT:
    """Probabilistic concurrency testing (Burckhardt et al., 2010), depth ``depth``.

    Each thread gets a random priority when first seen; the highest-priority runnable
    thread runs. At ``depth - 1`` random steps (spread over ``steps`` expected switch
    points) the running thread drops below every other. A thread waiting with a deadline is
    woken by timeout only when nothing else can run, the earliest deadline first.
    """

    def __init__(self, seed: int, depth: int = 3, steps: int = 200) -> None:
        self.rng = random.Random(seed)
        self.priority: dict[int, float] = {}
        self.changes = sorted(self.rng.sample(range(1, max(steps, depth) + 1), depth - 1))
        self.lowered = 0

    def choose(self, options: Sequence[Option], current: int | None, step: int) -> int:
        for o in options:
            if o.thread not in self.priority:
                self.priority[o.thread] = 1.0 + self.rng.random()
        while self.changes and step >= self.changes[0]:
            self.changes.pop(0)
            self.lowered += 1
            if current is not None:
                self.priority[current] = -float(self.lowered)
        interrupts = [i for i, o in enumerate(options) if o.interrupt]
        if interrupts and self.rng.random() < 0.5:  # priorities say nothing about these
            return self.rng.choice(interrupts)
        ready = [i for i, o in enumerate(options) if not o.timed and not o.interrupt]
        if ready:
            return max(ready, key=lambda i: self.priority[options[i].thread])
        return min(range(len(options)), key=lambda i: options[i].deadline or 0.0)


class Replay:
    """The given choices in order, then 0 once they run out (the current thread goes on,
    or, if it is blocked with a deadline, times out)."""

    def __init__(self, choices: Sequence[int]) -> None:
        self.choices = list(choices)
        self.at = 0
        self.diverged = False

    def choose(self, options: Sequence[Option], current: int | None, step: int) -> int:
        if self.at >= len(self.choices):
            return 0
        k = self.choices[self.at]
        self.at += 1
        if not 0 <= k < len(options):
            self.diverged = True
            return 0
        return k


class Drawn(Replay):
    """Hypothesis's values, each taken modulo the number of options (0 goes on), then a
    random walk seeded by ``walk``."""

    def __init__(self, choices: Sequence[int], walk: int) -> None:
        super().__init__(choices)
        self.walk = random.Random(walk)

    def choose(self, options: Sequence[Option], current: int | None, step: int) -> int:
        if self.at >= len(self.choices):
            return self.walk.randrange(len(options))
        k = self.choices[self.at] % len(options)
        self.at += 1
        return k


# -- one controlled run ------------------------------------------------------------------------


class _StepRecorder(Recorder):
    """The engine's recorder with a logical clock: one tick per stamp, in the order they
    happen (only one thread runs at a time), so histories replay identically."""

    def __init__(self) -> None:
        super().__init__()
        self._ticks = itertools.count(1)
        self.ops: dict[int, str] = {}

    def _tick(self) -> float:
        self.log.last_event = float(next(self._ticks))
        return self.log.last_event

    def begin(self, thread: int, op: str, conn: int | None = None,
              timeout: float | None = None) -> CallRecord:
        with self.lock:
            record = CallRecord(thread, op, conn, timeout, call=self._tick())
            self.log.calls.append(record)
            self._doing[self.who()] = record
            self.ops[thread] = op + (f"(#{conn})" if conn is not None else "()")
            return record

    def end(self, record: CallRecord, outcome: str, conn: int | None = None,
            kept: bool | None = None, error: str | None = None) -> None:
        with self.lock:
            record.ret = self._tick()
            record.outcome = outcome
            if conn is not None:
                record.conn = conn
            if kept is not None:
                record.kept = kept
            record.error = error
            self.ops.pop(record.thread, None)

    def created(self, ident: int) -> None:
        with self.lock:
            self.log.created[ident] = self._tick()

    def closed(self, ident: int, by_caller: bool) -> None:
        with self.lock:
            self.log.close_calls[ident] = self.log.close_calls.get(ident, 0) + 1
            self.log.close_times.setdefault(ident, []).append((self.log.last_event, by_caller))
            if ident not in self.log.closed:
                self.log.closed[ident] = self._tick()
                if by_caller:
                    self.log.closed_by_caller.add(ident)


@dataclass
class ControlledRun:
    """What one controlled run of a program did, and the verdict on it."""

    target: Target
    program: Program
    maxsize: int
    block: bool
    choices: list[int]
    decisions: list[tuple[int, int, bool]]
    trail: list[Point]
    steps: int
    virtual_seconds: float
    get_timeout: float = GET_TIMEOUT
    history: History | None = None
    result: linearize.Result | None = None
    # None: passed; deadlock|livelock|errors|crash|linearizable, or the name of the
    # invariant a judge found broken (no-leak, closed, ...): failed;
    # hung|unmanaged|undecided|internal: no verdict (see NO_VERDICT)
    kind: str | None = None
    message: str = ""
    budget: int = BUDGET
    diverged: bool = False  # a replay whose choices did not fit the run (the target changed)
    facts: RoundResult | None = None  # what the judges read (a run that ended)
    # an interrupted run's failure is named interrupt-safe; what it broke underneath
    underlying: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)  # every invariant it broke
    cause: Cause | None = None  # what the run shows beyond its kind (a lost wake-up, ...)
    handed_out: int = 0  # the program's gets that returned a connection (not the probe's)

    @property
    def failed(self) -> bool:
        """The run did not end well: a violation, or no verdict."""
        return self.kind is not None

    @property
    def no_verdict(self) -> bool:
        return self.kind in NO_VERDICT

    @property
    def token(self) -> str:
        return make_token(self.target, self.program, self.maxsize, self.block, self.choices,
                          self.get_timeout, self.budget)

    def report(self) -> str:
        return format_failure(self)


def run_controlled(target: Target, program: Program, maxsize: int, block: bool,
                   chooser: Chooser, budget: int = BUDGET, stall: float = STALL,
                   get_timeout: float = GET_TIMEOUT) -> ControlledRun:
    """One run of ``program`` on a fresh pool, every switch decided by ``chooser``.

    The pool is built and the prefix played on thread 0; then the prefix's connections are
    dealt to the branches in turn, and the branches run on threads 1, 2, ... With
    ``block``, every get_conn waits ``get_timeout`` virtual seconds at most. Then the
    checker's probe (thread -1, alone) returns what is still held, asks a blocking pool
    for ``maxsize`` connections, closes the pool and counts what is left open; every
    invariant the order of events can show is judged (``judges.judge_order``). An asyncio
    pool's run is the event loop's (``poolcheck.run.aio``).
    """
    if target.asynchronous:
        from poolcheck.run import aio  # it builds on this module

        return aio.run_async(target, program, maxsize, block, chooser, budget, get_timeout)
    recorder = _StepRecorder()
    factory = RecordingFactory(recorder)
    files = pool_files(target.cls)
    calls = len(program.prefix) + sum(len(b) for b in program.branches)
    sched = Scheduler(chooser, files, budget, lambda t: recorder.ops.get(t, ""), stall,
                      horizon=100.0 + 10 * get_timeout * (calls + maxsize + 2))
    timeout = get_timeout if block else None
    prefix = _Lane(0, None, [], recorder, factory, random.Random(0))
    prefix.can_close = target.has_close
    lanes: list[_Lane] = []
    facts = RoundResult(RoundSpec(0, len(program.branches), calls, maxsize, block, False),
                        recorder.log, {}, has_close=target.has_close)

    def build_and_prefix() -> None:
        prefix.pool = target.make(maxsize, block, None, factory)
        prefix.play(program.prefix, timeout, None, frozenset())

    def ok() -> bool:
        return sched.outcome is None and not sched.crashes

    collecting = gc.isenabled()
    gc.disable()  # a collection would run finalizers at points no schedule decides
    try:
        with substituted(target.cls, files, _project(target.cls)):
            sched.run([(0, build_and_prefix)])
            if ok() and program.branches:
                lanes = [_Lane(i, prefix.pool, [], recorder, factory, random.Random(i))
                         for i in range(1, len(program.branches) + 1)]
                for lane in lanes:
                    lane.can_close = target.has_close
                for i, conn in enumerate(prefix.held):
                    lanes[i % len(lanes)].held.append(conn)
                prefix.held = []
                sched.run([(lane.index, _player(lane, ops, timeout))
                           for lane, ops in zip(lanes, program.branches, strict=True)])
            if ok():
                probe = _Lane(PROBE, prefix.pool, [], recorder, factory, random.Random(0))
                probe.held = [c for lane in (prefix, *lanes) for c in lane.held]
                sched.run([(PROBE, lambda: _probe(probe, facts, factory, timeout))])
    finally:
        if collecting:
            gc.enable()
    with recorder.lock:
        log = recorder.log
        if sched.outcome is not None:
            _unwind_aborted(log.calls)
        settle_kept(log)
        history = history_of_log(log, maxsize, block)
    run = ControlledRun(target, program, maxsize, block,
                        [k for _, k, _ in sched.decisions], list(sched.decisions),
                        list(sched.trail), sched.steps, sched.now - CLOCK_START, get_timeout,
                        history, budget=budget, diverged=getattr(chooser, "diverged", False))
    return give_verdict(run, sched.outcome, sched.crashes, facts)


def give_verdict(run: ControlledRun, outcome: tuple[str, str] | None,
                 crashes: Sequence[tuple[int, BaseException]],
                 facts: RoundResult) -> ControlledRun:
    """The run's kind and message: the scheduler's outcome (a deadlock, a livelock, ...),
    else a crash, else what the judges find in the facts (``judge_order``)."""
    log = facts.log
    maxsize, block = facts.spec.maxsize, facts.spec.block
    run.handed_out = log.handed_out
    if outcome is not None:
        run.kind, run.message = outcome
        if run.kind == "deadlock":
            run.kind, run.message, run.cause = _deadlock(log.calls, maxsize, block,
                                                         run.message)
        interrupted = interrupted_by(log)
        if interrupted and run.kind is not None and run.kind not in NO_VERDICT:
            run.underlying = {str(_KINDS.get(run.kind, run.kind))}
            run.kind, run.message = "interrupt-safe", f"after {interrupted}: {run.message}"
            run.cause = None  # the interrupt explains it (underlying: what it broke)
    elif crashes:
        thread, exc = crashes[0]
        where = {0: "building the pool", PROBE: "the final probe"}.get(thread, "the run")
        if scheduler_fault(exc):
            run.kind = "internal"
            run.message = (f"thread {thread}: poolcheck's own scheduler failed in {where} "
                           f"({type(exc).__name__}: {exc}): a fault of poolcheck's, not the "
                           "pool's (a primitive the pool mixes with ones made elsewhere?)")
        else:
            run.kind = "crash"
            run.message = f"thread {thread}: {where} raised {type(exc).__name__}: {exc}"
    else:
        run.facts = facts
        run.findings = judge_order(facts)
        run.underlying = {str(f.underlying) for f in run.findings if f.underlying is not None}
        lin = next((f for f in run.findings if f.invariant == Invariant.LINEARIZABLE), None)
        if lin is not None and lin.evidence is not None:
            run.result = lin.evidence[1]
        if run.findings:
            first = run.findings[0]
            if first.invariant == Invariant.LINEARIZABLE:
                run.kind, run.message = "linearizable", "the history is not linearizable"
            else:
                run.kind = "errors" if first.invariant == Invariant.ERRORS else str(
                    first.invariant)
                run.message = first.message
    if run.target.asynchronous and run.kind == "interrupt-safe":
        run.cause = Cause.CANCELLED  # the only interrupt an event loop delivers
    elif run.target.asynchronous and run.kind == "linearizable":
        run.cause = Cause.ACROSS_AWAIT
    return run


PROBE = -1  # the checker's probe: its calls are recorded as thread -1's


class _Lane(_ParallelLane):
    """A lane of a controlled program. After an "interrupt" operation, its next get_conn
    may be interrupted (``WaitInterrupted``) at any wait inside it, woken or not: where
    CPython raises a signal handler's exception in a blocked thread, and where gevent and
    eventlet raise their Timeout. The exception counts as the factory's (it may come
    through get_conn), and a get it ended changed nothing, if the pool is interrupt-safe."""

    def _get(self, timeout: float | None) -> None:
        if not self.interrupt_next:
            super()._get(timeout)
            return
        self.interrupt_next = False
        exc = WaitInterrupted(f"thread {self.index} interrupted while it waited in get_conn "
                              "(delivered by poolcheck)")
        self.factory.raised.append(exc)
        coop.arm_interrupt(exc)
        try:
            super()._get(timeout)
        finally:
            coop.arm_interrupt(None)


def _deadlock(calls: list[CallRecord], maxsize: int, block: bool,
              message: str) -> tuple[str | None, str, Cause | None]:
    """Whose deadlock: the pool's, or the program's own? (``calls`` unwound: the ones
    the stop cut short are pending)

    A get_conn(timeout=None) on a blocking pool may wait for ever only while callers hold
    every slot and none will give one back (the program is at fault, not the pool), and
    never once close() has returned: then it must raise ClosedPoolError. Any other thread
    stuck (in a put_conn, a close(), a timed get) is the pool's deadlock."""
    pending = [c for c in calls if c.ret is None]
    # held by callers: handed out and not given back (the threads a stop unwinds run on a
    # little, so their lists of what they hold are no witness; the log is)
    held = sum(1 for g in calls if g.op == "get" and g.outcome == "ok" and g.ret is not None
               and not any(c.op in ("put", "discard") and c.conn == g.conn and c.call > g.ret
                           for c in calls))
    if not (block and pending and all(c.op == "get" and c.timeout is None for c in pending)):
        return "deadlock", message, None
    if any(c.op == "close" and c.ret is not None for c in calls):
        return "closed", ("close() returned, yet get_conn(timeout=None) still waits: close() "
                          "must wake every waiter with ClosedPoolError\n" + message), \
            Cause.CLOSE_WOKE_NOBODY
    if held >= maxsize:
        return None, ("the program waits for ever by itself: callers hold all "
                      f"{maxsize} connections and give none back"), None
    return "deadlock", (f"get_conn(timeout=None) waits for ever while callers hold only {held} "
                        f"of maxsize={maxsize} connections: a freed slot or a returned "
                        "connection did not reach it (a lost wake-up, or a lost slot)\n"
                        + message), Cause.LOST_WAKEUP


def _probe(probe: _Lane, facts: RoundResult, factory: RecordingFactory,
           timeout: float | None) -> None:
    """After the program, alone: the state the pool was left in (as a stress round's
    final probe, without its timed wake-up probes)."""
    factory.fail_next = 0  # an armed failure nobody reached would answer for the pool
    maxsize, block = facts.spec.maxsize, facts.spec.block
    probe._return_all(1.0)
    closed = any(c.op == "close" for c in facts.log.calls)
    if block and not closed:
        for _ in range(maxsize):
            probe._get(timeout)
        probe_got(facts, len(probe.held))
        probe._return_all(1.0)
    if not facts.has_close:
        return
    if not closed:
        probe._close(None)
    probe._get(0.0)
    if not probe_refused(facts):
        probe._return_all(1.0)
    facts.left_open = sorted(c.id for c in factory.open_connections())


# What the final probe saw, for a thread's probe (``_probe``) or a task's (``aio._probe``).

def probe_got(facts: RoundResult, got: int) -> None:
    """With everything returned, the probe's gets held ``got`` connections at once."""
    maxsize = facts.spec.maxsize
    facts.capacity_intact = got == maxsize
    if got < maxsize:
        facts.probe_empty = (f"with every connection returned, the pool handed out only "
                             f"{got} of maxsize={maxsize} connections at once")


def probe_refused(facts: RoundResult) -> bool:
    """Did the probe's last call, a get_conn on the closed pool, raise ClosedPoolError?"""
    last = facts.log.calls[-1]
    if last.outcome != "ClosedPoolError":
        facts.closed_get = f"get_conn on the closed pool gave {last.outcome}" + (
            f" #{last.conn}" if last.conn else "")
        return False
    return True


def _without_interrupts(program: Program) -> Program:
    """The program without its interrupts and the calls they would interrupt (an
    interrupted call should have had no effect): what the pool does without them."""
    def lane(ops: tuple[str, ...]) -> tuple[str, ...]:
        kept: list[str] = []
        skip = False
        for op in ops:
            if op == "interrupt":
                skip = True
            elif skip and op in ("get", "wait"):
                skip = False  # the call it would interrupt
            else:
                kept.append(op)
        return tuple(kept)

    return Program(lane(program.prefix),
                   tuple(b for b in map(lane, program.branches) if b))


def _breaks(target: Target, program: Program, maxsize: int, block: bool) -> set[str]:
    """What ``program`` breaks under a random walk and a 2-preemption bounded search (200
    runs each): for an interrupted run's program without its interrupts."""
    broken: set[str] = set()

    def seen(run: ControlledRun) -> None:
        broken.update(str(i) for i in invariants_of(run))
        if run.no_verdict:
            broken.add(run.kind or "")

    for strategy in ("random", "bounded"):
        explore(target, program, maxsize, block, strategy=strategy, seed=7, runs=200,
                seconds=60.0, on_run=seen, wanted=lambda run: False)
    return broken


@functools.lru_cache(maxsize=16)
def _project(cls: type) -> tuple[Any, ...]:
    return tuple(coop.project_modules(cls))


def _player(lane: _Lane, ops: tuple[str, ...], timeout: float | None) -> Callable[[], None]:
    return lambda: lane.play(ops, timeout, None, frozenset())


def _unwind_aborted(calls: list[CallRecord]) -> None:
    """A stopped run: calls cut short by the stop are pending, calls begun after it never
    happened (a thread unwinding may have tried its next operations)."""
    cut = [c for c in calls if c.outcome == ABORTED]
    first = min((c.ret for c in cut if c.ret is not None), default=None)
    for c in cut:
        c.ret, c.outcome, c.error, c.kept = None, "pending", None, None
    if first is not None:
        calls[:] = [c for c in calls if c.call < first]


# -- searches --------------------------------------------------------------------------------


@dataclass
class Exploration:
    """What a search did: the first failure (if any), runs made, seconds spent."""

    strategy: str
    failure: ControlledRun | None = None
    runs: int = 0
    seconds: float = 0.0
    complete: bool = False  # bounded search: every schedule within the bound was run
    runs_log: list[ControlledRun] = field(default_factory=list, repr=False)


def explore(target: Target, program: Program, maxsize: int, block: bool, *,
            strategy: str = "random", seed: int = 0, runs: int = 1000,
            seconds: float = 10.0, depth: int = 3, preemptions: int = 2,
            budget: int = BUDGET, get_timeout: float = GET_TIMEOUT,
            on_run: Callable[[ControlledRun], None] | None = None,
            wanted: Callable[[ControlledRun], bool] | None = None,
            search: _Bounded | None = None,
            clock: Callable[[], float] = time.monotonic) -> Exploration:
    """Run ``program`` under ``strategy`` (random | pct | bounded) until a failure
    (``wanted`` says which count: by default any), ``runs`` runs or ``seconds`` have
    passed; the bounded search also ends when it is complete (``search``: go on with
    that one where it stopped). ``on_run`` sees every run
    (the grader judges its facts again); ``seconds`` are measured on ``clock``."""
    start = clock()
    found = Exploration(strategy)
    schedules = (search or _Bounded(preemptions)) if strategy == "bounded" else None
    steps_seen = 50
    rng = random.Random(seed)
    while found.runs < runs and clock() - start < seconds:
        chooser: Chooser
        if strategy == "random":
            chooser = RandomWalk(rng.getrandbits(64))
        elif strategy == "pct":
            chooser = PCT(rng.getrandbits(64), depth, steps_seen)
        elif strategy == "bounded":
            assert schedules is not None
            prefix = schedules.next()
            if prefix is None:
                found.complete = True
                break
            chooser = Replay(prefix)
        else:
            raise ValueError(f"unknown strategy {strategy!r} (random, pct or bounded)")
        run = run_controlled(target, program, maxsize, block, chooser, budget,
                             get_timeout=get_timeout)
        if on_run is not None:
            on_run(run)
        found.runs += 1
        steps_seen = max(steps_seen, run.steps)
        if schedules is not None:
            schedules.feed(run.decisions)
        if run.failed and (wanted is None or run.no_verdict or wanted(run)):
            found.failure = run
            break
    found.seconds = clock() - start
    return found


class _Bounded:
    """Schedules (choice prefixes) with at most ``k`` preemptions, depth first.

    Stateless search: each run's decisions are fed back; the next schedule changes the
    deepest decision that still has an untried option within the bound. A preemption is
    taking anything but option 0 while the current thread could go on.
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self.pending: list[int] | None = []

    def next(self) -> list[int] | None:
        schedule, self.pending = self.pending, None
        return schedule

    def feed(self, decisions: list[tuple[int, int, bool]]) -> None:
        self.pending = _next_schedule(decisions, self.k)


def _next_schedule(decisions: list[tuple[int, int, bool]], k: int) -> list[int] | None:
    used = [0]
    for _, chosen, can_go_on in decisions:
        used.append(used[-1] + (1 if can_go_on and chosen else 0))
    for i in range(len(decisions) - 1, -1, -1):
        n, chosen, can_go_on = decisions[i]
        if chosen + 1 >= n:
            continue
        if can_go_on and used[i] + 1 > k:
            continue
        return [c for _, c, _ in decisions[:i]] + [chosen + 1]
    return None


def search_hypothesis(target: Target, maxsize: int, block: bool, *, seed: int = 0,
                      examples: int = 200, seconds: float = 20.0,
                      shrink_seconds: float = 20.0,
                      on_run: Callable[[ControlledRun], None] | None = None,
                      wanted: Callable[[ControlledRun], bool] | None = None,
                      interrupts: bool = False,
                      clock: Callable[[], float] = time.monotonic) -> ControlledRun | None:
    """Hypothesis draws the program and the schedule; the smallest failure seen is returned,
    its preemptions then minimized (``minimize``).

    The schedule is a list of small integers, each taken modulo the options at a decision
    (0: the current thread goes on), then a random walk from a drawn seed once the list
    runs out: decisions are made inside the managed threads, where Hypothesis cannot draw,
    and a race often lies past the first few decisions. Shrinking removes operations and
    explicit choices; ``minimize`` then removes the preemptions the walk made needlessly.
    """
    config = settings(max_examples=examples, deadline=None, database=None,
                      report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                      phases=[Phase.generate, Phase.shrink], verbosity=Verbosity.quiet,
                      print_blob=False)
    until = clock() + seconds
    best: list[ControlledRun] = []
    failed_at: list[float] = []
    stuck: list[ControlledRun] = []  # a run with no verdict: the pool cannot be driven

    @hypothesis_seed(seed)
    @config
    @given(programs(interrupts), st.lists(st.integers(0, LANES), max_size=50),
           st.integers(0, 2**32 - 1))
    def test(program: Program, choices: list[int], walk: int) -> None:
        if stuck or (not failed_at and clock() > until):
            raise _Stop  # Hypothesis shrinks this "failure" in a few instant calls
        if failed_at and clock() > failed_at[0] + shrink_seconds:
            return
        run = run_controlled(target, program, maxsize, block, Drawn(choices, walk))
        if on_run is not None:
            on_run(run)
        if run.no_verdict:
            stuck.append(run)
            raise _Stop
        if run.failed and (wanted is None or wanted(run)):
            if not failed_at:
                failed_at.append(clock())
            if not best or _size(run) < _size(best[0]):
                best[:] = [run]
            raise _Failed

    try:
        with with_reporter(lambda text: None):
            test()
    except (_Failed, _Stop, Flaky):
        pass
    except BaseException as exc:
        if not any(isinstance(e, (_Failed, _Stop, Flaky))
                   for e in getattr(exc, "exceptions", ())):
            raise
    if stuck:
        return stuck[0]
    return minimize(best[0], seconds=shrink_seconds) if best else None


def minimize(run: ControlledRun, attempts: int = 400, seconds: float = 20.0) -> ControlledRun:
    """The same failure with fewer preemptions: greedily set each choice to 0 (the current
    thread goes on), keeping every change after which the run still fails the same way."""
    if run.no_verdict:
        return run

    def simpler(best: ControlledRun) -> Iterator[tuple[ControlledRun, list[int]]]:
        for i in reversed(range(len(best.choices))):  # the last switches first
            if best.choices[i]:
                yield best, [*best.choices[:i], 0, *best.choices[i + 1:]]

    def fails(candidate: tuple[ControlledRun, list[int]]) -> ControlledRun | None:
        best, choices = candidate
        again = run_controlled(best.target, best.program, best.maxsize, best.block,
                               Replay(choices), best.budget, get_timeout=best.get_timeout)
        same = again.kind == best.kind and _preemptions(again) <= _preemptions(best)
        return again if same else None

    return shrink_greedily(run, simpler, fails, time.monotonic() + seconds, attempts)


def _preemptions(run: ControlledRun) -> int:
    return sum(1 for _, k, go_on in run.decisions if go_on and k)


class _Failed(AssertionError):
    pass


class _Stop(Exception):
    """The time for drawing is over."""


def _size(run: ControlledRun) -> tuple[tuple[int, int, int], int, int]:
    return (run.program.size, _preemptions(run), run.steps)


# -- replay tokens ---------------------------------------------------------------------------


def make_token(target: Target, program: Program, maxsize: int, block: bool,
               choices: Sequence[int], get_timeout: float = GET_TIMEOUT,
               budget: int = BUDGET) -> str:
    data: dict[str, Any] = {
        "target": target.spec, "adapter": target.adapter, "maxsize": maxsize,
        "block": block, "timeout": get_timeout, "prefix": list(program.prefix),
        "branches": [list(b) for b in program.branches], "choices": _trimmed(choices)}
    if budget != BUDGET:
        data["budget"] = budget
    packed = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(packed).decode().rstrip("=")


def _trimmed(choices: Sequence[int]) -> list[int]:
    """Without trailing zeros: a replay takes option 0 once its choices run out."""
    out = list(choices)
    while out and out[-1] == 0:
        out.pop()
    return out


def read_token(token: str) -> dict[str, Any]:
    if not token.startswith(TOKEN_PREFIX):
        raise TokenError(f"not a replay token (it should start with {TOKEN_PREFIX!r})")
    body = token[len(TOKEN_PREFIX):].strip()
    try:
        data = json.loads(zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))
    except (binascii.Error, zlib.error, ValueError) as exc:
        raise TokenError(f"replay token is damaged ({exc})") from None
    def ops(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(op, str) and op in CONTROLLED_OPS
                                               for op in value)

    ok = (isinstance(data, dict) and isinstance(data.get("target"), str)
          and isinstance(data.get("adapter"), str)
          and isinstance(data.get("maxsize"), int) and data["maxsize"] >= 1
          and isinstance(data.get("block"), bool)
          and isinstance(data.get("timeout", GET_TIMEOUT), (int, float))
          and data.get("timeout", GET_TIMEOUT) >= 0
          and ops(data.get("prefix"))
          and isinstance(data.get("branches"), list) and all(map(ops, data["branches"]))
          and isinstance(data.get("choices"), list)
          and all(isinstance(c, int) and c >= 0 for c in data["choices"])
          and isinstance(data.get("budget", BUDGET), int) and data.get("budget", BUDGET) > 0)
    if not ok:
        raise TokenError("replay token is damaged (its fields do not describe a run)")
    return dict(data)


def replay(token: str, target: Target | None = None) -> ControlledRun:
    """Re-run exactly the schedule in ``token`` (loading its target unless given)."""
    data = read_token(token)
    if target is None:
        target = load(data["target"], data["adapter"])
    program = Program(tuple(data["prefix"]), tuple(tuple(b) for b in data["branches"]))
    return run_controlled(target, program, data["maxsize"], data["block"],
                          Replay(data["choices"]), data.get("budget", BUDGET),
                          get_timeout=float(data.get("timeout", GET_TIMEOUT)))


# -- reports ---------------------------------------------------------------------------------

_KINDS = {"deadlock": Invariant.DEADLOCK_FREE, "livelock": Invariant.DEADLOCK_FREE,
          "errors": Invariant.ERRORS, "crash": Invariant.ERRORS,
          "linearizable": Invariant.LINEARIZABLE}
# what a controlled run can show: one check for each
CONTROLLED_INVARIANTS = [Invariant.DEADLOCK_FREE, Invariant.ERRORS, Invariant.BOUND,
                         Invariant.EXCLUSIVE, Invariant.NO_LEAK, Invariant.CAPACITY,
                         Invariant.CLOSED, Invariant.LINEARIZABLE, Invariant.INTERRUPT_SAFE]
INVARIANTS = frozenset(CONTROLLED_INVARIANTS)
# the scheduler could not drive the pool: a real lock or socket blocked (hung), a thread the
# pool started used a primitive (unmanaged), the program ran past every budget (undecided)
# ... or poolcheck's own scheduler failed (internal): never the pool's failure
NO_VERDICT = frozenset({"hung", "unmanaged", "undecided", "internal"})
_COOP_FILE = os.path.abspath(coop.__file__)


def scheduler_fault(exc: BaseException) -> bool:
    """Did ``exc`` arise inside the cooperative primitives' own machinery, rather than
    where the pool called one? An assertion of the scheduler's, or an error raised by one
    cooperative primitive that another called (a Condition releasing its lock), is
    poolcheck's; one raised where the pool called a primitive mirrors what the real one
    would raise (releasing an unlocked lock) and is the pool's."""
    inside = 0  # frames in coop.py at the innermost end of the traceback
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        if os.path.abspath(frame.f_code.co_filename) != _COOP_FILE:
            break
        inside += 1
    return inside > 0 and (isinstance(exc, AssertionError) or inside > 1)


def invariant_of(run: ControlledRun) -> Invariant | None:
    """The invariant a failed run broke first (None: passed, or no verdict)."""
    if run.kind in _KINDS:
        return _KINDS[run.kind]
    return next((i for i in Invariant if i.value == run.kind), None)


def invariants_of(run: ControlledRun) -> set[Invariant]:
    """Every invariant a run broke: its first, and all its judges found."""
    first = invariant_of(run)
    return ({first} if first is not None else set()) | {f.invariant for f in run.findings}


def format_interleaving(run: ControlledRun, last: int = TRAIL_SHOWN) -> str:
    shown = run.trail[-last:]
    head = (f"interleaving (last {len(shown)} of {run.steps} switch points; "
            f"{_preemptions(run)} preemption(s), "
            f"{run.virtual_seconds:g} virtual s):")
    lines = [head, "  step    thread  where                          operation   at"]
    for p in shown:
        lines.append(f"  {p.step:<7} {p.thread:<7} {p.where:<30} {p.op or '-':<11} {p.what}")
    return "\n".join(lines)


def format_failure(run: ControlledRun, invariant: Invariant | None = None) -> str:
    """The report of a failed run, about ``invariant`` (default: the first it broke)."""
    if not run.failed:
        return f"no failure in this schedule ({run.steps} switch points)\n"
    invariant = invariant or invariant_of(run)
    finding = next((f for f in run.findings if f.invariant == invariant), None)
    kind = run.kind if invariant == invariant_of(run) or finding is None else str(invariant)
    parts = [f"controlled run failed: {invariant}" + ("" if kind == str(invariant) else
                                                      f" ({kind})"),
             f"maxsize={run.maxsize}, block={run.block}, program:\n{run.program.describe()}"]
    if invariant != Invariant.LINEARIZABLE:
        parts.append(finding.message if finding is not None else run.message)
    parts.append(format_interleaving(run))
    if invariant == Invariant.LINEARIZABLE and run.history is not None and \
            run.result is not None:
        parts.append(format_report(run.history, run.result).rstrip("\n"))
    parts.append(f"replay token: {run.token}\nreproduce: poolcheck replay {run.token}")
    return "\n\n".join(parts) + "\n"


# -- the `poolcheck replay TOKEN` command --------------------------------------------------------


def run_replay(token: str) -> int:
    """Replay ``token``: print the failure and return 1 if it reproduces, 0 if not, 2 if
    the token (or its target) cannot be used."""
    try:
        run = replay(token)
    except (TokenError, LoadError) as exc:
        print(f"poolcheck: error: {exc}", file=sys.stderr)
        return EXIT_BAD_TOKEN
    if run.failed and not run.no_verdict:
        print(format_failure(run), end="")
        return EXIT_REPRODUCED
    if run.no_verdict:
        print(f"the replay ended without a verdict ({run.kind}): {run.message}")
    elif run.diverged:
        print(f"the schedule does not fit this target any more ({run.steps} switch points, "
              "a recorded choice had no such option): the target has changed since the "
              "token was made")
    else:
        print(f"the schedule ran to the end without a failure ({run.steps} switch points): "
              "the failure depended on something outside the schedule")
    return EXIT_NOT_REPRODUCED


def add_replay_parser(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``replay`` on the ``poolcheck`` command's subparsers."""
    parser = subparsers.add_parser(
        "replay", help="re-run a controlled schedule from its replay token",
        description="Re-run exactly the interleaving a controlled-scheduler check found, "
                    "from the replay token its report printed. Exit status: 1 the failure "
                    "reproduces (the report is printed), 0 it does not, 2 bad token.")
    parser.add_argument("token", help="the replay token (pc1....)")
    parser.set_defaults(run=lambda args: run_replay(args.token))
    return parser


# -- a whole check ---------------------------------------------------------------------------

SMALL_PROGRAMS = [  # the classic windows, tried with every strategy before Hypothesis draws
    Program(("get", "get"), (("put",), ("put",))),  # two returns, one room
    Program((), (("get",), ("get",))),  # two makes, one slot
    Program(("get", "put"), (("get",), ("get",))),  # one idle connection, two gets
    Program(("get",), (("put",), ("get",))),
    Program(("get", "get"), (("put",), ("discard",))),
    Program(("fail",), (("get",), ("get",))),  # a failed connect among gets
    Program(("get",), (("put",), ("close",))),  # a return during close()
    Program(("get",), (("get", "put"), ("close",))),
    Program(("get", "get", "put"), (("put",), ("close",))),  # ... one with no room
    Program(("get",), (("discard",), ("wait",))),  # a freed slot must wake the waiter
    Program(("get",), (("put",), ("wait",))),  # ... and a returned connection
    Program(("get",), (("close",), ("wait",))),  # close() must wake the waiter
    Program((), (("get", "put"), ("get", "put"), ("close",))),
    Program(("get", "get"), (("put",), ("put",), ("get",), ("get",))),  # two returns, two waiters
]
INTERRUPT_PROGRAMS = [  # when interrupt-safe is asked for: a waiter interrupted ...
    Program(("get",), (("put",), ("interrupt", "wait"), ("wait",))),  # ... after its wake-up
    Program(("get",), (("discard",), ("interrupt", "wait"), ("wait",))),  # ... a freed slot's
    Program(("get",), (("interrupt", "wait"), ("put",))),  # ... and the pool after it
    Program((), (("interrupt", "get"), ("get",), ("close",))),
]


@dataclass
class CheckOutcome:
    failures: dict[Invariant, ControlledRun]  # the first (smallest) run breaking each
    runs: int
    seconds: float
    stuck: ControlledRun | None = None  # a run the scheduler could not drive: no verdict
    handed_out: int = 0  # connections the programs got, in all: none, and nothing was tested

    @property
    def failure(self) -> ControlledRun | None:
        """The one failure, or the run without a verdict (one check at a time)."""
        return self.stuck or next(iter(self.failures.values()), None)


class SearchClock:
    """The search's own time: the runs that judge a counterfactual (the program without
    its interrupts) are set aside, so every budget (search, shrinking) is the search's."""

    def __init__(self) -> None:
        self._aside = 0.0

    def now(self) -> float:
        return time.monotonic() - self._aside

    @contextmanager
    def aside(self) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self._aside += time.monotonic() - began


def check_target(target: Target, seed: int = 0, seconds: float = 10.0,
                 configs: Sequence[Configuration] = CONTROLLED_CONFIGURATIONS,
                 on_run: Callable[[ControlledRun], None] | None = None,
                 wanted: Sequence[Invariant] = (Invariant.LINEARIZABLE,),
                 shrink_seconds: float = 20.0) -> CheckOutcome:
    """The small programs under random walk, PCT and a 2-preemption bounded search, then
    Hypothesis-drawn programs, on each configuration, until a failure of every ``wanted``
    invariant, a run the scheduler cannot drive, or ``seconds`` (and ``shrink_seconds``
    more, shared by the failures' shrinking); ``on_run`` sees every run. A run that breaks
    only invariants not wanted does not stop the search."""
    start = time.monotonic()
    deadline, shrink_deadline = start + seconds, start + seconds + shrink_seconds
    configs = [c for c in configs if c[1] in target.modes]
    out = CheckOutcome({}, 0, 0.0)
    left = set(wanted)

    caused: dict[Program, set[str]] = {}
    clock = SearchClock()
    now = clock.now
    also = on_run

    def seen(run: ControlledRun) -> None:
        out.handed_out += run.handed_out
        if also is not None:
            also(run)

    on_run = seen

    def counts_for(run: ControlledRun) -> set[Invariant]:
        """What a run counts for: an interrupted run's failure counts for interrupt-safe
        only if it broke an invariant that its program without the interrupts breaks
        nowhere (else the bug does not need them: it is reported, under its own name, by
        the other checks; a pool with no closed state can still lose a slot to one)."""
        found = invariants_of(run)
        if Invariant.INTERRUPT_SAFE in found and run.program != _without_interrupts(run.program):
            plain = _without_interrupts(run.program)
            if plain not in caused:
                with clock.aside():
                    caused[plain] = _breaks(target, plain, run.maxsize, run.block)
            if not (run.underlying or {"?"}) - caused[plain]:
                found = found - {Invariant.INTERRUPT_SAFE}
        return found

    def wants(run: ControlledRun) -> bool:
        return bool(invariants_of(run) & left) and bool(counts_for(run) & left)

    def keep(found: ControlledRun, original: ControlledRun) -> None:
        for run in (found, original):
            counted = counts_for(run)
            for invariant in counted & left:
                out.failures[invariant] = run
            left.difference_update(counted)

    def shrunk(run: ControlledRun) -> ControlledRun:
        spare = min(20.0, shrink_deadline - now() - 1.0)
        return minimize(run, seconds=spare) if spare > 0 else run

    # breadth first, deepening: every small program, configuration and strategy gets a
    # few runs, then twice as many in the next round (random walk and PCT with fresh
    # seeds, each bounded search going on where it stopped), for two thirds of the time;
    # then Hypothesis draws programs
    # only a run with an interrupt can break interrupt-safe (whatever it breaks is named
    # so): those programs come after the others, which name a bug without interrupts first
    small = ((SMALL_PROGRAMS if left - {Invariant.INTERRUPT_SAFE} else [])
             + (INTERRUPT_PROGRAMS if Invariant.INTERRUPT_SAFE in left else []))
    slots = [(c, p, strategy) for c in configs for p in small
             for strategy in ("random", "pct", "bounded")
             if c[1] or p not in INTERRUPT_PROGRAMS]  # their waiters need a blocking pool
    searches = {i: _Bounded(2) for i, slot in enumerate(slots) if slot[2] == "bounded"}
    # interrupt-safe is the interrupt programs' alone, every other invariant the many plain
    # programs': while both are wanted, each family gets about the same number of runs
    interrupt_slots = sum(slot[1] in INTERRUPT_PROGRAMS for slot in slots)
    weight = max(1, (len(slots) - interrupt_slots) // max(1, interrupt_slots))
    until = start + seconds * 2 / 3
    rounds = 0
    while left and now() < until and slots:
        for i, ((maxsize, block), program, strategy) in enumerate(slots):
            if not left or now() >= until:
                break
            if i in searches and searches[i].pending is None:
                continue  # that bounded search is complete
            runs = SLOT_RUNS << min(rounds, 6)
            if program in INTERRUPT_PROGRAMS and Invariant.INTERRUPT_SAFE in left:
                runs *= weight
            found = explore(target, program, maxsize, block, strategy=strategy,
                            seed=seed * 1_000_003 + rounds, runs=runs,
                            seconds=until - now(), on_run=on_run, wanted=wants,
                            search=searches.get(i), clock=now)
            out.runs += found.runs
            if found.failure is not None and found.failure.no_verdict:
                out.stuck = found.failure
                out.seconds = time.monotonic() - start
                return out
            if found.failure is not None:
                keep(shrunk(found.failure), found.failure)
        rounds += 1
    share = (deadline - now()) / max(1, len(configs))
    for maxsize, block in configs:
        while left and now() < deadline:
            spare = max(0.1, min(share, deadline - now()))
            shrink = max(0.1, min(spare, (shrink_deadline - now()) / 2))
            best = search_hypothesis(target, maxsize, block, seed=seed, examples=100_000,
                                     seconds=spare, shrink_seconds=shrink, on_run=on_run,
                                     wanted=wants,
                                     interrupts=Invariant.INTERRUPT_SAFE in wanted, clock=now)
            if best is None:
                break
            if best.no_verdict:
                out.stuck = best
                break
            keep(best, best)
    out.seconds = time.monotonic() - start
    return out
