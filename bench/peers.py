"""frontrun against the catalogue's threads-only buggy pools: found in how many seeds, how fast.

The peer's side of "The controlled checks against frontrun" (bench/README.md). For each
pool, a hand-written frontrun test: the small programs poolcheck's controlled check tries
first (``SMALL_PROGRAMS``, copied below as plain tuples) on the same four configurations,
each run by ``frontrun.explore`` on a fresh pool with a counting connection factory, and
an invariant written by hand from docs/CONTRACT.md. The search mirrors poolcheck's: for
half of --seconds, round after round over the 48 (configuration, program) pairs, a few
random schedules each (frontrun's ``strategy="random"``, seeded); then frontrun's
strongest systematic mode on each pair (DPOR, no preemption bound, wakeup-tree order
``bit-reversal:<seed>``), an equal share of the rest each. Both on frontrun's virtual
clock, so timeouts cost no wall time. The first failure stops the seed; frontrun replays
its schedule three times (``reproduce_on_failure=3``).

    frontrun python bench/peers.py [--seeds 5] [--seconds 10] [--only POOL] [-v]

``frontrun`` is the CLI of ``pip install frontrun==0.7.0`` (not a dependency of
poolcheck); ``frontrun.explore`` refuses to run outside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontrun

ROOT = Path(__file__).resolve().parent.parent

THREADS_ONLY = ["count_outside_lock", "peek_idle_outside_lock", "close_races_put",
                "lost_wakeup", "semaphore_permit_not_conn", "close_wakes_nobody"]

# stress/run/controlled.py SMALL_PROGRAMS: (prefix on one thread, then one tuple of ops
# per thread); what the prefix holds is dealt to the threads in turn
SMALL_PROGRAMS: list[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = [
    (("get", "get"), (("put",), ("put",))),
    ((), (("get",), ("get",))),
    (("get", "put"), (("get",), ("get",))),
    (("get",), (("put",), ("get",))),
    (("get", "get"), (("put",), ("discard",))),
    (("fail",), (("get",), ("get",))),
    (("get",), (("put",), ("close",))),
    (("get",), (("get", "put"), ("close",))),
    (("get",), (("discard",), ("wait",))),
    (("get",), (("put",), ("wait",))),
    (("get",), (("close",), ("wait",))),
    ((), (("get", "put"), ("get", "put"), ("close",))),
]
CONFIGURATIONS = [(1, False), (2, False), (1, True), (2, True)]  # (maxsize, block)
GET_TIMEOUT = 1.0  # block=True: get_conn's timeout, in (virtual) seconds, as poolcheck's
# "wait" is get_conn(timeout=None) in poolcheck's programs, an exact deadlock when nothing
# wakes it. frontrun reports lock cycles, not lost notifications: when the other threads
# have finished, its Condition.wait(None) returns after a 1 s real-time poll, as if woken
# spuriously, and the pool's loop goes on. So here "wait" is a long bounded wait on the
# virtual clock, and a waiter served (or told the pool is closed) more than LATE virtual
# seconds after the return (or close()) that should have woken it is a failure.
WAIT_TIMEOUT = 10.0
LATE = 0.5
SLOT_RUNS = 4  # random schedules of one pair per round, as poolcheck's controlled check


class ConnectFailed(Exception):
    """The factory's planned failure ("fail")."""


class Conn:
    """A counting connection: who holds it, and whether it is closed."""

    def __init__(self, n: int, factory: Factory) -> None:
        self.n, self.factory, self.closed, self.holder = n, factory, False, None

    def close(self) -> None:
        with self.factory.lock:
            if not self.closed:
                self.closed = True
                self.factory.open -= 1


class Factory:
    """A simple counting connection factory: how many exist, the most at once."""

    def __init__(self) -> None:
        self.made: list[Conn] = []
        self.open = 0
        self.most_open = 0
        self.fail_next = False
        # the bookkeeping of the test itself must not race: frontrun preempts it too
        self.lock = threading.Lock()

    def __call__(self) -> Conn:
        with self.lock:
            if self.fail_next:
                self.fail_next = False
                raise ConnectFailed
            conn = Conn(len(self.made), self)
            self.made.append(conn)
            self.open += 1
            self.most_open = max(self.most_open, self.open)
            return conn


