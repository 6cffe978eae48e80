"""The controlled checks on the catalogue's threads-only and asyncio pools: found in how many
seeds, how fast.

For each pool and seed, ``controlled.check_target`` looks for every invariant a controlled
run can show, for at most --seconds; the time to detection is when the first failing run
ended. Then the failure's replay token is replayed three times.

    python bench/controlled_catalogue.py [--seeds 5] [--seconds 10] [--only NAME]

NAME: a file name of examples/buggy/ (threads), or aio/NAME for examples/aio/buggy/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from poolcheck.load.targets import load
from poolcheck.run import controlled
from poolcheck.run.checks import CONTROLLED_INVARIANTS

ROOT = Path(__file__).resolve().parent.parent

THREADS_ONLY = ["count_outside_lock", "peek_idle_outside_lock", "close_races_put",
                "lost_wakeup", "semaphore_permit_not_conn", "close_wakes_nobody",
                "wakeup_restarts_timeout", "interrupt_swallows_wakeup"]
ASYNCIO = [f"aio/{p.stem}" for p in sorted((ROOT / "examples" / "aio" / "buggy").glob("*.py"))
           if p.stem != "__init__"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", help="one pool of the catalogue, by file name")
    args = parser.parse_args()
    print("| pool | found | median s | invariant(s) | replays |")
    print("|---|---|---|---|---|")
    for name in [args.only] if args.only else THREADS_ONLY + ASYNCIO:
        folder, _, stem = name.rpartition("/")
        target = load(f"{ROOT}/examples/{folder or '.'}/buggy/{stem}.py:Pool")
        times: list[float] = []
        kinds: set[str] = set()
        replays = 0
        for seed in range(1, args.seeds + 1):
            start = time.monotonic()
            first: list[float] = []

            def seen(run: controlled.ControlledRun, start: float = start,
                     first: list[float] = first) -> None:
                if run.failed and not run.no_verdict and not first:
                    first.append(time.monotonic() - start)

            out = controlled.check_target(target, seed, args.seconds, on_run=seen,
                                          wanted=CONTROLLED_INVARIANTS, shrink_seconds=5)
            if out.failures and first:
                times.append(first[0])
                kinds.update(str(i) for i in out.failures)
                run = next(iter(out.failures.values()))
                replays += sum(controlled.replay(run.token, target).kind == run.kind
                               for _ in range(3))
        median = f"{statistics.median(times):.2f}" if times else "-"
        print(f"| {name} | {len(times)}/{args.seeds} | {median} | {', '.join(sorted(kinds))} "
              f"| {replays}/{3 * len(times)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
