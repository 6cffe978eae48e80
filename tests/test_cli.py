"""`poolcheck check`: exit codes 0/1/2, one clear line for bad input, the JSON of the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from poolcheck.app.cli import main

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--check", "sequential/no-leak", "--check", "sequential/bound"]


def test_bundled_pool_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["check", "--seed", "5", "--json", str(out), *FAST]) == 0
    doc = json.loads(out.read_text())
    assert doc["target"] == "poolcheck.pool:Pool" and doc["verdict"] == "pass" and doc["seed"] == 5
    assert [c["name"] for c in doc["checks"]] == ["sequential/bound", "sequential/no-leak"]
    for check in doc["checks"]:
        assert set(check) >= {"name", "invariant", "status", "message", "reproduce"}
        assert check["status"] == "passed"
    assert "2 of 2 checks passed (seed 5)" in capsys.readouterr().out


def test_buggy_pool_fails_with_reproduce_command(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out, gs = tmp_path / "r.json", tmp_path / "gradescope.json"
    target = "tests.sequential_bugs:CloseLeavesIdleOpen"
    code = main(["check", target, "--seed", "3", "--json", str(out), "--gradescope", str(gs),
                 *FAST])
    assert code == 1
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "fail"
    failed = [c for c in doc["checks"] if c["status"] == "failed"]
    assert [c["invariant"] for c in failed] == ["no-leak"]
    assert failed[0]["reproduce"] == (
        f"poolcheck check {target} --profile quick --seed 3 --check sequential/no-leak")
    text = capsys.readouterr().out
    assert "FAILED sequential/no-leak" in text and "close() left idle connection" in text
    grades = json.loads(gs.read_text())
    assert grades["score"] == 1.0
    assert {t["name"]: t["score"] for t in grades["tests"]} == {
        "sequential/bound": 1.0, "sequential/no-leak": 0.0}


BAD_FILES = {
    "syntax.py": ("class Pool:\n    def get_conn(self\n", "syntax error"),
    "noget.py": ("class Pool:\n    def put_conn(self, c): pass\n", "has no get_conn"),
    "boom.py": ("raise RuntimeError('nope')\n", "importing it raised RuntimeError: nope"),
    "sig.py": ("class Pool:\n    def __init__(self): pass\n    def get_conn(self): pass\n"
               "    def put_conn(self, c): pass\n", "cannot be called as"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unloadable_target_is_one_line_and_exit_2(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(source)
    out = tmp_path / "r.json"
    assert main(["check", f"{path}:Pool", "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert json.loads(out.read_text())["verdict"] == "error"


@pytest.mark.parametrize("args, expected", [
    (["check", "no/such/file.py:Pool"], "no such file"),
    (["check", "no_such_module_xyz:Pool"], "cannot import"),
    (["check", "poolcheck.pool:Nope"], "has no 'Nope'"),
    (["check", "poolcheck.pool:PoolError"], "has no get_conn"),
])
def test_unknown_targets(args: list[str], expected: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["check", "--seed", "x"], ["check", "--seed", "-1"], ["check", "--profile", "nope"],
    ["check", "--check", "nope"], ["frobnicate"],
])
def test_bad_arguments_exit_2(args: list[str]) -> None:
    try:
        code = main(args)  # a check name is checked once --invariants are loaded
    except SystemExit as exc:  # the others by argparse
        code = exc.code  # type: ignore[assignment]
    assert code == 2


def test_console_entry_point_runs_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-m", "poolcheck", "check", "poolcheck.pool:Pool", "--seed", "1",
         "--check", "sequential/exclusive"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "seed 1" in proc.stderr and "1 of 1 checks passed" in proc.stdout


def test_record_and_html_keep_the_failing_parallel_history(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from poolcheck.judge import linearize
    from poolcheck.observe.history import load_history

    folder, page = tmp_path / "histories", tmp_path / "fail.html"
    target = f"{ROOT}/examples/buggy/count_outside_lock.py:Pool"
    code = main(["check", target, "--profile", "ci", "--seed", "4", "--check",
                 "parallel/linearizable", "--record", str(folder), "--html", str(page)])
    assert code == 1
    files = sorted(folder.glob("parallel-*.jsonl"))
    assert files and not list(folder.glob("stress-*"))  # only the check that ran
    verdicts = {linearize.check(load_history(f)).verdict for f in files}
    assert linearize.NOT_LINEARIZABLE in verdicts  # the failure is among them
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "not linearizable" in html
    assert f"recorded {len(files)} histories" in capsys.readouterr().err


@pytest.mark.parametrize("existing", ["file", "histories"])
def test_record_refuses_a_file_or_a_used_folder(tmp_path: Path, existing: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    where = tmp_path / "out"
    if existing == "file":
        where.write_text("")
    else:
        where.mkdir()
        (where / "stress-000001.jsonl").write_text("")
    assert main(["check", "--record", str(where), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--record {where}" in err[0]


def test_html_without_a_failing_history_says_so(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "p.html"
    assert main(["check", "--seed", "1", "--html", str(page), *FAST]) == 0
    assert not page.exists() and "no failing history to draw" in capsys.readouterr().err


def test_exitfirst_stops_at_the_first_failure(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    spec = f"{ROOT}/examples/buggy/nonblock_keeps_all.py:Pool"
    args = ["check", spec, "--seed", "1", "--json", str(out), "--check", "sequential/bound",
            "--check", "sequential/exclusive", "--check", "sequential/no-leak"]
    assert main([*args, "-x"]) == 1
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "fail"
    assert [(c["name"], c["status"]) for c in doc["checks"]] == [("sequential/bound", "failed")]
    assert main(args) == 1  # without -x the others run too
    assert len(json.loads(out.read_text())["checks"]) == 3
