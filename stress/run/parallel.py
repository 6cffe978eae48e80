"""Parallel programs drawn by Hypothesis, run on real threads, judged for linearizability.

A program is a sequential prefix and up to four parallel branches of pool operations. It
is drawn as one list of (lane, operation) pairs, lane 0 being the prefix: Hypothesis
shrinks lists by dropping elements and integers towards 0, so a failing program shrinks
to fewer operations, fewer branches, and operations moved into the prefix, with no
shrinker of our own.

Preconditions hold in every interleaving because each lane only gives back what it holds:
a ``put`` or ``discard`` with nothing in hand does nothing, connections the prefix still
holds at its end are dealt to the branches in turn, and in block mode every ``get`` waits
only briefly (so a branch holding a connection cannot starve another for ever).

One run of a program records a contract history (section 5); ``linearize.check`` judges
it against the model. A race need not recur at once, so every program, shrink candidates
included, runs several times and fails at the first history that cannot be linearized.
What we saw fail is kept here rather than trusted to Hypothesis's final replay: the
smallest failing program observed is the report, with the history that proves it.
"""

from __future__ import annotations

import contextlib
import functools
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from poolcheck.judge import linearize
from poolcheck.judge.judges import history_of_log
from poolcheck.judge.linearize_report import format_report
from poolcheck.load.targets import Target
from poolcheck.observe.history import History
from poolcheck.observe.recording import ConnectFailed, Recorder, RecordingFactory
from poolcheck.observe.watchdog import Hung, Watchdog
from poolcheck.run.engine import _Worker, _yielding_tracer, pool_files, provoked_races, settle_kept
from poolcheck.run.shrink import shrink_greedily
from poolcheck.settings import LINEARIZE_BUDGET, PROGRAM_LIMIT

OPS = ("get", "put", "discard", "fail", "close")
LANES = 4  # parallel branches at most
MAX_OPS = 12  # operations in a program, prefix included
GET_TIMEOUT = 0.005  # block=True: how long a get waits before EmptyPoolError
YIELD_RATES = (0.1, 0.3, 0.6)  # per line of pool code; runs are short, so vary it widely
SHRINK_RUNS_FACTOR = 3
MINIMISE_RUNS = 200  # tries of a one-step-simpler program: a small race recurs rarely


@dataclass(frozen=True)
class Program:
    prefix: tuple[str, ...]
    branches: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, steps: list[tuple[int, str]]) -> Program:
        lanes: dict[int, list[str]] = {}
        for lane, op in steps:
            lanes.setdefault(lane, []).append(op)
        return cls(tuple(lanes.pop(0, [])),
                   tuple(tuple(lanes[lane]) for lane in sorted(lanes)))

    @property
    def size(self) -> tuple[int, int, int]:
        """Smaller is simpler: operations, then branches, then operations in branches."""
        in_branches = sum(len(b) for b in self.branches)
        return (len(self.prefix) + in_branches, len(self.branches), in_branches)

    def describe(self) -> str:
        lines = [f"  prefix (thread 0): {', '.join(self.prefix) or '(none)'}"]
        lines += [f"  branch (thread {i}): {', '.join(ops)}"
                  for i, ops in enumerate(self.branches, start=1)]
        return "\n".join(lines)


def programs() -> st.SearchStrategy[Program]:
    step = st.tuples(st.integers(0, LANES), st.sampled_from(OPS))
    return st.lists(step, min_size=1, max_size=MAX_OPS).map(Program.of)


@dataclass
class Run:
    history: History | None  # None: a call raised what the contract does not allow
    hung: bool = False


class _Lane(_Worker):
    """One thread of a program: the engine's recorded calls, driven by a list of ops."""

    can_close = True
    interrupt_next = False  # the next get_conn may be interrupted while it waits

    def play(self, ops: tuple[str, ...], timeout: float | None,
             start: threading.Barrier | None, files: frozenset[str]) -> None:
        if start is not None:
            try:
                start.wait()
            except threading.BrokenBarrierError:
                return
        if files:
            rng = random.Random(self.rng.random())
            sys.settrace(_yielding_tracer(files, rng, rng.choice(YIELD_RATES)))
        try:
            for op in ops:
                self._op(op, timeout)
        finally:
            sys.settrace(None)

    def _op(self, op: str, timeout: float | None) -> None:
        if op == "get":
            self._get(timeout)
        elif op == "wait":  # controlled programs only: get_conn(timeout=None)
            self._get(None)
        elif op == "interrupt":  # controlled programs only: see controlled._Lane
            self.interrupt_next = True
        elif op == "fail":
            self._fault(ConnectFailed)
        elif op == "close":
            if self.can_close:  # a pool without close(): the operation does nothing
                self._close(None)
        elif self.held:
            conn = self.held.pop()
            if op == "put":
                self._call("put", conn, lambda: self.pool.put_conn(conn))
            else:
                conn.close_as_caller()
                self._call("discard", conn, lambda: self.pool.put_conn(None))