@dataclass
class State:
    pool: Any
    factory: Factory
    maxsize: int
    block: bool
    held: list[list[Conn]]  # per thread
    closed: bool = False  # close() has returned
    problems: list[str] = field(default_factory=list)
    busy: int = 0  # connections held, or gets/puts in progress (may hold one)
    empty_calls: list[list[int]] = field(default_factory=list)  # [most others busy seen]
    freed_at: float = -1.0  # (virtual) time the last return, discard or failed connect ended
    closed_at: float | None = None  # (virtual) time close() returned
    lock: Any = field(default_factory=lambda: threading.Lock())  # looked up late: patched

    def count(self, delta: int, watch: list[int] | None = None) -> None:
        """busy += delta; a get's own watch starts, or ends, with it."""
        with self.lock:
            self.busy += delta
            if watch is not None and delta > 0:
                watch.append(self.busy - 1)
                self.empty_calls.append(watch)
            elif watch is not None:
                self.empty_calls.remove(watch)
            for seen in self.empty_calls:
                seen[0] = max(seen[0], self.busy - 1)


def _get(state: State, me: int, timeout: float | None) -> None:
    closed_before = state.closed
    called = time.monotonic()  # frontrun's virtual clock inside a worker
    watch: list[int] = []  # the most connections out to others during this call
    state.count(1, watch)
    try:
        conn = state.pool.get_conn(timeout)
    except ConnectFailed:
        state.count(-1, watch)
        state.freed_at = time.monotonic()
        return
    except Exception as e:
        state.count(-1, watch)
        name = type(e).__name__
        late = time.monotonic() - LATE
        if (name == "ClosedPoolError" and state.closed_at is not None
                and called <= state.closed_at <= late):
            state.problems.append("closed: a waiting get_conn was not woken by close()")
        if name == "EmptyPoolError" and watch[0] < state.maxsize:
            # linearizable (by hand): EmptyPoolError only if at some moment of the call
            # maxsize connections were out (held, or maybe held by a call in progress)
            state.problems.append(f"linearizable: EmptyPoolError with at most {watch[0]} "
                                  f"of {state.maxsize} out")
        elif name == "ClosedPoolError" or (name == "EmptyPoolError" and state.block):
            pass
        else:
            state.problems.append(f"errors: get_conn raised {name}")
        return
    with state.lock:
        state.empty_calls.remove(watch)
    if closed_before:
        state.problems.append("closed: get_conn after close() returned a connection")
    if called <= state.freed_at <= time.monotonic() - LATE:
        state.problems.append("wakeup: a waiting get_conn was served long after a return")
    with state.lock:
        if conn.holder is not None:
            state.problems.append(f"exclusive: #{conn.n} handed to {me} while {conn.holder} "
                                  "holds it")
        if conn.closed:
            state.problems.append(f"exclusive: #{conn.n} handed out closed")
        conn.holder = me
    state.held[me].append(conn)
    if state.block and state.factory.most_open > state.maxsize:
        state.problems.append(f"bound: {state.factory.most_open} connections open, "
                              f"maxsize {state.maxsize}")


def _give_back(state: State, me: int, discard: bool) -> None:
    if not state.held[me]:
        return
    conn = state.held[me].pop()
    with state.lock:
        conn.holder = None
    if discard:
        conn.close()
        state.pool.put_conn(None)
    else:
        state.pool.put_conn(conn)
    state.count(-1)
    state.freed_at = time.monotonic()


def _op(state: State, me: int, op: str, alone: bool = False) -> None:
    # alone (the prefix, in setup, outside frontrun's scheduler, where a timed wait never
    # ends): nobody can return a connection meanwhile, so a get that would wait times out
    # at once, as poolcheck's prefix does after its timeout
    timeout = 0.0 if alone else GET_TIMEOUT
    if op == "get":
        _get(state, me, timeout if state.block else None)
    elif op == "wait":  # get_conn(timeout=None) under frontrun: see WAIT_TIMEOUT
        _get(state, me, WAIT_TIMEOUT)
    elif op == "fail":
        state.factory.fail_next = True
        _get(state, me, timeout if state.block else None)
    elif op == "close":
        state.pool.close()
        state.closed = True
        state.closed_at = time.monotonic()
    else:
        _give_back(state, me, discard=op == "discard")


SLOT: list[Any] = []  # the configuration, program and strategy of the last failure
PROBLEMS: list[str] = []  # the problems of the last failing execution, for the report


def invariant(state: State) -> bool:
    """After every thread finished: the problems seen on the way, then bound and no-leak."""
    idle_open = [c for c in state.factory.made if not c.closed and c.holder is None]
    if len(idle_open) > state.maxsize:
        state.problems.append(f"bound: {len(idle_open)} idle, maxsize {state.maxsize}")
    if state.closed:
        for me, conns in enumerate(state.held):  # return what is still held
            while conns:
                _give_back(state, me, discard=False)
        left = [c.n for c in state.factory.made if not c.closed]
        if left:
            state.problems.append(f"no-leak: after close() and every return {left} open")
    if state.problems:
        PROBLEMS[:] = state.problems
    return not state.problems


