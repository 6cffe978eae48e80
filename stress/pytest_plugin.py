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

from stress.argtypes import seed as seed_type  # argparse only; the checks load lazily

if TYPE_CHECKING:
    from stress.checks import CheckResult
    from stress.loading import Target


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("poolcheck", "checking a connection pool against its contract")
    group.addoption("--poolcheck-profile", metavar="NAME", default=None,
                    help="profile of poolcheck.check(): quick (default), ci or thorough")
    group.addoption("--poolcheck-seed", metavar="N", type=seed_type, default=None,
                    help="seed of poolcheck.check() (default: derived from the test's id)")
    group.addoption("--poolcheck-target", metavar="SPEC", default=None,
                    help="path/to/file.py:Name or module:Name: the pool of "
                         "poolcheck.check() called without one")
    parser.addini("poolcheck_profile", "default profile of poolcheck.check()", default="")


def pytest_configure(config: pytest.Config) -> None:
    name = _profile_option(config)
    if name:
        from stress.checks import PROFILES

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
              adapter: str = "auto") -> list[CheckResult]:
        """Run the checks (default: all) on ``pool``; fail the test unless all pass."""
        from stress.checks import PROFILES, all_checks, run_checks

        target = self._target(pool, adapter)
        profile = profile or _profile_option(self._config) or "quick"
        if profile not in PROFILES:
            _fail(f"profile {profile!r}: expected one of {', '.join(PROFILES)}")
        names = [c.name for c in all_checks()]
        only = [checks] if isinstance(checks, str) else None if checks is None else list(checks)
        bad = [n for n in only or () if n not in names]
        if bad or only == []:
            _fail(f"no check named {bad[0] if bad else 'in checks=[]'!r} "
                  f"(checks are {', '.join(names)})")
        if seed is None:
            seed = self._config.getoption("poolcheck_seed")
        if seed is None:
            seed = zlib.crc32(self._nodeid.encode())
        if not 0 <= seed < 2**32:
            _fail(f"seed {seed}: must be from 0 to {2**32 - 1}")
        results = run_checks(target, PROFILES[profile], seed, only)
        if any(r.status != "passed" for r in results):
            pytest.fail(_report(target, profile, seed, results), pytrace=False)
        return results

    def _target(self, pool: type | str | None, adapter: str) -> Target:
        from stress.loading import LoadError, load

        if pool is None:
            pool = self._config.getoption("poolcheck_target")
            if pool is None:
                pytest.skip("no pool to check: pass one to poolcheck.check(), or run "
                            "pytest with --poolcheck-target SPEC")
        try:
            if isinstance(pool, str):
                return load(pool, adapter)
            if isinstance(pool, type):
                return _of_class(pool, adapter)
        except LoadError as exc:
            _fail(str(exc))
        _fail(f"expected a pool class or a TARGET string, not a {type(pool).__name__}")


def _of_class(cls: type, adapter: str) -> Target:
    """``Target.of``, refusing what ``load`` would refuse for a TARGET string."""
    from stress import adapters
    from stress.loading import LoadError, Target

    if adapter != "auto" and adapter not in adapters.ADAPTERS:
        raise LoadError(f"unknown adapter {adapter!r} (one of auto, "
                        f"{', '.join(adapters.ADAPTERS)})")
    target = Target.of(cls, adapter)
    kind = adapters.ADAPTERS[target.adapter]
    missing = adapters.missing_methods(kind, cls)
    if missing:
        raise LoadError(f"{target.spec}: {cls.__name__} has no {' or '.join(missing)}; the "
                        f"{kind.name} interface needs {', '.join(kind.methods)} (see CONTRACT.md)")
    if kind.name == "urllib3" and not adapters.makes_connections(cls):
        raise LoadError(f"{target.spec}: {cls.__name__} has neither ConnectionCls nor "
                        "_new_conn(), so the urllib3 adapter cannot give it the checker's "
                        "connections")
    problem = kind.signature_problem(cls)
    if problem:
        raise LoadError(f"{target.spec}: {problem}")
    return target


def _fail(reason: str) -> NoReturn:
    pytest.fail(f"poolcheck: {reason}", pytrace=False)


def _report(target: Target, profile: str, seed: int, results: list[CheckResult]) -> str:
    """The text of ``poolcheck check``'s report, led by a one-line summary."""
    bad = [r for r in results if r.status != "passed"]
    lines = [f"poolcheck: {len(bad)} of {len(results)} checks did not pass on "
             f"{target.command_spec} (profile {profile}, seed {seed})"]
    for r in bad:
        lines += ["", f"{r.status.upper()} {r.name} ({r.invariant})", r.message.rstrip(),
                  f"reproduce: {r.reproduce}"]
    lines += ["", f"{target.spec}: {len(results) - len(bad)} of {len(results)} checks passed "
                  f"(seed {seed})"]
    return "\n".join(lines)


@pytest.fixture
def poolcheck(request: pytest.FixtureRequest) -> PoolCheck:
    """Checks a pool against the contract: ``poolcheck.check(MyPool)``."""
    return PoolCheck(request.config, request.node.nodeid)
