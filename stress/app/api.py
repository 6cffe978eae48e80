"""``poolcheck.check()``: the checks from a script, a notebook or a test.

This runs the pool in the caller's own process unless ``isolate=True``: it is for your own
pool. Untrusted code goes through ``poolcheck check`` or ``poolcheck grade``, which run it
in a child process.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from poolcheck.errors import LoadError, UsageError
from poolcheck.judge.user import UserInvariant, invariants_of
from poolcheck.load.targets import Target, load, target_of
from poolcheck.run.checks import CheckResult, all_checks, run_checks
from poolcheck.run.checks import verdict as verdict_of
from poolcheck.run.user_checks import UserChecks
from poolcheck.settings import PROFILES, Profile


@dataclass
class Results(Sequence[CheckResult]):
    """The results of one ``check()``, in check order; a sequence of ``CheckResult``."""

    target: str  # TARGET as a command line names it (with --adapter when needed)
    profile: str
    seed: int
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check passed (and at least one ran)."""
        return verdict_of(self.results) == "pass"

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that did not pass: failed, error or timeout."""
        return [r for r in self.results if r.status != "passed"]

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    def report(self) -> str:
        """What ``poolcheck check`` prints for the checks that did not pass."""
        bad = self.failed
        lines = [f"poolcheck: {len(bad)} of {len(self)} checks did not pass on "
                 f"{self.target} (profile {self.profile}, seed {self.seed})"]
        for r in bad:
            lines += ["", f"{r.status.upper()} {r.name} ({r.invariant})", r.message.rstrip(),
                      f"reproduce: {r.reproduce}"]
        lines += ["", f"{self.target}: {len(self) - len(bad)} of {len(self)} checks passed "
                      f"(seed {self.seed})"]
        return "\n".join(lines)

    def as_json(self) -> dict[str, object]:
        """The ``--json`` report's document."""
        return {"target": self.target, "verdict": self.verdict, "seed": self.seed,
                "checks": [r.as_json() for r in self.results]}

    def __len__(self) -> int:
        return len(self.results)

    @overload
    def __getitem__(self, index: int) -> CheckResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[CheckResult]: ...
    def __getitem__(self, index: int | slice) -> CheckResult | list[CheckResult]:
        return self.results[index]

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)


def check(target: type | str | None = None, *, checks: str | Sequence[str] | None = None,
          profile: str | Profile = "quick", seed: int | None = None, adapter: str = "auto",
          isolate: bool = False, invariants: Sequence[object] = (),
          sandbox: bool = False) -> Results:
    """Check a pool (a class, or a TARGET string such as ``"mypool.py:MyPool"``; None: the
    bundled pool) against the contract, and return the results.

    ``checks``: names such as ``"stress/bound"`` (default: every default check). ``seed``:
    random when None; the results' reproduce lines carry it. ``isolate``: run a TARGET
    string in a child process, as ``poolcheck check`` does. ``invariants``: your own, as
    files that register them or functions decorated with ``@poolcheck.invariant``; each
    becomes the check ``stress/<name>``, judged in this process. ``sandbox``: isolate, in
    the sandbox ``poolcheck grade`` uses (docs/THREAT_MODEL.md). A bad argument raises a
    ``PoolcheckError`` whose message says what to do; what the pool does is in the results,
    never raised.
    """
    if isinstance(profile, Profile):  # a budget of your own (tests, notebooks)
        profiles = {**PROFILES, profile.name: profile}
    elif profile in PROFILES:
        profiles = PROFILES
    else:
        raise UsageError(f"profile {profile!r}: expected one of {', '.join(PROFILES)}")
    profile_name = profile.name if isinstance(profile, Profile) else profile
    user = invariants_of(invariants)
    only, user = _check_names(checks, user)
    if seed is None:
        seed = secrets.randbelow(2**32)
    if not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise UsageError(f"seed {seed!r}: must be an int from 0 to {2**32 - 1}")
    if isolate or sandbox:
        if not (target is None or isinstance(target, str)):
            raise UsageError("isolate=True and sandbox=True need a TARGET string, not a "
                             "class: the child process imports the pool itself")
        return _isolated(target, adapter, profiles[profile_name], seed, only, user, sandbox)
    chosen = _target(target, adapter)
    observer = UserChecks(user, chosen.command_spec, seed, profile_name) if user else None
    results = run_checks(chosen, profiles[profile_name], seed, only,
                         observe=observer.see if observer else None,
                         observe_all=observer is not None)
    return Results(chosen.command_spec, profile_name, seed,
                   results + (observer.results() if observer else []))


def _check_names(checks: str | Sequence[str] | None, user: list[UserInvariant]
                 ) -> tuple[list[str] | None, list[UserInvariant]]:
    """The built-in checks to run (None: the defaults) and the user invariants chosen."""
    if checks is None:
        return None, user
    only = [checks] if isinstance(checks, str) else list(checks)
    names = [c.name for c in all_checks()] + [u.check_name for u in user]
    bad = [n for n in only if n not in names]
    if bad or not only:
        raise UsageError(f"no check named {bad[0] if bad else 'in checks=[]'!r} "
                         f"(checks are {', '.join(names)})")
    return ([n for n in only if n in {c.name for c in all_checks()}],
            [u for u in user if u.check_name in only])


def _target(target: type | str | None, adapter: str) -> Target:
    if target is None or isinstance(target, str):
        return load(target, adapter)
    if isinstance(target, type):
        return target_of(target, adapter)
    raise UsageError(f"expected a pool class or a TARGET string, not a {type(target).__name__}")


def _isolated(spec: str | None, adapter: str, profile: Profile, seed: int,
              only: list[str] | None, user: list[UserInvariant], sandbox: bool) -> Results:
    from poolcheck.app.isolation import run_isolated
    from poolcheck.app.sandbox import Sandboxing

    outcome = run_isolated(spec or "", adapter, profile, seed, only, invariants=user,
                           sandbox=Sandboxing() if sandbox else None)
    if outcome.load_error is not None:
        raise LoadError(outcome.load_error)
    return Results(outcome.command_spec, profile.name, seed, outcome.results)