def run_program(target: Target, program: Program, maxsize: int, block: bool, seed: int,
                watchdog: Watchdog) -> Run:
    """One run on a fresh pool: the prefix on thread 0, then the branches released together.

    Raises ``Hung`` if the pool's constructor does not return; a run whose threads do not
    finish within PROGRAM_LIMIT comes back with ``hung`` set and their calls pending.
    """
    recorder = Recorder()
    factory = RecordingFactory(recorder, seed=seed)
    pool = watchdog.call(lambda: target.make(maxsize, block, None, factory), PROGRAM_LIMIT,
                         "the pool's constructor")
    rng = random.Random(seed)
    timeout = GET_TIMEOUT if block else None
    files = pool_files(target.cls)
    deadline = time.monotonic() + PROGRAM_LIMIT
    prefix = _Lane(0, pool, [], recorder, factory, random.Random(rng.random()))
    lanes = [_Lane(i, pool, [], recorder, factory, random.Random(rng.random()))
             for i in range(1, len(program.branches) + 1)]
    for lane in (prefix, *lanes):
        lane.can_close = target.has_close
    hung = _run_threads([lambda: prefix.play(program.prefix, timeout, None, files)], deadline)
    if not hung and lanes:
        for i, conn in enumerate(prefix.held):  # what the prefix holds, dealt in turn
            lanes[i % len(lanes)].held.append(conn)
        start = threading.Barrier(len(lanes))
        with provoked_races():
            hung = _run_threads([
                functools.partial(lane.play, ops, timeout, start, files)
                for lane, ops in zip(lanes, program.branches, strict=True)], deadline)
    if hung and target.has_close:  # let stuck threads go, best effort and unrecorded
        threading.Thread(target=_quietly(pool.close), daemon=True).start()
    settle_kept(recorder.log)
    with recorder.lock:
        history = history_of_log(recorder.log, maxsize, block)
    return Run(history, hung)


