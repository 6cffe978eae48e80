"""Wall time to the first reported failure: `poolcheck check POOL -x` on every buggy pool.

    python bench/first_failure.py [--seed 1] [--json PATH]

Each buggy pool of the catalogue is checked in a fresh `poolcheck check -x` process (the
quick profile; with -x the stress rounds run first, and a failed check is reported as soon
as it is found); the time is the process's wall time, child start included. Prints a
table and the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for path in sorted((ROOT / "examples" / "buggy").glob("*.py")):
        if path.name == "__init__.py":
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            started = time.monotonic()
            subprocess.run([sys.executable, "-I", "-m", "poolcheck", "check", f"{path}:Pool",
                            "-x", "--seed", str(args.seed), "--json", str(out)],
                           capture_output=True, timeout=600)
            took = time.monotonic() - started
            doc = json.loads(out.read_text())
        failed = [c["name"] for c in doc["checks"] if c["status"] != "passed"]
        rows.append({"pool": path.stem, "seconds": round(took, 2),
                     "first_failure": failed[0] if failed else None})
        print(f"| `{path.stem}` | {failed[0] if failed else '(none)'} | {took:.1f} |",
              flush=True)
    median = statistics.median(r["seconds"] for r in rows)
    print(f"\nmedian wall time to the first reported failure: {median:.1f} s "
          f"({len(rows)} pools, seed {args.seed})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
