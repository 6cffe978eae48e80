"""The pytest plugin (stress/pytest_plugin.py), run on small suites by ``pytester``."""

from __future__ import annotations

import zlib

import pytest

pytest_plugins = ["pytester"]

# A pool whose put_conn keeps every connection with block=False (the catalogue's
# examples/buggy/nonblock_keeps_all.py, shortened): it breaks `bound`.
BUGGY_POOL = '''
import threading
import time


class ClosedPoolError(Exception):
    pass


class EmptyPoolError(Exception):
    pass


class Pool:
    def __init__(self, host, port=None, *, maxsize=1, block=False, timeout=None,
                 connection_factory=None):
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"bad timeout {timeout!r}")
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory = connection_factory
        self._cond = threading.Condition()
        self._idle = []
        self._live = 0
        self._closed = False

    def get_conn(self, timeout=None):
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"bad timeout {timeout!r}")
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise ClosedPoolError("the pool is closed")
                if self._idle:
                    return self._idle.pop()
                if not self.block or self._live < self.maxsize:
                    self._live += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise EmptyPoolError("no connection became free")
                self._cond.wait(remaining)
        try:
            return self._factory()
        except BaseException:
            self.put_conn(None)
            raise

    def put_conn(self, conn):
        with self._cond:
            keep = conn is not None and not self._closed  # BUG: no room check
            if keep:
                self._idle.append(conn)
            else:
                self._live -= 1
            self._cond.notify()
        if conn is not None and not keep:
            conn.close()

    def close(self):
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()
'''


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:cacheprovider", *args)


def no_traceback(result: pytest.RunResult) -> None:
    out = result.stdout.str()
    assert "Traceback" not in out
    assert "pytest_plugin.py" not in out


def test_correct_pool_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_good="""
        from poolcheck.pool import Pool

        def test_pool(poolcheck):
            results = poolcheck.check(Pool, checks=["sequential/bound"])
            assert [(r.name, r.status) for r in results] == [("sequential/bound", "passed")]

        def test_target_string(poolcheck):
            poolcheck.check("poolcheck.pool:Pool", checks="sequential/bound")
    """)
    run(pytester).assert_outcomes(passed=2)


def test_buggy_pool_fails_with_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(buggy_pool=BUGGY_POOL, test_buggy="""
        from buggy_pool import Pool

        def test_pool(poolcheck):
            poolcheck.check(Pool, checks=["sequential/bound"])
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    seed = zlib.crc32(b"test_buggy.py::test_pool")  # the default: from the node id
    result.stdout.fnmatch_lines([
        f"*poolcheck: 1 of 1 checks did not pass on buggy_pool:Pool (profile quick, "
        f"seed {seed})",
        "FAILED sequential/bound (bound)",
        f"reproduce: poolcheck check buggy_pool:Pool --profile quick --seed {seed} "
        "--check sequential/bound",
        f"buggy_pool:Pool: 0 of 1 checks passed (seed {seed})",
    ])
    no_traceback(result)


def test_seed_option_is_used_and_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(buggy_pool=BUGGY_POOL, test_buggy="""
        def test_pool(poolcheck):
            poolcheck.check("buggy_pool.py:Pool", checks=["sequential/bound"])
    """)
    result = run(pytester, "--poolcheck-seed", "7")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["reproduce: poolcheck check buggy_pool.py:Pool "
                                 "--profile quick --seed 7 --check sequential/bound"])


def test_unloadable_target_fails_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_missing="""
        def test_pool(poolcheck):
            poolcheck.check("no_such_file.py:Pool", checks=["sequential/bound"])

        def test_not_a_pool(poolcheck):
            poolcheck.check(dict, checks=["sequential/bound"])

        def test_unknown_check(poolcheck):
            poolcheck.check("poolcheck.pool:Pool", checks=["sequential/bond"])
    """)
    result = run(pytester)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "*poolcheck: no_such_file.py: no such file",
        "*poolcheck: builtins:dict: dict has no get_conn or put_conn*",
        "*poolcheck: no check named 'sequential/bond' (checks are sequential/*",
    ])
    no_traceback(result)


def test_target_option_is_the_default_pool(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_option="""
        def test_pool(poolcheck):
            poolcheck.check(checks=["sequential/bound"])
    """)
    run(pytester, "--poolcheck-target", "poolcheck.pool:Pool").assert_outcomes(passed=1)
    skipped = run(pytester, "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*no pool to check*--poolcheck-target*"])


def test_bad_profile_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = run(pytester, "--poolcheck-profile", "fast")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*poolcheck profile 'fast': expected one of quick, ci, thorough"])


def test_costs_nothing_when_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="""
        import sys

        def test_checks_not_imported(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("poolcheck")
            assert "poolcheck.run.checks" not in sys.modules
            assert "poolcheck.load.targets" not in sys.modules
    """)
    run(pytester).assert_outcomes(passed=1)
