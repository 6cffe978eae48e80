"""The catalogue graded as one batch: `poolcheck grade` on every example pool, timed.

Copies the buggy and correct pools of `examples/` into one folder, grades it like an
instructor would (`poolcheck grade DIR --profile quick`), and checks that every buggy pool
fails a check of its expected invariant and every correct one passes.

    python bench/grade_catalogue.py [--seed 1] [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def expected_invariant(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith("EXPECTED_INVARIANT"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, out = Path(tmp) / "submissions", Path(tmp) / "grades"
        folder.mkdir()
        expected: dict[str, str | None] = {}
        for kind in ("buggy", "correct"):
            for path in sorted((ROOT / "examples" / kind).glob("*.py")):
                if path.stem != "__init__":
                    shutil.copy(path, folder / path.name)
                    expected[path.stem] = expected_invariant(path)
        started = time.monotonic()
        subprocess.run([sys.executable, "-I", "-m", "poolcheck", "grade", str(folder), "--seed",
                        str(args.seed), "--jobs", str(args.jobs), "--out", str(out)],
                       cwd=ROOT, check=False)
        seconds = time.monotonic() - started
        with (out / "summary.csv").open() as stream:
            rows = {r["submission"]: r for r in csv.DictReader(stream)}
        # the grader judges again what each pool's process reported: on pools that do not
        # tamper with the checker the two must agree (a disagreement fails as inconsistent)
        disagreed = [f"{p.stem}: {c['name']}" for p in sorted(out.glob("*.json"))
                     for c in json.loads(p.read_text()).get("checks", [])
                     if c.get("cause") == "inconsistent"]
    wrong = [f"the grader and the pool's process disagree on {d}" for d in disagreed]
    invariants = {c.name: c.invariant for c in _all_checks()}
    for name, invariant in expected.items():
        failed = {invariants[c] for c in rows[name]["failed_checks"].split()}
        ok = invariant in failed if invariant else rows[name]["verdict"] == "pass"
        if not ok:
            wrong.append(f"{name}: expected {invariant or 'pass'}, got {sorted(failed)}")
    print(f"\n{len(expected)} submissions graded in {seconds:.0f} s with {args.jobs} jobs; "
          f"{len(expected) - len(wrong)} as expected")
    for line in wrong:
        print(f"  NOT AS EXPECTED: {line}")
    return 1 if wrong else 0


def _all_checks() -> list[object]:
    sys.path.insert(0, str(ROOT))
    from poolcheck.run.checks import all_checks
    return all_checks()  # type: ignore[return-value]


if __name__ == "__main__":
    sys.exit(main())
