"""poolcheck's own errors: a user's mistake, said in one line, never a traceback.

Every error poolcheck raises for bad input derives from ``PoolcheckError``, so a script
catches them all with one ``except``; the command line prints the message and exits 2.
What a pool under test raises is never one of these: that is a finding, not an error.
"""

from __future__ import annotations


class PoolcheckError(Exception):
    """Bad input to poolcheck; the message is one line that says what to do."""


class LoadError(PoolcheckError):
    """The target cannot be loaded or driven (no such file, no pool class, a bad adapter)."""


class ConfigError(PoolcheckError, ValueError):
    """A grading config that cannot be used (bad TOML, a pattern that matches no check)."""


class HistoryError(PoolcheckError, ValueError):
    """A history that is not in the contract's format (section 5); ``line`` is the 1-based
    line at fault, if any."""

    def __init__(self, line: int | None, problem: str) -> None:
        super().__init__(f"line {line}: {problem}" if line is not None else problem)
        self.line = line
        self.problem = problem


class TokenError(PoolcheckError, ValueError):
    """A replay token that is not one, is damaged, or no longer fits its target."""


class UsageError(PoolcheckError, ValueError):
    """An argument of ``poolcheck.check()`` that is not one it takes (a check, a profile)."""
