"""Grading a folder of submissions: each checked in its own processes, scored, summarised.

A submission is a ``.py`` file in the folder, or a subfolder holding ``pool.py`` (or exactly
one ``.py`` file). Anything else is skipped with one line saying why. Each submission gets
its own seed, derived from the batch's, and is checked by ``isolation.run_isolated``, so
one that crashes, hangs or cannot be imported costs only its own line in the summary.
The reports (per-submission JSON, CSV, HTML, JUnit XML) are written by this process only.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolcheck.app.config import Grading
from poolcheck.app.isolation import run_isolated
from poolcheck.app.sandbox import Protection, Sandboxing
from poolcheck.errors import PoolcheckError
from poolcheck.report.explain import checks_json, explain
from poolcheck.run.checks import CheckResult, derive_seed
from poolcheck.run.checks import verdict as verdict_of
from poolcheck.settings import Profile


@dataclass(frozen=True)
class Submission:
    name: str
    spec: str | None  # the TARGET to check; None when ``problem`` says why there is none
    problem: str | None = None
    folder: Path | None = None  # a submission of several files: all of them are its own


@dataclass
class Graded:
    submission: Submission
    seed: int
    verdict: str  # pass | fail | error
    results: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    config: Grading = field(default_factory=Grading)
    missing: tuple[Protection, ...] = ()  # protections of the sandbox not in force

    @property
    def score(self) -> float:
        return sum(self.config.weight(r.name) for r in self.results if r.status == "passed")

    @property
    def max_score(self) -> float:
        return sum(self.config.weight(r.name) for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status != "passed"]

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"target": self.submission.spec or self.submission.name,
                               "verdict": self.verdict, "seed": self.seed,
                               "score": self.score, "max_score": self.max_score,
                               "checks": checks_json(self.results)}
        if self.error:
            doc["error"] = self.error
        if self.missing:
            doc["protections_not_in_force"] = [str(p) for p in self.missing]
        return doc


def find_submissions(folder: Path) -> tuple[list[Submission], list[str]]:
    """The submissions in ``folder``, and a line for each entry that is not one."""
    found: list[Submission] = []
    skipped: list[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")):
            continue  # hidden files, __pycache__, __init__.py
        if entry.is_file() and entry.suffix == ".py":
            found.append(Submission(entry.stem, str(entry)))
        elif entry.is_dir():
            found.append(_folder_submission(entry))
        else:
            skipped.append(f"skipped {entry.name}: not a .py file or a folder")
    return found, skipped


def _folder_submission(folder: Path) -> Submission:
    if (folder / "pool.py").is_file():
        return Submission(folder.name, str(folder / "pool.py"), folder=folder)
    sources = [p for p in folder.glob("*.py") if not p.name.startswith("_")]
    if len(sources) == 1:
        return Submission(folder.name, str(sources[0]), folder=folder)
    why = "no .py file" if not sources else "several .py files and no pool.py"
    return Submission(folder.name, None, f"{folder.name}/: {why}; name the pool's file pool.py")


def grade(submission: Submission, adapter: str, profile: Profile, seed: int,
          only: list[str] | None = None, config: Grading | None = None,
          hide: tuple[Path, ...] = ()) -> Graded:
    """One submission, always in a sandbox that shows it only its own files; ``hide``:
    folders it must not see even where the sandbox binds their parents (the submissions,
    the reports, the config's folder)."""
    config = config or Grading()
    if submission.spec is None:
        return Graded(submission, seed, "error", error=submission.problem, config=config)
    chosen = config.select(only)
    sandbox = Sandboxing(expose=submission.folder, hide=hide)
    try:
        outcome = run_isolated(submission.spec, adapter, profile, seed, chosen,
                               sandbox=sandbox, invariants=config.chosen_invariants(only))
    except PoolcheckError as exc:  # e.g. a submission too large to copy into its sandbox
        return Graded(submission, seed, "error", error=str(exc), config=config)
    if outcome.load_error is not None:
        return Graded(submission, seed, "error", error=outcome.load_error, config=config,
                      missing=outcome.missing)
    verdict = verdict_of(outcome.results)
    return Graded(submission, seed, verdict, outcome.results,
                  seconds=round(sum(r.seconds for r in outcome.results), 1), config=config,
                  missing=outcome.missing)


def grade_all(submissions: list[Submission], adapter: str, profile: Profile, seed: int,
              jobs: int, only: list[str] | None = None,
              done: Callable[[Graded], None] | None = None,
              config: Grading | None = None, hide: tuple[Path, ...] = ()) -> list[Graded]:
    """Every submission, ``jobs`` at a time (each in child processes of its own)."""
    def one(submission: Submission) -> Graded:
        graded = grade(submission, adapter, profile,
                       derive_seed(seed, "grade", submission.name), only, config, hide)
        if done:
            done(graded)
        return graded

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, submissions))