def _run_threads(bodies: list[Callable[[], None]], deadline: float) -> bool:
    """Start one daemon thread per body; True if any is still running at the deadline."""
    threads = [threading.Thread(target=body, daemon=True, name=f"poolcheck-lane-{i}")
               for i, body in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return any(t.is_alive() for t in threads)


def _quietly(fn: Callable[[], object]) -> Callable[[], None]:
    def call() -> None:
        with contextlib.suppress(BaseException):
            fn()
    return call


# -- the Hypothesis search -----------------------------------------------------------------


@dataclass
class Failure:
    program: Program
    maxsize: int
    block: bool
    history: History
    result: linearize.Result
    run: int  # which run of the program failed (1-based)
    runs: int

    def report(self) -> str:
        tries = ("" if self.runs == 1 else
                 f"(failed on run {self.run} of up to {self.runs}; "
                 "a race need not recur every run)\n")
        return (f"maxsize={self.maxsize}, block={self.block}, program:\n"
                f"{self.program.describe()}\n{tries}\n"
                f"{format_report(self.history, self.result)}")


@dataclass
class Search:
    """What a parallel check learned: the smallest failure, runs made, a hang if any."""

    failure: Failure | None = None
    hang: str | None = None
    programs: int = 0
    runs: int = 0
    handed_out: int = 0  # successful get_conn calls
    failed_at: float | None = None  # time.monotonic() of the first failure
    on_history: Callable[[History], None] | None = None  # sees every history (--record)

    def saw(self, failure: Failure) -> None:
        if self.failed_at is None:
            self.failed_at = time.monotonic()
        if self.failure is None or failure.program.size < self.failure.program.size:
            self.failure = failure


class _NotLinearizable(AssertionError):
    pass


class _Stop(Exception):
    """The search cannot go on (the pool hangs): end it where it is."""


def search(target: Target, maxsize: int, block: bool, seed: int, examples: int,
           runs: int, until: float, shrink_seconds: float, found: Search,
           watchdog: Watchdog) -> None:
    """Hypothesis draws programs for one configuration; failures land in ``found``.

    ``until`` (a ``time.monotonic()`` value) ends the generation; once a failure is seen,
    shrinking may go on for ``shrink_seconds``, after which every candidate passes.
    """
    config = settings(max_examples=examples, deadline=None, database=None,
                      report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                      phases=[Phase.generate, Phase.shrink], verbosity=Verbosity.quiet,
                      print_blob=False)
    rng = random.Random(seed)

    @hypothesis_seed(seed)
    @config
    @given(programs())
    def test(program: Program) -> None:
        if found.hang is not None:
            raise _Stop
        if found.failed_at is None and time.monotonic() > until:
            raise _Stop  # Hypothesis shrinks this "failure" in a few instant calls
        if found.failed_at is not None and time.monotonic() > found.failed_at + shrink_seconds:
            return  # shrinking is over: a candidate that passes is never kept
        found.programs += 1
        # no race without two threads; a shrink candidate gets more tries than a new program
        repeats = 1 if len(program.branches) < 2 else runs * (1 if found.failed_at is None
                                                               else SHRINK_RUNS_FACTOR)
        for i in range(repeats):
            try:
                run = run_program(target, program, maxsize, block, rng.getrandbits(32),
                                  watchdog)
            except Hung as hung:
                found.hang = f"{hung}\n{hung.stack}"
                raise _Stop from None
            found.runs += 1
            if run.history is None:
                continue  # a call broke the contract's vocabulary: `errors` judges that
            found.handed_out += sum(e.op == "get" and e.outcome == "ok"
                                    for e in run.history.events)
            if found.on_history is not None:
                found.on_history(run.history)
            result = linearize.check(run.history, LINEARIZE_BUDGET)
            if result.verdict == linearize.NOT_LINEARIZABLE:
                found.saw(Failure(program, maxsize, block, run.history, result, i + 1,
                                  repeats))
                raise _NotLinearizable
            if run.hung:
                found.hang = (f"a run of this program did not finish within {PROGRAM_LIMIT:g} s "
                              f"(maxsize={maxsize}, block={block}):\n{program.describe()}")
                raise _Stop

    try:
        with with_reporter(lambda text: None):
            test()
    except (_NotLinearizable, _Stop, Flaky):
        pass
    except BaseException as exc:
        if not list(_ours(exc)):
            raise
    if found.failure is not None and found.hang is None:
        _minimise(target, maxsize, block, MINIMISE_RUNS, rng,
                  time.monotonic() + shrink_seconds, found, watchdog)


def smaller(program: Program) -> list[Program]:
    """One step simpler: an operation removed, or a branch's first operation moved to the
    end of the prefix (where it runs alone)."""
    def branches_with(b: int, rest: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        """Branch ``b`` replaced by ``rest``; dropped if ``rest`` is empty."""
        return program.branches[:b] + ((rest,) if rest else ()) + program.branches[b + 1:]

    found = []
    for b, ops in enumerate(program.branches):
        for j in range(len(ops)):
            found.append(Program(program.prefix, branches_with(b, ops[:j] + ops[j + 1:])))
    for j in range(len(program.prefix)):
        found.append(Program(program.prefix[:j] + program.prefix[j + 1:], program.branches))
    for b, ops in enumerate(program.branches):
        found.append(Program(program.prefix + ops[:1], branches_with(b, ops[1:])))
    return found


def _minimise(target: Target, maxsize: int, block: bool, runs: int, rng: random.Random,
              deadline: float, found: Search, watchdog: Watchdog) -> None:
    """Greedy shrinking after Hypothesis's, which gives up when a candidate's race does not
    recur in time: try each one-step-simpler program up to ``runs`` times, keep the first
    that fails, until none does or the deadline passes."""
    assert found.failure is not None

    def simpler(program: Program) -> list[Program]:
        return [c for c in smaller(program) if len(c.branches) >= 2]  # a race needs two

    def fails(program: Program) -> Program | None:
        return program if _fails(target, program, maxsize, block, runs, rng, deadline,
                                 found, watchdog) else None

    shrink_greedily(found.failure.program, simpler, fails, deadline)


def _fails(target: Target, program: Program, maxsize: int, block: bool, runs: int,
           rng: random.Random, deadline: float, found: Search, watchdog: Watchdog) -> bool:
    for i in range(runs):
        if time.monotonic() > deadline:
            return False
        try:
            run = run_program(target, program, maxsize, block, rng.getrandbits(32), watchdog)
        except Hung:
            return False
        found.runs += 1
        if run.hung or run.history is None:
            return False
        if found.on_history is not None:
            found.on_history(run.history)
        result = linearize.check(run.history, LINEARIZE_BUDGET)
        if result.verdict == linearize.NOT_LINEARIZABLE:
            found.saw(Failure(program, maxsize, block, run.history, result, i + 1, runs))
            return True
    return False


def _ours(exc: BaseException) -> Iterator[BaseException]:
    """Our own signals inside an exception group Hypothesis may wrap them in."""
    if isinstance(exc, (_NotLinearizable, _Stop, Flaky)):
        yield exc
    for inner in getattr(exc, "exceptions", ()):
        yield from _ours(inner)
