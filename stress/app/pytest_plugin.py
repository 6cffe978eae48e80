"""pytest plugin: run the contract's checks on your own pool inside your own suite.

    def test_my_pool(poolcheck):
        poolcheck.check(MyPool)  # a class, or a TARGET such as "mypool.py:MyPool"
        poolcheck.check(MyPool, checks=["sequential/bound"], profile="ci", seed=7)

A check that does not pass fails the test with poolcheck's report (each failed check, its
steps and a ``reproduce: poolcheck check ...`` line). Options, overridden by check()'s
arguments: ``--poolcheck-profile`` (or ini ``poolcheck_profile``; default quick),
``--poolcheck-seed`` (default: a crc32 of the test's node id, the same on every run and
xdist worker), ``--poolcheck-target SPEC`` (the pool of ``check()`` called without one;
without it such a test is skipped).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

import pytest
from poolcheck.app.argtypes import seed as seed_type  # argparse only; the checks load lazily

if TYPE_CHECKING:
    from poolcheck.app.api import Results


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("poolcheck", "checking a connection pool against its contract")
    group.addoption("--poolcheck-profile", metavar="NAME", default=None,
                    help="profile of poolcheck.check(): quick (default), ci or thorough")
    group.addoption("--poolcheck-seed", metavar="N", type=seed_type, default=None,
                    help="seed of poolcheck.check() (default: derived from the test's id)")
    group.addoption("--poolcheck-target", metavar="SPEC", default=None,
                    help="path/to/file.py:Name or module:Name: the pool of "
                         "poolcheck.check() called without one")
    group.addoption("--poolcheck-invariants", metavar="FILE", action="append", default=[],
                    help="your own invariants (@poolcheck.invariant), checked by every "
                         "poolcheck.check() (repeatable)")
    parser.addini("poolcheck_profile", "default profile of poolcheck.check()", default="")


def pytest_configure(config: pytest.Config) -> None:
    name = _profile_option(config)
    if name:
        from poolcheck.settings import PROFILES

        if name not in PROFILES:
            raise pytest.UsageError(f"poolcheck profile {name!r}: expected one of "
                                    f"{', '.join(PROFILES)}")


def _profile_option(config: pytest.Config) -> str | None:
    return config.getoption("poolcheck_profile") or str(config.getini("poolcheck_profile")) or None


class PoolCheck:
    """What the ``poolcheck`` fixture returns."""

    def __init__(self, config: pytest.Config, nodeid: str) -> None:
        self._config, self._nodeid = config, nodeid

    def check(self, pool: type | str | None = None, *, checks: Sequence[str] | None = None,
              profile: str | None = None, seed: int | None = None,
              adapter: str = "auto", invariants: Sequence[object] = ()) -> Results:
        """Run the checks (default: all) on ``pool``; fail the test unless all pass.
        ``invariants``: your own, added to those of ``--poolcheck-invariants``."""
        from poolcheck.app.api import check
        from poolcheck.errors import PoolcheckError

        if pool is None:
            pool = self._config.getoption("poolcheck_target")
            if pool is None:
                pytest.skip("no pool to check: pass one to poolcheck.check(), or run "
                            "pytest with --poolcheck-target SPEC")
        if seed is None:
            seed = self._config.getoption("poolcheck_seed")
        if seed is None:
            seed = zlib.crc32(self._nodeid.encode())
        try:
            files = self._config.getoption("poolcheck_invariants") or []
            results = check(pool, checks=checks, seed=seed, adapter=adapter,
                            profile=profile or _profile_option(self._config) or "quick",
                            invariants=[*files, *invariants])
        except PoolcheckError as exc:
            _fail(str(exc))
        if not results.passed:
            pytest.fail(results.report(), pytrace=False)
        return results


def _fail(reason: str) -> NoReturn:
    pytest.fail(f"poolcheck: {reason}", pytrace=False)


@pytest.fixture
def poolcheck(request: pytest.FixtureRequest) -> PoolCheck:
    """Checks a pool against the contract: ``poolcheck.check(MyPool)``."""
    return PoolCheck(request.config, request.node.nodeid)