# -- reports ----------------------------------------------------------------------------


def write_reports(graded: list[Graded], out: Path, title: str) -> list[Path]:
    """Per-submission JSON, summary.csv, summary.html and junit.xml in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for g in graded:
        path = out / f"{g.submission.name}.json"
        path.write_text(json.dumps(g.as_json(), indent=2) + "\n")
        written.append(path)
    written.append(_write_csv(graded, out / "summary.csv"))
    written.append(_write_html(graded, out / "summary.html", title))
    written.append(write_junit(graded, out / "junit.xml"))
    return written


def _write_csv(graded: list[Graded], path: Path) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["submission", "target", "verdict", "score", "max_score", "seed",
                         "seconds", "failed_checks", "error"])
        for g in graded:
            writer.writerow([g.submission.name, g.submission.spec or "", g.verdict,
                             g.score, g.max_score, g.seed, g.seconds,
                             " ".join(r.name for r in g.failed), g.error or ""])
    return path


def summary_table(graded: list[Graded], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for column in ("submission", "verdict", "score", "failed checks", "seed"):
        table.add_column(column, overflow="fold")
    colours = {"pass": "green", "fail": "red", "error": "yellow"}
    for g in graded:
        problems = g.error or ", ".join(f"{r.name} ({r.status})" if r.status != "failed"
                                        else r.name for r in g.failed) or "-"
        score = f"{g.score:g}/{g.max_score:g}" if g.results else "-"
        table.add_row(g.submission.name, f"[{colours[g.verdict]}]{g.verdict}[/]", score,
                      problems, str(g.seed))
    return table


def _write_html(graded: list[Graded], path: Path, title: str) -> Path:
    from rich.console import Console
    from rich.markup import escape

    console = Console(record=True, file=io.StringIO(), width=140)
    console.print(summary_table(graded, title))
    for g in graded:
        for r in g.failed:
            console.print(f"\n[bold]{escape(g.submission.name)}: {r.name}[/] ({r.status})")
            explanation = explain(r, g.results)
            if explanation is not None:
                console.print(escape(explanation.text()), highlight=False)
            console.print(escape(r.message.strip()), highlight=False)
            console.print(f"reproduce: {escape(r.reproduce)}", highlight=False)
    path.write_text(console.export_html(inline_styles=True, clear=True))
    return path


def write_junit(graded: list[Graded], path: Path) -> Path:
    from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

    xml = JUnitXml("poolcheck")
    for g in graded:
        suite = TestSuite(g.submission.name)
        if g.error is not None:
            case = TestCase("load", g.submission.name)
            problem = Error(g.error, "LoadError")
            problem.text = g.error
            case.result = [problem]
            suite.add_testcase(case)
        for r in g.results:
            case = TestCase(r.name, g.submission.name, r.seconds)
            if r.status != "passed":
                kind = Failure if r.status == "failed" else Error
                first = r.message.strip().splitlines()[0] if r.message.strip() else r.status
                result = kind(first, str(r.invariant))
                result.text = f"{r.message}\nreproduce: {r.reproduce}"
                case.result = [result]
            suite.add_testcase(case)
        suite.update_statistics()
        xml.add_testsuite(suite)
    xml.update_statistics()
    xml.write(str(path), pretty=True)
    return path