def load_pool(name: str) -> type:
    spec = importlib.util.spec_from_file_location(f"buggy_{name}",
                                                  ROOT / "examples" / "buggy" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Pool


def test(pool_cls: type, maxsize: int, block: bool,
         program: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], seconds: float,
         seed: int, dpor: bool, attempts: int = 1_000_000) -> Any:
    """One frontrun test: a fresh pool, the prefix in setup, one worker per branch."""
    prefix, branches = program

    def setup() -> State:
        factory = Factory()
        pool = pool_cls("localhost", maxsize=maxsize, block=block, connection_factory=factory)
        state = State(pool, factory, maxsize, block, [[] for _ in branches])
        prefix_state = State(pool, factory, maxsize, block, [[]])
        for op in prefix:
            _op(prefix_state, 0, op, alone=True)
        for i, conn in enumerate(prefix_state.held[0]):
            conn.holder = i % len(branches)
            state.held[i % len(branches)].append(conn)
        state.busy = len(prefix_state.held[0])
        state.closed = prefix_state.closed
        state.problems += prefix_state.problems
        return state

    def worker(me: int, ops: tuple[str, ...]) -> Any:
        def body(state: State) -> None:
            for op in ops:
                _op(state, me, op)
        return body

    workers = [worker(i, ops) for i, ops in enumerate(branches)]
    if dpor:
        return frontrun.explore(
            setup=setup, workers=workers, invariant=invariant, strategy="dpor",
            preemption_bound=None, search=f"bit-reversal:{seed}", clock="virtual",
            total_timeout=seconds, stop_on_first=True, reproduce_on_failure=3,
            detect_io=False)
    return frontrun.explore(
        setup=setup, workers=workers, invariant=invariant, strategy="random", seed=seed,
        max_attempts=attempts, clock="virtual", total_timeout=seconds,
        reproduce_on_failure=3, detect_io=False)


def invariants_of(result: Any) -> str:
    text = result.explanation or ""
    if text.startswith("Deadlock"):
        return "deadlock"
    found = {p.split(":")[0] for p in PROBLEMS}
    return ", ".join(sorted(found)) if found else text.splitlines()[0][:60]


def check(pool_cls: type, seconds: float, seed: int) -> tuple[float | None, Any, int]:
    """As poolcheck's controlled check: the 48 (configuration, program) pairs in its order,
    SLOT_RUNS random schedules each, round after round with fresh seeds, for half the
    budget; then DPOR on each pair with an equal share of the rest (unused shares passed
    on); until a failure or the budget is spent."""
    start = time.monotonic()
    slots = [(c, p) for c in CONFIGURATIONS for p in SMALL_PROGRAMS]
    explored = 0

    def tried(result: Any, maxsize: int, block: bool, program: Any, how: str) -> bool:
        nonlocal explored
        explored += result.num_explored
        if result.property_holds is False:
            SLOT[:] = [maxsize, block, program, how]
            return True
        return False

    until = start + seconds / 2
    rounds = 0
    while time.monotonic() < until:
        for (maxsize, block), program in slots:
            left = until - time.monotonic()
            if left <= 0:
                break
            PROBLEMS.clear()
            result = test(pool_cls, maxsize, block, program, left, seed * 1_000_003 + rounds,
                          dpor=False, attempts=SLOT_RUNS)
            if tried(result, maxsize, block, program, "random"):
                return time.monotonic() - start, result, explored
        rounds += 1
    for i, ((maxsize, block), program) in enumerate(slots):
        share = (start + seconds - time.monotonic()) / (len(slots) - i)
        if share <= 0:
            break
        PROBLEMS.clear()
        result = test(pool_cls, maxsize, block, program, share, seed, dpor=True)
        if tried(result, maxsize, block, program, "dpor"):
            return time.monotonic() - start, result, explored
    return None, None, explored


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", help="one pool of the catalogue, by file name")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| pool | found | median s | invariant(s) | replays | schedules run (median) |")
    print("|---|---|---|---|---|---|")
    for name in [args.only] if args.only else THREADS_ONLY:
        pool_cls = load_pool(name)
        times: list[float] = []
        kinds: set[str] = set()
        replays = attempts = 0
        explored: list[int] = []
        for seed in range(1, args.seeds + 1):
            took, result, n = check(pool_cls, args.seconds, seed)
            explored.append(n)
            if result is not None and took is not None:
                times.append(took)
                kinds.add(invariants_of(result))
                replays += result.reproduction_successes
                attempts += result.reproduction_attempts
                if args.verbose:
                    print(seed, round(took, 2), SLOT, PROBLEMS, file=sys.stderr)
        median = f"{statistics.median(times):.2f}" if times else "-"
        print(f"| {name} | {len(times)}/{args.seeds} | {median} | {', '.join(sorted(kinds))} "
              f"| {replays}/{attempts} | {int(statistics.median(explored))} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
