"""Real pool bugs, fixed upstream: does poolcheck find each one in the buggy release only?

    python bench/realbugs.py [--seeds 1,2,3,4,5] [--only NAME]... [--cache DIR]
                             [--python PYTHON] [--json PATH]

For each entry of CORPUS (a bug fixed in a named release of urllib3, redis-py or
SQLAlchemy), the script makes two throwaway virtual environments, one with the buggy
release and one with the fixed release, each with this repository installed in editable
mode (so a cached environment always runs the current poolcheck). In each it runs
``poolcheck check TARGET --adapter A --check NAME... --seed N --json PATH`` for every seed,
reads the JSON report (docs/CLI.md) and prints a markdown table: which of the entry's
checks failed in the buggy release and passed in the fixed one, how long poolcheck took
to see it, and what the fixed release gave.

Environments are kept under ``--cache`` (default: a temporary folder removed at the end),
one per library and version, and reused when a marker file says they were completed for
the same install line. An install that fails, or a release that installs but does not
import, is reported as such in the table; it is never mistaken for "not found".

Nothing waits for ever: every venv, pip and poolcheck process has a timeout, runs in a
session of its own, and is killed with its whole process group when the timeout expires.

This is a benchmark, not a test: tox does not run it. Results: bench/README.md, section
"Real bugs".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARKER = ".realbugs-ready"


@dataclass(frozen=True)
class Bug:
    name: str  # for --only
    title: str
    url: str
    library: str  # the distribution name pip installs
    buggy: str
    fixed: str
    target: str
    adapter: str
    checks: tuple[str, ...]  # the checks that cover the code path of the bug
    path: str  # where the bug is, and whether poolcheck's adapter drives that code
    why_not_found: str = ""  # the reason, if poolcheck cannot see it (written beforehand)
    # failures that are another, known bug (present in both releases), not this one: a
    # piece of the failure's first line, and what it is
    other: tuple[tuple[str, str], ...] = ()


URLLIB3_PUT_CONN_RACE = (
    "object has no attribute 'qsize'",
    "the open _put_conn/close race in findings/urllib3_put_conn_races_close.py",
)


CORPUS: tuple[Bug, ...] = (
    Bug(
        name="sqlalchemy-8974-1.4",
        title="sqlalchemy#8974: a BaseException while a checkout reconnects an "
              "invalidated record leaks the record",
        url="https://github.com/sqlalchemy/sqlalchemy/issues/8974",
        library="sqlalchemy",
        buggy="1.4.45",
        fixed="1.4.46",
        target="sqlalchemy.pool:QueuePool",
        adapter="sqlalchemy",
        checks=("sequential/capacity", "stress/capacity"),
        path="_ConnectionRecord.checkout(): rec.get_connection() reconnects a record that "
             "was invalidated; it caught only Exception, so a BaseException from the "
             "creator left the record neither checked out nor checked in. The adapter "
             "drives it: put_conn(None) is fairy.invalidate(), the next get_conn is "
             "pool.connect(), and the checker's factory raises BaseExceptions.",
    ),
    Bug(
        name="sqlalchemy-8974-2.0",
        title="sqlalchemy#8974 (the same fix on the 2.0 branch, before 2.0.0 final)",
        url="https://github.com/sqlalchemy/sqlalchemy/issues/8974",
        library="sqlalchemy",
        buggy="2.0.0b4",
        fixed="2.0.0rc1",
        target="sqlalchemy.pool:QueuePool",
        adapter="sqlalchemy",
        checks=("sequential/capacity", "stress/capacity"),
        path="as above (commit 6221c53 'catch all BaseException in pool and revert failed "
             "checkouts', first released in 2.0.0rc1).",
    ),
    Bug(
        name="urllib3-1758",
        title="urllib3#1758: established connections are replaced by None values "
              "(urlopen puts None back after EmptyPoolError)",
        url="https://github.com/urllib3/urllib3/issues/1758",
        library="urllib3",
        buggy="1.25.9",
        fixed="1.25.10",
        target="urllib3:HTTPConnectionPool",
        adapter="urllib3-urlopen",
        checks=("sequential/bound", "stress/bound", "stress/capacity"),
        path="HTTPConnectionPool.urlopen(): when _get_conn() raised EmptyPoolError, no "
             "except clause took it (the one there caught queue.Empty), so the finally "
             "block's cleanup called _put_conn(None), a placeholder for a slot that was "
             "never taken (with every connection out, the next caller creates maxsize + 1 "
             "connections). Fixed by PR #1866 ('except EmptyPoolError: release_this_conn = "
             "False'), first released in 1.25.10 (1.25.11 and 1.26.0 both have the fix). "
             "The urllib3-urlopen adapter drives urlopen() itself.",
        other=(URLLIB3_PUT_CONN_RACE,),
    ),
    Bug(
        name="urllib3-5062",
        title="urllib3#5062 (issue #5059): urlopen with an invalid timeout puts None "
              "back for a slot it never took",
        url="https://github.com/urllib3/urllib3/pull/5062",
        library="urllib3",
        buggy="2.7.0",
        fixed="2.8.0",
        target="urllib3:HTTPConnectionPool",
        adapter="urllib3-urlopen",
        checks=("sequential/bound", "stress/bound", "stress/capacity", "stress/errors"),
        path="HTTPConnectionPool.urlopen(): self._get_timeout(timeout) ran inside the try "
             "whose cleanup calls _put_conn(None); an invalid timeout raised before "
             "_get_conn(), and the cleanup then put a placeholder for a slot never taken "
             "(FullPoolError on a full blocking pool; with a connection out, an extra "
             "slot). The fix moves the call out of the try, in urlopen only. The "
             "urllib3-urlopen adapter drives urlopen(), but with the pool's own (valid) "
             "socket timeout.",
        why_not_found="the adapter now calls urlopen(), but the bug needs an invalid "
                      "socket timeout passed to urlopen(timeout=...); the contract's "
                      "get_conn(timeout) is a pool timeout (urlopen's pool_timeout), and "
                      "the checker never passes an invalid one, so _get_timeout() never "
                      "raises and the buggy cleanup never runs.",
        other=(URLLIB3_PUT_CONN_RACE,),
    ),
)


# -- processes ----------------------------------------------------------------------------

@dataclass
class Ran:
    code: int | None  # None: killed at the timeout
    out: str
    err: str
    seconds: float


def run(cmd: list[str], timeout: float, cwd: Path | None = None) -> Ran:
    """Run ``cmd`` in a session of its own; at the timeout, kill its process group."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    return Ran(code, out, err, time.monotonic() - started)


