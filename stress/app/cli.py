"""The ``poolcheck`` command."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poolcheck.app.argtypes import positive_float as _positive_float
from poolcheck.app.argtypes import positive_int as _positive
from poolcheck.app.argtypes import seed as _seed
from poolcheck.app.argtypes import thread_count
from poolcheck.app.config import Grading, load_config
from poolcheck.app.isolation import run_isolated
from poolcheck.app.linearize_command import add_linearize_parser
from poolcheck.app.sandbox import Protection, Sandboxing
from poolcheck.app.starter import add_init_parser
from poolcheck.errors import LoadError, PoolcheckError
from poolcheck.judge.linearize_report import write_html
from poolcheck.judge.user import load_invariants
from poolcheck.load.adapters import ADAPTERS as ADAPTER_KINDS
from poolcheck.load.targets import load
from poolcheck.report.explain import checks_json, explain
from poolcheck.run.checks import STRESS_INVARIANTS, CheckResult, all_checks
from poolcheck.run.checks import verdict as verdict_of
from poolcheck.run.controlled import add_replay_parser
from poolcheck.run.rounds import StressRun, stress_run
from poolcheck.settings import PROFILES

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
ADAPTERS = ["auto", "native", "asyncio", "urllib3", "urllib3-urlopen", "redis", "redis-async",
            "sqlalchemy", "httpcore", "httpcore-async", "psycopg_pool", "dbutils"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poolcheck", description="Check a connection pool against its contract.")
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="run the contract's checks on a pool")
    check.add_argument("target", nargs="?", default=None,
                       help="path/to/file.py:Name or package.module:Name "
                            "(default: the bundled pool)")
    check.add_argument("--adapter", choices=ADAPTERS, default="auto",
                       help="how to drive the pool: auto (native, asyncio when get_conn "
                            "is a coroutine function, else urllib3 style), native, asyncio, "
                            "urllib3, urllib3-urlopen (urllib3's urlopen; default "
                            "TARGET urllib3:HTTPConnectionPool), redis (default TARGET "
                            "redis:BlockingConnectionPool), redis-async (default TARGET "
                            "redis.asyncio:BlockingConnectionPool), sqlalchemy (default TARGET "
                            "sqlalchemy.pool:QueuePool), httpcore (default TARGET "
                            "httpcore:ConnectionPool), httpcore-async (default TARGET "
                            "httpcore:AsyncConnectionPool), psycopg_pool (default TARGET "
                            "psycopg_pool:ConnectionPool) or dbutils (default TARGET "
                            "dbutils.pooled_db:PooledDB)")
    check.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    check.add_argument("--seed", type=_seed, default=None,
                       help="seed of the run (default: a new random one, printed)")
    check.add_argument("--check", action="append", dest="only", metavar="NAME",
                       help="run only this check (repeatable): "
                            f"{', '.join(c.name for c in all_checks())}, or stress/NAME "
                            "for an invariant of --invariants")
    check.add_argument("--invariants", action="append", type=Path, default=[],
                       metavar="FILE", help="your own invariants: a file whose functions "
                       "are decorated with @poolcheck.invariant(\"name\") (repeatable); "
                       "each is the check stress/NAME, judged in this process")
    check.add_argument("-x", "--exitfirst", action="store_true",
                       help="stop at the first check that does not pass (the checks not yet "
                            "run are left out of the report)")
    check.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    check.add_argument("--gradescope", type=Path, metavar="PATH",
                       help="write a Gradescope results.json")
    check.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML")
    check.add_argument("--prairielearn", type=Path, metavar="PATH",
                       help="write a PrairieLearn results.json")
    check.add_argument("--config", type=Path, metavar="TOML",
                       help="which checks count, their weights, which are hidden "
                            "(see examples/grading/)")
    check.add_argument("--record", type=Path, metavar="DIR",
                       help="save every concurrent history the checks ran, one JSON Lines "
                            "file each (the format `poolcheck linearize` reads), into DIR")
    check.add_argument("--html", type=Path, metavar="PATH",
                       help="draw a failing history as a self-contained timeline page")
    check.add_argument("--sandbox", action="store_true",
                       help="run the target as grade does: in a sandbox that sees only a "
                            "copy of its file, without network, as an unprivileged user "
                            "(needs bubblewrap; says which protection is missing)")
    check.set_defaults(run=_check)

    stress = sub.add_parser("stress", help="run real-thread rounds on a pool until told to stop")
    stress.add_argument("target", nargs="?", default=None,
                        help="path/to/file.py:Name or package.module:Name")
    stress.add_argument("--adapter", choices=ADAPTERS, default="auto")
    stress.add_argument("--threads", type=thread_count, default=8)
    stress.add_argument("--ops", type=_positive, default=30,
                        help="operations per thread and round (default 30)")
    stress.add_argument("--seconds", type=_positive_float, default=60.0)
    stress.add_argument("--seed", type=_seed, default=None,
                        help="seed of the first round; round i uses seed+i")
    stress.add_argument("--maxsize", type=_positive, default=None,
                        help="pool size (default: drawn per round)")
    stress.add_argument("--block", action=argparse.BooleanOptionalAction, default=None,
                        help="blocking mode (default: drawn per round)")
    stress.set_defaults(run=_stress)
    add_linearize_parser(sub)
    add_init_parser(sub)
    add_replay_parser(sub)

    grade = sub.add_parser("grade", help="check every submission in a folder, in parallel")
    grade.add_argument("folder", type=Path, metavar="DIR",
                       help="a folder of submissions: .py files, or folders with pool.py")
    grade.add_argument("--adapter", choices=ADAPTERS, default="auto")
    grade.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    grade.add_argument("--seed", type=_seed, default=None,
                       help="seed of the batch; each submission's is derived from it")
    grade.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1,
                       help="submissions checked at once (default: one per core)")
    grade.add_argument("--check", action="append", dest="only", metavar="NAME",
                       help="grade only this check (repeatable): "
                            f"{', '.join(c.name for c in all_checks())}, or stress/NAME "
                            "for an invariant of --invariants")
    grade.add_argument("--invariants", action="append", type=Path, default=[],
                       metavar="FILE", help="your own invariants (repeatable), as for check; "
                       "each counts 1 point unless the config weighs it")
    grade.add_argument("--config", type=Path, metavar="TOML",
                       help="which checks count, their weights, which are hidden")
    grade.add_argument("--out", type=Path, metavar="DIR", default=Path("poolcheck-grades"),
                       help="where the reports go (default ./poolcheck-grades)")
    grade.set_defaults(run=_grade)
    return parser


def _target_spec(args: argparse.Namespace) -> str:
    kind = ADAPTER_KINDS.get(args.adapter)
    return args.target or (kind.default_target if kind and kind.default_target
                           else "poolcheck.pool:Pool")


def _stress(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    spec = _target_spec(args)
    try:
        target = load(spec, args.adapter)
    except LoadError as exc:
        print(f"poolcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.block is not None and args.block not in target.modes:
        print(f"poolcheck: error: {spec} cannot be checked with block={args.block}",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"poolcheck: stressing {spec} with {args.threads} threads for up to "
          f"{args.seconds:g} s (first round seed {seed})", file=sys.stderr)
    started = time.monotonic()
    shown = [0.0]

    def progress(run: StressRun) -> None:
        now = time.monotonic()
        if now - shown[0] >= 1.0:
            shown[0] = now
            found = ", ".join(sorted(run.failures)) or "none"
            print(f"  {now - started:5.1f} s  {run.rounds} rounds  {run.calls} calls  "
                  f"violations: {found}", file=sys.stderr)

    run = stress_run(target, seed, set(STRESS_INVARIANTS), args.seconds, 10.0,
                     threads=args.threads, ops=args.ops, maxsize=args.maxsize,
                     block=args.block if args.block is not None else (
                         True if target.modes == {True} else None),
                     on_round=progress,
                     seeds=lambda i: (seed + i) % 2**32)
    for invariant, report in sorted(run.failures.items()):
        print(f"\nFAILED {invariant}\n{report}")
    print(f"\n{spec}: {run.rounds} rounds, {run.calls} calls, "
          f"{len(run.failures)} invariant(s) violated")
    return EXIT_FAIL if run.failures else EXIT_PASS


def _check(args: argparse.Namespace) -> int:
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    spec = _target_spec(args)
    if args.adapter != "auto" and args.adapter not in ADAPTER_KINDS:
        return _usage_error(args, spec, seed, f"unknown adapter {args.adapter!r}")
    problem = _record_problem(args.record)
    if problem:
        return _usage_error(args, spec, seed, problem)
    try:
        args.grading = (load_config(args.config) if args.config else Grading()
                        ).with_invariants(load_invariants(args.invariants))
        user = args.grading.chosen_invariants(None)
    except PoolcheckError as exc:
        return _usage_error(args, spec, seed, str(exc))
    builtin = {c.name for c in all_checks()}
    user_names = [u.check_name for u in user]
    unknown = [n for n in args.only or () if n not in builtin and n not in user_names]
    if unknown:
        return _usage_error(args, spec, seed, f"--check {unknown[0]}: no such check (checks "
                            f"are {', '.join([*sorted(builtin), *user_names])})")
    if args.only:
        user = [u for u in user if u.check_name in args.only]
        named = [n for n in args.only if n in builtin]
        chosen = args.grading.select(named) if named else []
    else:
        chosen = args.grading.select(None)
    if not chosen and not user:
        return _usage_error(args, spec, seed, f"--config {args.config}: none of the checks "
                            "named with --check counts in it")
    profile = PROFILES[args.profile]
    err = sys.stderr
    outcome = run_isolated(spec, args.adapter, profile, seed, chosen,
                           progress=lambda r: print(
                               f"  {r.name:<28} {r.status:<7} {r.seconds:6.1f} s"
                               + ("" if r.found_after is None else
                                  f" (found after {r.found_after:.1f} s of stress rounds)"),
                               file=err),
                           record=args.record, exit_first=args.exitfirst,
                           invariants=user, sandbox=Sandboxing() if args.sandbox else None,
                           loaded=lambda name: print(f"poolcheck: checking {name} (profile "
                                                     f"{profile.name}, seed {seed})", file=err))
    _warn_missing(outcome.missing)
    if outcome.load_error is not None:
        return _usage_error(args, spec, seed, outcome.load_error)
    results = outcome.results
    verdict = verdict_of(results)
    _print_report(outcome.command_spec, seed, results)
    _write_outputs(args, spec, seed, verdict, results)
    if args.record:
        recorded = len(list(args.record.glob("*.jsonl")))
        print(f"poolcheck: recorded {recorded} histories in {args.record}", file=err)
    if args.html:
        _write_html(args.html, results)
    return EXIT_PASS if verdict == "pass" else EXIT_FAIL


def _warn_missing(missing: Sequence[Protection]) -> None:
    if missing:
        print("poolcheck: warning: not in force on this machine (install bubblewrap; run "
              f"as root for a separate user): {'; '.join(map(str, missing))}",
              file=sys.stderr)


def _record_problem(folder: Path | None) -> str | None:
    """Why --record DIR cannot be used, if it cannot: checked before anything runs."""
    if folder is None:
        return None
    if folder.exists() and not folder.is_dir():
        return f"--record {folder}: not a folder"
    if folder.is_dir() and any(folder.glob("*.jsonl")):
        return f"--record {folder}: it already holds histories; choose an empty folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--record {folder}: cannot create it: {exc.strerror}"
    return None


def _write_html(path: Path, results: list[CheckResult]) -> None:
    """The failing history of the smallest evidence: parallel programs are smallest."""
    failed = [r for r in results if r.status == "failed" and r.evidence is not None]
    if not failed:
        print(f"poolcheck: no failing history to draw; {path} not written", file=sys.stderr)
        return
    failed.sort(key=lambda r: len(r.evidence[0].events) if r.evidence else 0)
    history, result = failed[0].evidence or (None, None)
    assert history is not None and result is not None
    try:
        write_html(history, result, path)
    except OSError as exc:
        print(f"poolcheck: error: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return
    print(f"poolcheck: drew the failing history of {failed[0].name} in {path}",
          file=sys.stderr)


def _grade(args: argparse.Namespace) -> int:
    try:
        from poolcheck.app.grading import find_submissions, grade_all, summary_table, write_reports
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    except ImportError as exc:
        print(f"poolcheck: error: grade needs {exc.name}: pip install 'poolcheck[grade]'",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        config = (load_config(args.config) if args.config else Grading()
                  ).with_invariants(load_invariants(args.invariants))
    except PoolcheckError as exc:
        print(f"poolcheck: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    known = [c.name for c in all_checks()] + [i.check_name for i in config.invariants]
    unknown = [n for n in args.only or () if n not in known]
    if unknown:
        print(f"poolcheck: error: --check {unknown[0]}: no such check (checks are "
              f"{', '.join(known)})", file=sys.stderr)
        return EXIT_USAGE
    if not config.select(args.only) and not config.chosen_invariants(args.only):
        print(f"poolcheck: error: --config {args.config}: none of the checks named with "
              "--check counts in it", file=sys.stderr)
        return EXIT_USAGE
    folder: Path = args.folder
    if not folder.is_dir():
        print(f"poolcheck: error: {folder}: no such folder", file=sys.stderr)
        return EXIT_USAGE
    submissions, skipped = find_submissions(folder)
    console = Console(stderr=True)
    for line in skipped:
        console.print(f"poolcheck: {line}", highlight=False)
    if not submissions:
        print(f"poolcheck: error: {folder}: no submissions (.py files, or folders with "
              "pool.py)", file=sys.stderr)
        return EXIT_USAGE
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    profile = PROFILES[args.profile]
    console.print(f"poolcheck: grading {len(submissions)} submissions in {folder} (profile "
                  f"{profile.name}, batch seed {seed}, {args.jobs} at a time)", highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("grading", total=len(submissions))

        def done(g: Any) -> None:
            what = g.error or f"{g.score:g}/{g.max_score:g}"
            progress.console.print(f"  {g.submission.name}: {g.verdict} ({what})",
                                   highlight=False)
            progress.advance(task)

        hide = tuple(p for p in (folder, args.out, args.config and args.config.parent)
                     if isinstance(p, Path))
        graded = grade_all(submissions, args.adapter, profile, seed, args.jobs, args.only,
                           done, config, hide)
    _warn_missing(graded[0].missing)
    title = f"poolcheck grade {folder} (profile {profile.name}, batch seed {seed})"
    Console().print(summary_table(graded, title))
    try:
        write_reports(graded, args.out, title)
    except OSError as exc:
        print(f"poolcheck: error: cannot write the reports in {args.out}: {exc.strerror}",
              file=sys.stderr)
        return EXIT_USAGE
    console.print(f"poolcheck: reports in {args.out}/ (summary.csv, summary.html, "
                  "junit.xml, one .json per submission)", highlight=False)
    return EXIT_PASS if all(g.verdict == "pass" for g in graded) else EXIT_FAIL


def _usage_error(args: argparse.Namespace, spec: str, seed: int, reason: str) -> int:
    print(f"poolcheck: error: {reason}", file=sys.stderr)
    _write_outputs(args, spec, seed, "error", [], reason)
    return EXIT_USAGE


def _print_report(spec: str, seed: int, results: list[CheckResult]) -> None:
    bad = [r for r in results if r.status != "passed"]
    for r in bad:
        print(f"\n{r.status.upper()} {r.name} ({r.invariant})")
        print(r.message.rstrip())
        explanation = explain(r, results)
        if explanation is not None:
            print(explanation.text(what=False))
        print(f"reproduce: {r.reproduce}")
    passed = len(results) - len(bad)
    print(f"\n{spec}: {passed} of {len(results)} checks passed (seed {seed})")


def _write_outputs(args: argparse.Namespace, spec: str, seed: int, verdict: str,
                   results: list[CheckResult], error: str | None = None) -> None:
    if args.json:
        doc: dict[str, object] = {"target": spec, "verdict": verdict, "seed": seed,
                                  "checks": checks_json(results)}
        if error:
            doc["error"] = error
        _write(args.json, json.dumps(doc, indent=2))
    grading: Grading = getattr(args, "grading", None) or Grading()
    if args.gradescope:
        tests = [{"name": r.name,
                  "score": grading.weight(r.name) if r.status == "passed" else 0.0,
                  "max_score": grading.weight(r.name),
                  "status": "passed" if r.status == "passed" else "failed",
                  "output": _feedback(r, results),
                  "visibility": "after_due_date" if r.name in grading.hidden else "visible"}
                 for r in results]
        doc = {"score": sum(float(str(t["score"])) for t in tests), "tests": tests}
        if error:
            doc["output"] = f"the pool could not be checked: {error}"
        _write(args.gradescope, json.dumps(doc, indent=2))
    if args.prairielearn:
        _write(args.prairielearn, json.dumps(_prairielearn(results, grading, error), indent=2))
    if args.junit:
        from poolcheck.app.grading import Graded, Submission, write_junit
        graded = Graded(Submission(spec, spec), seed, verdict, results, error)
        try:
            write_junit([graded], args.junit)
        except OSError as exc:
            print(f"poolcheck: error: cannot write {args.junit}: {exc.strerror}",
                  file=sys.stderr)


def _feedback(result: CheckResult, results: list[CheckResult]) -> str:
    """A check's text for a learner: the explanation first, then the evidence."""
    explanation = explain(result, results)
    head = f"{explanation.text()}\n\n" if explanation else ""
    return f"{head}{result.message}\nreproduce: {result.reproduce}"


def _prairielearn(results: list[CheckResult], grading: Grading,
                  error: str | None) -> dict[str, object]:
    """PrairieLearn's external grader results: a score in [0, 1] and one test per check.
    A hidden check counts, but its message and output are withheld (PrairieLearn has no
    "after the deadline")."""
    tests = []
    for r in results:
        hidden = r.name in grading.hidden
        points = grading.weight(r.name) if r.status == "passed" else 0.0
        tests.append({"name": r.name, "points": points, "max_points": grading.weight(r.name),
                      "message": "hidden until the results are released" if hidden
                      else r.message.strip().splitlines()[0] if r.message.strip() else "",
                      "output": "" if hidden else _feedback(r, results)})
    total = sum(float(str(t["max_points"])) for t in tests)
    score = sum(float(str(t["points"])) for t in tests) / total if total else 0.0
    doc: dict[str, object] = {"gradable": error is None, "score": round(score, 4),
                              "tests": tests}
    if error:
        doc["message"] = f"the pool could not be checked: {error}"
    return doc


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text + "\n")
    except OSError as exc:
        print(f"poolcheck: error: cannot write {path}: {exc.strerror}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
