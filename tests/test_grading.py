"""`poolcheck grade DIR`: every submission checked in isolation, scored, summarised."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from poolcheck.app.cli import main

CORRECT = "from poolcheck.pool import Pool as Correct\n\nclass Pool(Correct):\n    pass\n"
KEEPS_ALL = '''
from poolcheck.pool import Pool as Correct

class Pool(Correct):
    def put_conn(self, conn):  # keeps every connection, however many are idle
        if conn is None:
            return super().put_conn(conn)
        with self._cond:
            self._idle[id(conn)] = conn
'''
CRASHES = '''
import os
from poolcheck.pool import Pool as Correct

class Pool(Correct):
    def get_conn(self, timeout=None):
        os._exit(9)
'''
HANGS = '''
import threading
from poolcheck.pool import Pool as Correct

class Pool(Correct):
    def get_conn(self, timeout=None):
        threading.Event().wait()
'''
CHECKS = ["--check", "sequential/bound", "--check", "sequential/no-leak"]


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "ana.py").write_text(CORRECT)
    (folder / "ben.py").write_text(KEEPS_ALL)
    (folder / "cleo.py").write_text(CRASHES)
    (folder / "dev.py").write_text(HANGS)
    (folder / "eli").mkdir()
    (folder / "eli" / "pool.py").write_text("def broken(:\n")
    (folder / "fay").mkdir()
    (folder / "fay" / "notes.md").write_text("no code here")
    (folder / "README.txt").write_text("not a submission")
    return folder


def test_a_batch_grades_every_submission_whatever_it_does(
        batch: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grades"
    assert main(["grade", str(batch), "--seed", "1", "--jobs", "2", "--out", str(out),
                 *CHECKS]) == 1
    err = capsys.readouterr().err
    assert "skipped README.txt: not a .py file or a folder" in err
    with (out / "summary.csv").open() as stream:
        rows = {r["submission"]: r for r in csv.DictReader(stream)}
    assert {name: r["verdict"] for name, r in rows.items()} == {
        "ana": "pass", "ben": "fail", "cleo": "fail", "dev": "fail", "eli": "error",
        "fay": "error"}
    assert rows["ana"]["score"] == rows["ana"]["max_score"] == "2.0"
    assert rows["ben"]["failed_checks"] == "sequential/bound"
    assert "syntax error" in rows["eli"]["error"] and "no .py file" in rows["fay"]["error"]
    assert len({r["seed"] for r in rows.values()}) == len(rows)  # a seed each

    cleo = json.loads((out / "cleo.json").read_text())
    assert {c["status"] for c in cleo["checks"]} == {"failed"}
    assert "exited with code 9" in cleo["checks"][0]["message"]
    assert f"--seed {cleo['seed']} --check" in cleo["checks"][0]["reproduce"]
    dev = json.loads((out / "dev.json").read_text())
    assert {c["status"] for c in dev["checks"]} == {"error"}
    assert "the pool hangs" in dev["checks"][0]["message"]

    suites = {s.get("name"): s for s in ET.parse(out / "junit.xml").getroot()}
    assert set(suites) == set(rows)
    assert suites["ana"].get("failures") == "0" and suites["ben"].get("failures") == "1"
    assert suites["eli"].find("testcase/error") is not None
    html = (out / "summary.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html>") and "ben" in html


def test_the_same_batch_seed_gives_each_submission_the_same_seed(
        tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "ana.py").write_text(CORRECT)
    seeds = []
    for run in ("a", "b"):
        out = tmp_path / run
        assert main(["grade", str(folder), "--seed", "7", "--out", str(out),
                     "--check", "sequential/bound"]) == 0
        seeds.append(json.loads((out / "ana.json").read_text())["seed"])
    assert seeds[0] == seeds[1]


@pytest.mark.parametrize(("make", "expected"), [
    (lambda p: None, "no such folder"),
    (lambda p: p.mkdir(), "no submissions"),
])
def test_bad_folders_are_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object,
        expected: str) -> None:
    folder = tmp_path / "x"
    make(folder)  # type: ignore[operator]
    assert main(["grade", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]


def test_check_writes_junit(tmp_path: Path) -> None:
    path = tmp_path / "j.xml"
    assert main(["check", "--seed", "1", "--junit", str(path), *CHECKS]) == 0
    root = ET.parse(path).getroot()
    assert root.get("tests") == "2" and root.get("failures") == "0"