def tail(text: str, lines: int = 4) -> str:
    """The last lines of a process's output, on one line, pip's index warnings left out."""
    kept = [line for line in text.splitlines()
            if line.strip() and not line.startswith("WARNING: Location")]
    text = " | ".join(kept[-lines:])
    return text if len(text) <= 300 else text[:300] + "..."


# -- environments -------------------------------------------------------------------------

@dataclass
class Env:
    library: str
    version: str
    path: Path
    error: str = ""  # why it cannot be used: the install failed, or it does not import

    @property
    def poolcheck(self) -> Path:
        return self.path / "bin" / "poolcheck"


def make_env(cache: Path, python: str, library: str, version: str,
             install_timeout: float) -> Env:
    """A venv with this repository (editable) and ``library==version``, cached by name."""
    path = cache / f"{library}-{version}"
    env = Env(library, version, path)
    line = f"{python} -e {ROOT} {library}=={version}"
    marker = path / MARKER
    if marker.exists() and marker.read_text() == line:
        return env
    if path.exists():
        shutil.rmtree(path)
    made = run([python, "-m", "venv", str(path)], timeout=120)
    if made.code != 0:
        env.error = f"venv failed: {tail(made.err) or 'timeout'}"
        return env
    pip = run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check", "-e", str(ROOT), f"{library}=={version}"],
              timeout=install_timeout)
    if pip.code != 0:
        why = "timed out" if pip.code is None else tail(pip.err)
        env.error = f"pip install {library}=={version} failed: {why}"
        return env
    probe = ("import importlib, importlib.metadata as m, sys; "
             f"importlib.import_module({library!r}); print(m.version({library!r}))")
    got = run([str(path / "bin" / "python"), "-c", probe], timeout=120)
    if got.code != 0:
        why = "timed out" if got.code is None else tail(got.err, 1)
        env.error = f"{library} {version} installs but does not import: {why}"
        return env
    if got.out.strip() != version:
        env.error = f"pip installed {library} {got.out.strip()}, not {version}"
        return env
    marker.write_text(line)
    return env


# -- checking -----------------------------------------------------------------------------

@dataclass
class CheckRun:
    status: str  # passed, failed, error, timeout; or "missing" (not in the report)
    seconds: float | None = None  # the check's own time (sequential: incl. shrinking)
    found_after: float | None = None  # stress checks: rounds' time to the violation
    cause: str | None = None
    first_line: str = ""


@dataclass
class SeedRun:
    seed: int
    wall: float
    problem: str = ""  # the run gave no usable report
    checks: dict[str, CheckRun] = field(default_factory=dict)


