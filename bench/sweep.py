"""The 20-seed sweep the README quotes: `poolcheck check --profile quick` on the catalogue.

Every buggy pool must be reported with its expected invariant, and the bundled pool and
every correct alternative must pass, for each seed. Runs in fresh processes (a hung pool
leaves threads behind), two at a time by default. Prints two tables: the verdicts, and
per buggy pool the median time to detection of each strategy (sequential: how long its
check ran until it failed; stress: how long the rounds ran until the first violation).

    python bench/sweep.py [--seeds 20] [--jobs 2] [--json results/sweep.json] [--only TEXT]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def targets() -> list[tuple[str, str | None]]:
    """(target, expected invariant or None for a correct pool)."""
    sys.path.insert(0, str(ROOT))
    from poolcheck.load.targets import load

    found: list[tuple[str, str | None]] = [("poolcheck.pool:Pool", None)]
    for folder in ("buggy", "correct"):
        for path in sorted((ROOT / "examples" / folder).glob("*.py")):
            if path.stem == "__init__":
                continue
            spec = f"{path.relative_to(ROOT)}:Pool"
            module = sys.modules[load(spec).cls.__module__]
            found.append((spec, getattr(module, "EXPECTED_INVARIANT", None)))
    return found


def run_one(spec: str, expected: str | None, seed: int) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from poolcheck.load.targets import load
    from poolcheck.run.checks import run_checks
    from poolcheck.settings import PROFILES

    started = time.monotonic()
    results = run_checks(load(spec), PROFILES["quick"], seed)
    failed = sorted({r.invariant for r in results if r.status == "failed"})
    not_passed = sorted(r.name for r in results if r.status != "passed")
    ok = expected in failed if expected else not not_passed
    detected = {r.name.split("/")[0]: r.seconds if r.found_after is None else r.found_after
                for r in results
                if r.invariant == expected and r.status == "failed"}
    return {"target": spec, "expected": expected, "seed": seed, "ok": ok,
            "failed": failed, "not_passed": not_passed, "detected": detected,
            "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "results" / "sweep.json")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="only targets whose name contains TEXT (repeatable)")
    args = parser.parse_args()
    chosen = [(spec, exp) for spec, exp in targets()
              if not args.only or any(text in spec for text in args.only)]
    jobs = [(spec, exp, seed) for spec, exp in chosen for seed in range(1, args.seeds + 1)]
    rows = []
    context = multiprocessing.get_context("spawn")
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    with ProcessPoolExecutor(args.jobs, mp_context=context, **fresh) as pool:  # type: ignore[call-overload]
        futures = [pool.submit(run_one, *job) for job in jobs]
        for n, future in enumerate(as_completed(futures), 1):
            row = future.result()
            rows.append(row)
            mark = "ok " if row["ok"] else "MISS" if row["expected"] else "FALSE ALARM"
            print(f"[{n}/{len(jobs)}] {mark} {row['target']} seed {row['seed']} "
                  f"({row['seconds']} s) {row['not_passed']}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print("\n| target | expected | caught / passed | max seconds |\n|---|---|---|---|")
    for spec, exp in chosen:
        mine = [r for r in rows if r["target"] == spec]
        good = sum(bool(r["ok"]) for r in mine)
        slowest = max(float(str(r["seconds"])) for r in mine)
        print(f"| `{spec}` | {exp or '(correct)'} | {good}/{len(mine)} | {slowest:.0f} |")
    print("\n| buggy pool | invariant | sequential: caught, median s | "
          "stress: caught, median s |\n|---|---|---|---|")
    for spec, exp in chosen:
        if exp is None:
            continue
        mine = [r for r in rows if r["target"] == spec]
        cells = []
        for strategy in ("sequential", "stress"):
            times = [float(r["detected"][strategy]) for r in mine  # type: ignore[index]
                     if strategy in r["detected"]]  # type: ignore[operator]
            median = f", {statistics.median(times):.1f} s" if times else ""
            cells.append(f"{len(times)}/{len(mine)}{median}")
        print(f"| `{Path(spec.split(':')[0]).stem}` | {exp} | {cells[0]} | {cells[1]} |")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
