"""User invariants over a stream of stress rounds: the first violation of each, as a check.

Fed in poolcheck's own process, whether the rounds ran there (``poolcheck.check``) or in
the pool's process and came back as checked facts (``poolcheck check --invariants``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from poolcheck.causes import Cause
from poolcheck.judge.user import UserInvariant, judge_round
from poolcheck.observe.facts import RoundResult
from poolcheck.observe.observations import run_of
from poolcheck.run.checks import NOT_EXERCISED, CheckResult, Status, reproduce_command


class UserChecks:
    """Judges each round as it comes; ``results()`` at the end, in the invariants' order."""

    def __init__(self, invariants: Sequence[UserInvariant], command_spec: str, seed: int,
                 profile: str) -> None:
        self.invariants = list(invariants)
        self.command_spec, self.seed, self.profile = command_spec, seed, profile
        self.started = time.monotonic()
        self.rounds = 0
        self.handed_out = False
        self.failures: dict[str, tuple[Status, str, float]] = {}

    @property
    def names(self) -> list[str]:
        return [i.check_name for i in self.invariants]

    def see(self, result: RoundResult) -> None:
        run = run_of(result)
        self.rounds += 1
        self.handed_out = self.handed_out or any(
            c.op == "get" and c.outcome == "ok" for c in run.calls)
        pending = [i for i in self.invariants if i.name not in self.failures]
        for name, (status, message) in judge_round(pending, run).items():
            where = (f"\n\nround: {run.threads} threads, maxsize={run.maxsize}, "
                     f"block={run.block} (seed {run.seed}; `poolcheck stress TARGET --seed "
                     f"{run.seed} --threads {run.threads}` runs it first)")
            self.failures[name] = (status, message + where,
                                   round(time.monotonic() - self.started, 3))

    def results(self, stopped: str | None = None) -> list[CheckResult]:
        """One result per invariant; ``stopped``: the run ended early, and why."""
        out = []
        for inv in self.invariants:
            files = inv.source.rsplit(":", 1)[0]
            reproduce = reproduce_command(f"{self.command_spec} --invariants {files}",
                                          inv.check_name, self.seed, self.profile)
            cause: Cause | None = None
            found_after: float | None = None
            if inv.name in self.failures:
                status, message, found_after = self.failures[inv.name]
            elif stopped is not None:
                status, message, cause = "failed", stopped, Cause.PROCESS_STOPPED
            elif not self.handed_out:
                status, message, cause = "failed", NOT_EXERCISED, Cause.NOT_EXERCISED
            else:
                status, message = "passed", f"no violation in {self.rounds} rounds"
            out.append(CheckResult(inv.check_name, inv, status, message, reproduce,
                                   found_after=found_after, cause=cause))
        return out