def check_seed(env: Env, bug: Bug, seed: int, profile: str, timeout: float,
               work: Path) -> SeedRun:
    report = work / f"{bug.name}-{env.version}-{seed}.json"
    report.unlink(missing_ok=True)
    cmd = [str(env.poolcheck), "check", bug.target, "--adapter", bug.adapter,
           "--profile", profile, "--seed", str(seed), "--json", str(report)]
    for name in bug.checks:
        cmd += ["--check", name]
    ran = run(cmd, timeout=timeout, cwd=work)
    result = SeedRun(seed, ran.seconds)
    if ran.code is None:
        result.problem = f"poolcheck killed after {timeout:.0f} s"
        return result
    if not report.exists():
        result.problem = f"no JSON report (exit {ran.code}): {tail(ran.err, 2)}"
        return result
    data: dict[str, Any] = json.loads(report.read_text())
    if data.get("verdict") == "error":
        result.problem = f"poolcheck error: {data.get('error')}"
        return result
    for check in data.get("checks", []):
        result.checks[check["name"]] = CheckRun(
            status=check["status"], seconds=check.get("seconds"),
            found_after=check.get("found_after"), cause=check.get("cause"),
            first_line=(check.get("message") or "").splitlines()[0]
            if check.get("message") else "")
    for name in bug.checks:
        result.checks.setdefault(name, CheckRun("missing"))
    return result


@dataclass
class Side:
    env: Env
    other: tuple[tuple[str, str], ...] = ()
    seeds: list[SeedRun] = field(default_factory=list)

    def known_other(self, run: CheckRun) -> str | None:
        """What the failure is, when it is a known bug other than the entry's."""
        for piece, what in self.other:
            if piece in run.first_line:
                return what
        return None

    def statuses(self, check: str) -> list[str]:
        """Each seed's status; a failure that is a known other bug is "failed (other)"."""
        out = []
        for s in self.seeds:
            run = s.checks.get(check)
            if run is None:
                out.append("no report")
            elif run.status == "failed" and self.known_other(run):
                out.append("failed (other bug)")
            else:
                out.append(run.status)
        return out

    def failed(self, check: str) -> list[CheckRun]:
        """The seeds' failures of ``check``, the known other bugs left out."""
        return [s.checks[check] for s in self.seeds
                if check in s.checks and s.checks[check].status == "failed"
                and not self.known_other(s.checks[check])]

    def others(self) -> list[str]:
        seen = []
        for s in self.seeds:
            for name, run in s.checks.items():
                what = run.status == "failed" and self.known_other(run)
                if what:
                    seen.append(f"`{name}` seed {s.seed}: {what}")
        return seen

    def passed_all(self, check: str) -> bool:
        """Every seed passed ``check`` (or failed it only with a known other bug)."""
        return bool(self.seeds) and all(st in ("passed", "failed (other bug)")
                                        for st in self.statuses(check))


@dataclass
class Outcome:
    bug: Bug
    buggy: Side
    fixed: Side

    def found(self) -> list[str]:
        """Checks that failed in the buggy release (some seed) and passed in the fixed one
        (every seed)."""
        if self.buggy.env.error or self.fixed.env.error:
            return []
        return [c for c in self.bug.checks
                if self.buggy.failed(c) and self.fixed.passed_all(c)]


def spread(values: list[float]) -> str:
    if not values:
        return "?"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return (f"median {statistics.median(values):.2f} s "
            f"({min(values):.2f}-{max(values):.2f})")


def detection(side: Side, check: str) -> str:
    failed = side.failed(check)
    n = len(side.seeds)
    if check.startswith("stress/"):
        times = [c.found_after for c in failed if c.found_after is not None]
        how = f"found after {spread(times)} of stress rounds"
    else:
        times = [c.seconds for c in failed if c.seconds is not None]
        how = f"check failed in {spread(times)} (incl. shrinking)"
    causes = sorted({c.cause for c in failed if c.cause})
    cause = f", cause `{'`, `'.join(causes)}`" if causes else ""
    return f"`{check}`: {len(failed)}/{n} seeds, {how}{cause}"


def summary(side: Side, check: str) -> str:
    counts: dict[str, int] = {}
    for st in side.statuses(check):
        counts[st] = counts.get(st, 0) + 1
    return ", ".join(f"{k} {v}/{len(side.seeds)}" for k, v in sorted(counts.items()))


def problems(side: Side) -> str:
    bad = [f"seed {s.seed}: {s.problem}" for s in side.seeds if s.problem]
    return "; ".join(bad)


