"""How fast ``poolcheck linearize`` decides histories of a correct pool.

The histories come from a simulated correct pool: each call takes effect at one instant
(the simulation runs them in that order) inside an interval drawn around it, so threads
overlap the way real ones do. Run: ``python bench/linearize_bench.py [--seed N]``.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

from poolcheck.judge.linearize import check
from poolcheck.observe.history import Event, History, Pool

THREADS = 8
SIZES = (1_000, 10_000, 100_000)
STEP = 1e-5  # seconds between the instants at which calls take effect


def correct_history(calls: int, threads: int, seed: int, maxsize: int = 4,
                    block: bool = True, discard_rate: float = 0.02) -> History:
    """``calls`` calls by ``threads`` threads on a correct LIFO pool, intervals overlapping."""
    rng = random.Random(seed)
    idle: list[int] = []
    live = 0
    made = 0
    held: dict[int, int] = {}
    busy_until = [-1.0] * threads
    events: list[Event] = []
    spread = STEP * threads * 2  # an interval spans about this many other calls' instants
    now = 0.0
    for _ in range(calls):
        now += STEP
        while not (free := [t for t in range(threads) if busy_until[t] < now]):
            now = min(busy_until) + STEP / 2  # everyone is inside a call: wait for one
        thread = rng.choice(free)
        start = rng.uniform(max(busy_until[thread], now - spread), now)
        end = now + rng.uniform(0, spread)
        busy_until[thread] = end
        if thread in held:
            conn = held.pop(thread)
            if rng.random() < discard_rate:
                live -= 1
                events.append(Event(thread, "put", start, end, conn=conn, discard=True))
                continue
            kept = len(idle) < maxsize
            if kept:
                idle.append(conn)
            else:
                live -= 1
            events.append(Event(thread, "put", start, end, conn=conn, kept=kept))
            continue
        if idle:
            conn = idle.pop()
        elif not block or live < maxsize:
            made += 1
            conn, live = made, live + 1
        else:
            events.append(Event(thread, "get", start, end, outcome="EmptyPoolError"))
            continue
        held[thread] = conn
        events.append(Event(thread, "get", start, end, conn=conn))
    return History(Pool(maxsize, block), tuple(events))


SCENARIOS = {  # name: (maxsize, block)
    "block=True maxsize=4": (4, True),
    "block=False maxsize=2": (2, False),  # connections keep being closed and made
}


def measure(calls: int, seed: int, maxsize: int, block: bool) -> float:
    history = correct_history(calls, THREADS, seed, maxsize, block)
    started = time.perf_counter()
    result = check(history, budget_steps=50 * calls)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"{calls} calls: {result.verdict} (a correct pool!)")
    print(f"  {calls:>7} calls: {seconds:7.3f} s  {calls / seconds:>9,.0f} calls/s  "
          f"({result.steps:,} model steps)")
    return seconds


def measure_broken(calls: int, seed: int) -> None:
    """One get in the middle names a connection that is not idle: time to say "not"."""
    history = correct_history(calls, THREADS, seed)
    events = list(history.events)
    middle = next(i for i in range(calls // 2, calls) if events[i].conn and events[i].op == "get")
    conn = events[middle].conn
    assert conn is not None
    events[middle] = replace(events[middle], conn=conn % 4 + 1)
    started = time.perf_counter()
    result = check(History(history.pool, tuple(events)))
    seconds = time.perf_counter() - started
    print(f"  {calls:>7} calls, one broken in the middle: {result.verdict} in {seconds:.3f} s "
          f"({result.steps:,} model steps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for name, (maxsize, block) in SCENARIOS.items():
        print(f"{name}, {THREADS} threads, a correct pool:")
        times = {calls: measure(calls, args.seed, maxsize, block) for calls in SIZES}
        print(f"  10k calls decided in {times[10_000] * 1000:.0f} ms")
    print("block=True maxsize=4, a broken history:")
    for calls in SIZES[:2]:
        measure_broken(calls, args.seed)


if __name__ == "__main__":
    main()
