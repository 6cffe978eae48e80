"""The public API (``poolcheck.check``) and the one import root, as a new user meets them."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import poolcheck
import pytest
from poolcheck.pool import Pool

from examples.buggy.nonblock_keeps_all import Pool as NonBlockKeepsAll

ROOT = Path(__file__).resolve().parent.parent


def test_check_returns_results_for_a_class() -> None:
    results = poolcheck.check(Pool, checks="sequential/bound", seed=3)
    assert results.passed and results.verdict == "pass" and results.seed == 3
    assert [r.name for r in results] == ["sequential/bound"]
    assert results[0].invariant is poolcheck.Invariant.BOUND
    assert results.as_json()["checks"][0]["invariant"] == "bound"  # type: ignore[index]


def test_check_reports_a_failure_with_a_reproduce_line() -> None:
    results = poolcheck.check(NonBlockKeepsAll, checks=["sequential/bound"], seed=1)
    assert not results.passed and [r.name for r in results.failed] == ["sequential/bound"]
    assert "reproduce: poolcheck check" in results.report()


def test_check_in_a_child_process() -> None:
    spec = f"{ROOT}/examples/buggy/nonblock_keeps_all.py:Pool"
    results = poolcheck.check(spec, checks="sequential/bound", seed=1, isolate=True)
    assert results.verdict == "fail" and results.target == spec


@pytest.mark.parametrize("kwargs,match", [
    ({"checks": "sequential/bond"}, "no check named 'sequential/bond'"),
    ({"checks": []}, "no check named 'in checks=\\[\\]'"),
    ({"profile": "fast"}, "profile 'fast'"),
    ({"seed": -1}, "seed -1"),
    ({"adapter": "nope"}, "unknown adapter 'nope'"),
])
def test_bad_arguments_raise_one_error_type(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(poolcheck.PoolcheckError, match=match):
        poolcheck.check(Pool, **kwargs)  # type: ignore[arg-type]


def test_a_bad_target_is_a_load_error() -> None:
    with pytest.raises(poolcheck.LoadError, match="no such file"):
        poolcheck.check("no/such/file.py:Pool", checks="sequential/bound")
    with pytest.raises(poolcheck.UsageError, match="not a dict"):
        poolcheck.check(dict(), checks="sequential/bound")  # type: ignore[arg-type]


def test_every_error_is_a_poolcheck_error() -> None:
    for name in ("ConfigError", "HistoryError", "LoadError", "TokenError", "UsageError"):
        assert issubclass(getattr(poolcheck, name), poolcheck.PoolcheckError)
    assert set(poolcheck.__all__) <= set(dir(poolcheck)) | {"check", "Results", "CheckResult"}
    for name in poolcheck.__all__:
        assert getattr(poolcheck, name) is not None


def test_the_installed_distribution_has_one_top_level_name() -> None:
    where = Path(poolcheck.__file__).resolve().parent.parent
    if where == ROOT:
        pytest.skip("an editable install maps the folders at run time; tox installs a wheel")
    [dist] = [d for d in importlib.metadata.distributions(path=[str(where)])
              if d.metadata["Name"] == "poolcheck"]
    top = {str(f).split("/")[0] for f in dist.files or []}
    top = {name for name in top if not name.endswith(".dist-info") and name != ".."}
    assert top == {"poolcheck"}, top


LEARNER_POOL = '''
class Pool:
    """Keeps every connection: breaks bound in block=False."""
    def __init__(self, host, port=None, *, maxsize=1, block=False, timeout=None,
                 connection_factory=None):
        self.factory, self.idle = connection_factory, []
    def get_conn(self, timeout=None):
        return self.idle.pop() if self.idle else self.factory()
    def put_conn(self, conn):
        if conn is not None:
            self.idle.append(conn)
    def close(self):
        pass
'''
SHADOWS = "raise SystemExit('a learner file was imported by poolcheck itself')\n"


def test_a_learners_folder_shadows_nothing(tmp_path: Path) -> None:
    """A folder made by ``poolcheck init`` holds pool.py; learners also write model.py,
    stress.py and even poolcheck.py. None of them may change what poolcheck runs."""
    (tmp_path / "pool.py").write_text(LEARNER_POOL)
    for name in ("model.py", "stress.py", "poolcheck.py"):
        (tmp_path / name).write_text(SHADOWS)
    script = shutil.which("poolcheck", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-I", "-m", "poolcheck"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> tuple[int, dict[str, object]]:
        out = tmp_path / "report.json"
        proc = subprocess.run([*command, "check", *args, "--seed", "1", "--check",
                               "sequential/bound", "--json", str(out)],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert out.exists(), proc.stdout + proc.stderr
        return proc.returncode, json.loads(out.read_text())

    code, doc = run()
    assert code == 0 and doc["target"] == "poolcheck.pool:Pool" and doc["verdict"] == "pass"
    code, doc = run("pool.py:Pool")
    assert code == 1 and doc["target"] == "pool.py:Pool" and doc["verdict"] == "fail"
