"""The target runs in a child process: whatever it does, the checks report and poolcheck goes on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from poolcheck.app.cli import main
from poolcheck.app.isolation import run_isolated
from poolcheck.settings import PROFILES

TINY = replace(PROFILES["quick"], examples=3, steps=5, stress_seconds=2, shrink_seconds=1,
               parallel_seconds=1)
HEADER = """
import os, re, sys, threading
from poolcheck.pool import Pool as Correct

"""


def _submission(tmp_path: Path, body: str) -> str:
    path = tmp_path / "submission.py"
    path.write_text(HEADER + body)
    return f"{path}:Pool"


def test_a_crash_under_concurrency_fails_those_checks_and_the_others_report(
        tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
class Pool(Correct):
    def get_conn(self, timeout=None):
        if threading.active_count() > 4:  # only the stress rounds run this many threads
            os._exit(3)
        return super().get_conn(timeout)
''')
    only = ["sequential/bound", "stress/bound", "stress/exclusive"]
    outcome = run_isolated(spec, "auto", TINY, 1, only)
    assert outcome.load_error is None
    status = {r.name: r.status for r in outcome.results}
    assert status == {"sequential/bound": "passed", "stress/bound": "failed",
                      "stress/exclusive": "failed"}
    crashed = [r for r in outcome.results if r.status == "failed"]
    assert all("exited with code 3" in r.message for r in crashed)
    assert all(r.reproduce.endswith(f"--seed 1 --check {r.name}") for r in crashed)


def test_a_pool_that_holds_the_interpreter_is_stopped_by_the_parent(tmp_path: Path) -> None:
    """A regex that backtracks for ever holds the GIL: no watchdog inside can act."""
    spec = _submission(tmp_path, '''
class Pool(Correct):
    def __init__(self, *args, **kwargs):
        re.match(r"(a+)+$", "a" * 64 + "b")
        super().__init__(*args, **kwargs)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ["sequential/bound", "sequential/exclusive"],
                           margin=1.0)
    assert [r.status for r in outcome.results] == ["timeout", "timeout"]
    assert "did not finish within its time limit" in outcome.results[0].message


def test_megabytes_of_output_stay_out_of_the_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _submission(tmp_path, '''
class Pool(Correct):
    def get_conn(self, timeout=None):
        sys.stdout.write("x" * 100_000 + "\\n")
        return super().get_conn(timeout)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ["sequential/bound"])
    assert [r.status for r in outcome.results] == ["passed"]
    assert outcome.output_bytes > 1_000_000
    assert len(capsys.readouterr().out) < 1000


def test_the_memory_limit_turns_a_hog_into_a_reported_failure(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
class Pool(Correct):
    def __init__(self, *args, **kwargs):
        self.hoard = bytearray(64 * 1024 ** 3)
        super().__init__(*args, **kwargs)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ["sequential/errors"])
    assert [r.status for r in outcome.results] == ["failed"]
    assert "MemoryError" in outcome.results[0].message


@pytest.mark.parametrize(("body", "expected"), [
    ("os._exit(7)\n", "exited with code 7 while loading the target"),
    ("def broken(:\n", "syntax error"),
])
def test_a_target_that_cannot_load_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str) -> None:
    spec = _submission(tmp_path, body)
    assert main(["check", spec, "--check", "sequential/bound"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
