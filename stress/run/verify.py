"""The grader's own verdict on what a pool's process ran and reported.

The process that runs an untrusted pool also judges what it runs (it must, to shrink a
failure), but its word decides nothing: it sends every stress round's facts
(``poolcheck.observe.wire``) and the history of every parallel and controlled run, and
here the same pure judges and the same linearizability checker run on them again. Such a
check passes only if the grader saw what it ran (stress rounds with the seeds it would
draw) and found no violation in it; a pass the facts contradict fails as ``inconsistent``.
A failure the process reports is kept: a pool can always make itself fail.

Sequential programs too: the process sends each program's steps, and the same pure
``StepJudge`` the machine consulted decides again here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from poolcheck.causes import Cause
from poolcheck.judge import linearize
from poolcheck.judge.judges import Finding, judge, judge_order
from poolcheck.judge.linearize_report import format_report
from poolcheck.judge.steps import StepJudge, Verdict
from poolcheck.model import Invariant
from poolcheck.observe.facts import RoundResult, Step
from poolcheck.observe.history import History
from poolcheck.run.checks import NOT_EXERCISED, PARALLEL, CheckResult, all_checks
from poolcheck.run.rounds import THREADS, round_report, round_seed
from poolcheck.settings import LINEARIZE_BUDGET

CLAIM = "the pool's process reported this check as passed, but "
JUDGED = {"parallel": PARALLEL.name}  # the kinds of history judged here (controlled: facts)


class StressVerifier:
    """Judges each round as it comes; ``verify`` then decides each stress result."""

    def __init__(self, names: Iterable[str], seed: int, command_spec: str) -> None:
        asked = set(names)
        self.wanted = {c.invariant: c.name for c in all_checks()
                       if c.name in asked and c.name.startswith("stress/")}
        self.seed, self.command_spec = seed, command_spec
        self.rounds = 0
        self.calls = 0
        self.handed_out = 0
        self.findings: dict[Invariant, tuple[Finding, RoundResult]] = {}
        self.problem: str | None = None  # the facts are not those of the rounds asked for

    def see(self, result: RoundResult) -> None:
        expected = round_seed(self.seed, self.rounds)
        if result.spec.seed != expected and self.problem is None:
            self.problem = (f"round {self.rounds + 1} has seed {result.spec.seed}, where "
                            f"poolcheck draws {expected}")
        self.rounds += 1
        self.calls += len(result.log.calls)
        self.handed_out += result.log.handed_out
        if self.problem is not None:
            return  # every pass claimed fails as inconsistent: judging more decides nothing
        for finding in judge(result):
            if finding.invariant in self.wanted and finding.invariant not in self.findings:
                self.findings[finding.invariant] = (finding, result)

    def verify(self, result: CheckResult) -> CheckResult:
        """``result`` as the grader decides it: a pass must agree with the facts."""
        if result.status != "passed" or result.name not in self.wanted.values():
            return result
        claim = CLAIM
        if self.problem is not None:
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=claim + f"its facts are not the rounds asked for: "
                           f"{self.problem}")
        if not self.rounds:
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=claim + "it sent the facts of no round")
        if not self.handed_out and result.invariant != Invariant.ERRORS:
            return replace(result, status="failed", cause=Cause.NOT_EXERCISED,
                           message=NOT_EXERCISED)
        found = next((f for inv, f in self.findings.items() if inv == result.invariant), None)
        if found is not None:
            finding, round_result = found
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           evidence=finding.evidence,
                           message=round_report(self.command_spec, round_result, finding)
                           + f"\n\n({claim}the facts it recorded show this violation)")
        return replace(result, message=f"no violation in {self.rounds} rounds "
                       f"({self.calls} calls, {THREADS} threads)")


class HistoryVerifier:
    """Judges the history of every parallel and controlled run; ``verify`` then decides."""

    def __init__(self, names: Iterable[str]) -> None:
        self.asked = {PARALLEL.name} & set(names)
        self.runs: dict[str, int] = {}
        self.violations: dict[str, tuple[History, linearize.Result]] = {}

    def wants(self, kind: str) -> bool:
        return JUDGED.get(kind) in self.asked

    def see(self, kind: str, history: History) -> None:
        check = JUDGED[kind]
        self.runs[check] = self.runs.get(check, 0) + 1
        if check not in self.violations:
            result = linearize.check(history, LINEARIZE_BUDGET)
            if result.verdict == linearize.NOT_LINEARIZABLE:
                self.violations[check] = (history, result)

    def verify(self, result: CheckResult) -> CheckResult:
        if result.status != "passed" or result.name not in self.asked:
            return result
        if not self.runs.get(result.name):
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=CLAIM + "it sent the history of no run")
        found = self.violations.get(result.name)
        if found is not None:
            return replace(result, status="failed", cause=Cause.INCONSISTENT, evidence=found,
                           message=format_report(*found).rstrip("\n")
                           + f"\n\n({CLAIM}one of the histories it recorded is not "
                           "linearizable)")
        return replace(result, message=f"no violation in {self.runs[result.name]} runs, "
                       "each history judged by poolcheck")


class ControlledVerifier:
    """Judges the facts of every controlled run (``judges.judge_order``, as the process
    did); ``verify`` then decides each controlled check. A deadlock or a crash is the
    scheduler's observation, not a fact: a pool's process can hide one, never fake a pass
    against the facts it sent."""

    def __init__(self, names: Iterable[str]) -> None:
        self.asked = {n for n in names if n.startswith("controlled/")}
        self.runs = 0
        self.handed_out = 0
        self.violations: dict[str, Finding] = {}

    def see(self, facts: RoundResult) -> None:
        self.runs += 1
        self.handed_out += facts.log.handed_out
        for finding in judge_order(facts):
            if finding.invariant == Invariant.INTERRUPT_SAFE:
                continue  # whether the interrupt caused it takes re-running the pool
            name = f"controlled/{finding.invariant}"
            if name in self.asked:
                self.violations.setdefault(name, finding)

    def verify(self, result: CheckResult) -> CheckResult:
        if result.status != "passed" or result.name not in self.asked:
            return result
        if not self.runs:
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=CLAIM + "it sent the facts of no run")
        if not self.handed_out and result.invariant != Invariant.ERRORS:
            return replace(result, status="failed", cause=Cause.NOT_EXERCISED,
                           message=NOT_EXERCISED)
        found = self.violations.get(result.name)
        if found is not None:
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           evidence=found.evidence, message=found.message
                           + f"\n\n({CLAIM}the facts of one of its runs show this violation)")
        return replace(result, message=f"no violation in {self.runs} controlled runs, "
                       "each judged by poolcheck")


class SequentialVerifier:
    """Judges the steps of every sequential program; ``verify`` then decides.

    A program ends at its first violation of any invariant (the machine can no longer
    follow the pool); it fails a check when that violation is the check's invariant."""

    def __init__(self) -> None:
        self.programs: dict[str, int] = {}
        self.violations: dict[str, Verdict] = {}

    def see(self, check: str, maxsize: int, block: bool, steps: list[Step]) -> None:
        self.programs[check] = self.programs.get(check, 0) + 1
        judge = StepJudge(maxsize, block)
        for step in steps:
            verdict = judge.observe(step)
            if verdict is not None:
                if f"sequential/{verdict.invariant}" == check:
                    self.violations.setdefault(check, verdict)
                return

    def verify(self, result: CheckResult) -> CheckResult:
        if result.status != "passed" or not result.name.startswith("sequential/"):
            return result
        if not self.programs.get(result.name):
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=CLAIM + "it sent the steps of no program")
        found = self.violations.get(result.name)
        if found is not None:
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=found.message + f"\n\n({CLAIM}the steps it recorded "
                           "show this violation)")
        return replace(result, message=f"no violation in {self.programs[result.name]} "
                       "programs, each judged by poolcheck")
