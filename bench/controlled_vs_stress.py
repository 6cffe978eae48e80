"""A one-line race, 20 seeds, same budget: the controlled scheduler against real threads.

The pool checks for room before taking its lock in put_conn (block=False): two returns
that both see room both keep their connection, and the pool holds more than maxsize idle.
For each seed, `controlled.check_target` and the real-thread stress rounds
(`poolcheck.run.rounds.stress_run`, the `bound` and `linearizable` judges) each get --seconds; the
script prints detections out of the seeds and the median time to detection.

    python bench/controlled_vs_stress.py [--seeds 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poolcheck.load.targets import Target
from poolcheck.model import Invariant
from poolcheck.pool import Pool
from poolcheck.run import controlled
from poolcheck.run.rounds import stress_run


class RoomOutsideLock(Pool):
    """put_conn checks for room before taking the lock."""

    def put_conn(self, conn: Any) -> None:
        if conn is not None and not self._closed and len(self._idle) < self.maxsize:
            with self._lock:  # the room it saw may be gone by now
                self._idle[id(conn)] = conn
                if self._waiting:
                    self._cond.notify()
            return
        super().put_conn(conn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    target = Target.of(RoomOutsideLock)
    found: dict[str, list[float]] = {"controlled": [], "stress": []}
    for seed in range(1, args.seeds + 1):
        started = time.monotonic()
        out = controlled.check_target(target, seed, args.seconds,
                                      wanted=[Invariant.BOUND, Invariant.LINEARIZABLE])
        if out.failure is not None:
            found["controlled"].append(time.monotonic() - started)
        run = stress_run(target, seed, {Invariant.BOUND, Invariant.LINEARIZABLE}, args.seconds,
                         0.0)
        if run.found_at:
            found["stress"].append(min(run.found_at.values()))
        print(f"seed {seed}: controlled {'found' if out.failure else 'missed'}, "
              f"stress {'found' if run.found_at else 'missed'}", flush=True)
    print(f"\n| strategy ({args.seconds:g} s a seed) | detections | median time to detection |")
    print("|---|---|---|")
    for name, times in found.items():
        median = f"{statistics.median(times):.2f} s" if times else "-"
        print(f"| {name} | {len(times)}/{args.seeds} | {median} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
