"""The grader's own verdict on the stress rounds a pool's process ran and reported.

The process that runs an untrusted pool also judges its rounds (it must, to shrink a
failure), but its word decides nothing: it sends every round's facts
(``poolcheck.observe.wire``), and here the same pure judges run on them again. A stress
check passes only if the grader saw the rounds (with the seeds it would draw) and found no
violation in them; a pass the facts contradict fails as ``inconsistent``. A failure the
process reports is kept: a pool can always make itself fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from poolcheck.causes import Cause
from poolcheck.judge.judges import Finding, judge
from poolcheck.model import Invariant
from poolcheck.observe.facts import RoundResult
from poolcheck.run.checks import CheckResult, all_checks
from poolcheck.run.rounds import THREADS, round_report, round_seed


class StressVerifier:
    """Judges each round as it comes; ``verify`` then decides each stress result."""

    def __init__(self, names: Iterable[str], seed: int, command_spec: str) -> None:
        asked = set(names)
        self.wanted = {c.invariant: c.name for c in all_checks()
                       if c.name in asked and c.name.startswith("stress/")}
        self.seed, self.command_spec = seed, command_spec
        self.rounds = 0
        self.calls = 0
        self.findings: dict[Invariant, tuple[Finding, RoundResult]] = {}
        self.problem: str | None = None  # the facts are not those of the rounds asked for

    def see(self, result: RoundResult) -> None:
        expected = round_seed(self.seed, self.rounds)
        if result.spec.seed != expected and self.problem is None:
            self.problem = (f"round {self.rounds + 1} has seed {result.spec.seed}, where "
                            f"poolcheck draws {expected}")
        self.rounds += 1
        self.calls += len(result.log.calls)
        for finding in judge(result):
            if finding.invariant in self.wanted and finding.invariant not in self.findings:
                self.findings[finding.invariant] = (finding, result)

    def verify(self, result: CheckResult) -> CheckResult:
        """``result`` as the grader decides it: a pass must agree with the facts."""
        if result.status != "passed" or result.name not in self.wanted.values():
            return result
        claim = "the pool's process reported this check as passed, but "
        if self.problem is not None:
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=claim + f"its facts are not the rounds asked for: "
                           f"{self.problem}")
        if not self.rounds:
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           message=claim + "it sent the facts of no round")
        found = self.findings.get(result.invariant)
        if found is not None:
            finding, round_result = found
            return replace(result, status="failed", cause=Cause.INCONSISTENT,
                           evidence=finding.evidence,
                           message=round_report(self.command_spec, round_result, finding)
                           + f"\n\n({claim}the facts it recorded show this violation)")
        return replace(result, message=f"no violation in {self.rounds} rounds "
                       f"({self.calls} calls, {THREADS} threads)")