def row(o: Outcome) -> str:
    b = o.bug
    link = f"[{b.title}]({b.url})"
    if o.buggy.env.error or o.fixed.env.error:
        why = "; ".join(e for e in (o.buggy.env.error, o.fixed.env.error) if e)
        cells = [link, b.library, b.buggy, b.fixed, f"not run: {why}", "-", "-"]
        return "| " + " | ".join(cells) + " |"
    found = o.found()
    if found:
        check = ", ".join(f"`{c}`" for c in found)
        when = "<br>".join(detection(o.buggy, c) for c in found)
        fixed = "<br>".join(f"`{c}`: {summary(o.fixed, c)}" for c in found)
    else:
        buggy = "; ".join(f"`{c}` {summary(o.buggy, c)}" for c in b.checks)
        check = f"**not found** ({buggy}). {b.why_not_found or 'reason not known'}"
        when = "-"
        fixed = "; ".join(f"`{c}` {summary(o.fixed, c)}" for c in b.checks)
    for side, label in ((o.buggy, "buggy"), (o.fixed, "fixed")):
        if problems(side):
            when += f" ({label}: {problems(side)})"
        if side.others():
            note = f"<br>{label} release, not this bug: {'; '.join(side.others())}"
            if label == "buggy":
                check += note
            else:
                fixed += note
    return "| " + " | ".join([link, b.library, b.buggy, b.fixed, check, when, fixed]) + " |"


HEADER = ("| bug | library | buggy version | fixed version | check that found it | "
          "time to detection (buggy) | result on the fixed version |\n"
          "|---|---|---|---|---|---|---|")


def as_json(o: Outcome) -> dict[str, Any]:
    def side(s: Side) -> dict[str, Any]:
        return {"version": s.env.version, "env_error": s.env.error,
                "seeds": [{"seed": r.seed, "wall": round(r.wall, 3), "problem": r.problem,
                           "checks": {k: vars(v) for k, v in r.checks.items()}}
                          for r in s.seeds]}
    return {"name": o.bug.name, "url": o.bug.url, "library": o.bug.library,
            "target": o.bug.target, "adapter": o.bug.adapter, "checks": list(o.bug.checks),
            "found": o.found(), "buggy": side(o.buggy), "fixed": side(o.fixed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5",
                        help="comma-separated seeds (default 1,2,3,4,5)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this entry (repeatable): "
                             + ", ".join(b.name for b in CORPUS))
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep the venvs here, one per library and version "
                             "(default: a temporary folder, removed at the end)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter the venvs are made with (default: this one)")
    parser.add_argument("--profile", default="quick", choices=("quick", "ci", "thorough"))
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds one poolcheck run may take (default 600)")
    parser.add_argument("--install-timeout", type=float, default=900.0,
                        help="seconds one pip install may take (default 900)")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    args = parser.parse_args()

    names = {b.name for b in CORPUS}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"unknown entry {', '.join(unknown)}; entries: {', '.join(sorted(names))}")
    bugs = [b for b in CORPUS if not args.only or b.name in args.only]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    temporary = args.cache is None
    cache = Path(tempfile.mkdtemp(prefix="realbugs-")) if temporary else args.cache
    cache.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    try:
        with tempfile.TemporaryDirectory(prefix="realbugs-work-") as tmp:
            work = Path(tmp)
            for bug in bugs:
                sides = []
                for version in (bug.buggy, bug.fixed):
                    print(f"{bug.name}: {bug.library} {version}: installing", file=sys.stderr)
                    env = make_env(cache, args.python, bug.library, version,
                                   args.install_timeout)
                    side = Side(env, bug.other)
                    if env.error:
                        print(f"  CANNOT RUN: {env.error}", file=sys.stderr)
                    else:
                        for seed in seeds:
                            r = check_seed(env, bug, seed, args.profile, args.timeout, work)
                            side.seeds.append(r)
                            got = r.problem or ", ".join(
                                f"{k} {v.status}" for k, v in r.checks.items())
                            print(f"  seed {seed} ({r.wall:.1f} s): {got}", file=sys.stderr)
                    sides.append(side)
                outcomes.append(Outcome(bug, sides[0], sides[1]))
    finally:
        if temporary:
            shutil.rmtree(cache, ignore_errors=True)

    version = run([args.python, "-c", "import platform; print(platform.python_version())"],
                  timeout=60).out.strip()
    print(f"seeds {','.join(map(str, seeds))}, profile {args.profile}, Python {version}\n")
    print(HEADER)
    for o in outcomes:
        print(row(o))
    if args.json is not None:
        args.json.write_text(json.dumps({"seeds": seeds, "profile": args.profile,
                                         "entries": [as_json(o) for o in outcomes]},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
