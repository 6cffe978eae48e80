"""poolcheck: check any connection pool against a sequential model of its contract.

    import poolcheck

    results = poolcheck.check("mypool.py:MyPool", checks=["stress/bound"], seed=1)
    if not results.passed:
        print(results.report())

    @poolcheck.invariant("closes-once")  # your own, judged on every stress round
    def closes_once(run):
        return [f"connection {c.id} closed {len(c.closes)} times"
                for c in run.connections if len(c.closes) > 1]

The stages, each a subpackage that imports only the ones before it: ``load`` (a TARGET to
a pool with the contract's interface), ``observe`` (recording connections, histories,
watchdogs), ``judge`` (one function per invariant, the linearizability checker), ``run``
(the strategies: one caller at a time, stress rounds, parallel programs, the controlled
scheduler), ``report`` (explanations), ``app`` (the command line, grading, the pytest
plugin). ``poolcheck.model`` is the specification; ``poolcheck.pool`` the bundled pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from poolcheck.errors import (
    ConfigError,
    HistoryError,
    LoadError,
    PoolcheckError,
    TokenError,
    UsageError,
)
from poolcheck.model.invariants import Invariant

if TYPE_CHECKING:
    from poolcheck.app.api import Results, check
    from poolcheck.judge.user import invariant
    from poolcheck.run.checks import CheckResult

__version__ = "0.2.0"
__all__ = [
    "CheckResult",
    "ConfigError",
    "HistoryError",
    "Invariant",
    "LoadError",
    "PoolcheckError",
    "Results",
    "TokenError",
    "UsageError",
    "check",
    "invariant",
]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    """``check`` and its result types load the checker on first use, not on import (the
    pytest plugin imports this package in every test session)."""
    if name in ("check", "Results"):
        from poolcheck.app import api

        return getattr(api, name)
    if name == "invariant":
        from poolcheck.judge.user import invariant

        return invariant
    if name == "CheckResult":
        from poolcheck.run.checks import CheckResult

        return CheckResult
    raise AttributeError(f"module 'poolcheck' has no attribute {name!r}")
