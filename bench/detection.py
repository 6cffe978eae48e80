"""Time to detection: for each catalogued bug, how long each strategy takes to report it.

For every buggy pool and seeds 1..5, runs `sequential/<expected>` and `stress/<expected>`
(quick profile) separately and records whether each caught the bug and how long it took.
Prints a Markdown table of medians (over the runs that caught it).

    python bench/detection.py [--seeds 5] [--jobs 2] [--json results/detection.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sweep import targets  # noqa: E402


def detect(spec: str, check: str, seed: int) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from stress.checks import PROFILES, run_checks
    from stress.loading import load

    started = time.monotonic()
    [result] = run_checks(load(spec), PROFILES["quick"], seed, only=[check])
    return {"target": spec, "check": check, "seed": seed,
            "caught": result.status == "failed",
            "seconds": round(time.monotonic() - started, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "detection.json")
    args = parser.parse_args()
    buggy = [(spec, exp) for spec, exp in targets() if exp]
    jobs = [(spec, f"{strategy}/{exp}", seed) for spec, exp in buggy
            for strategy in ("sequential", "stress") for seed in range(1, args.seeds + 1)
            if not (strategy == "sequential" and exp == "wakeup")]
    context = multiprocessing.get_context("spawn")
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    with ProcessPoolExecutor(args.jobs, mp_context=context, **fresh) as pool:  # type: ignore[call-overload]
        rows = list(pool.map(detect, *zip(*jobs, strict=True)))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print("| buggy pool | invariant | sequential: caught, median s | stress: caught, median s |")
    print("|---|---|---|---|")
    for spec, exp in buggy:
        cells = []
        for strategy in ("sequential", "stress"):
            mine = [r for r in rows if r["target"] == spec and r["check"] == f"{strategy}/{exp}"]
            caught = [float(str(r["seconds"])) for r in mine if r["caught"]]
            if not mine:
                cells.append("n/a")
            else:
                median = f", {statistics.median(caught):.1f} s" if caught else ""
                cells.append(f"{len(caught)}/{len(mine)}{median}")
        print(f"| `{Path(spec.split(':')[0]).stem}` | {exp} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
