"""`poolcheck init`: the starter kit is written, never over a learner's work; the untouched
skeleton loads and fails cleanly, naming its TODOs; the exercise sheet names real checks."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from poolcheck.app.cli import main
from poolcheck.app.starter import FIRST_CHECKS, KIT_FILES, add_init_parser, kit_files
from poolcheck.run.checks import all_checks

KIT = Path(__file__).resolve().parent.parent / "stress" / "app" / "starter_kit"


def _init(folder: Path) -> int:
    """``poolcheck init folder`` through the parser that cli.py registers."""
    parser = argparse.ArgumentParser(prog="poolcheck")
    add_init_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["init", str(folder)])
    return int(args.run(args))


def test_the_kit_is_read_from_the_package() -> None:
    assert kit_files() == {name: (KIT / name).read_bytes() for name in KIT_FILES}


def test_init_writes_the_kit_then_refuses_to_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "new" / "learner"
    assert _init(folder) == 0
    for name in KIT_FILES:
        assert (folder / name).read_bytes() == (KIT / name).read_bytes()
    out = capsys.readouterr().out
    assert f"poolcheck check {folder / 'pool.py'} --check sequential/bound" in out

    (folder / "pool.py").write_text("# my work\n")
    assert _init(folder) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert "already exist" in captured.err and "Traceback" not in captured.err
    assert (folder / "pool.py").read_text() == "# my work\n"


def test_init_writes_nothing_when_one_file_exists(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "EXERCISE.md").write_text("my notes\n")
    assert _init(tmp_path) == 2
    assert not (tmp_path / "pool.py").exists()
    assert (tmp_path / "EXERCISE.md").read_text() == "my notes\n"
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_init_refuses_a_file_for_a_folder(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert _init(tmp_path / "f") == 2
    err = capsys.readouterr().err
    assert err == f"poolcheck: error: {tmp_path / 'f'}: exists and is not a folder\n"


def test_poolcheck_init_is_a_command(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(KIT_FILES)


def test_untouched_skeleton_loads_and_fails_cleanly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _init(tmp_path) == 0
    capsys.readouterr()
    code = main(["check", str(tmp_path / "pool.py"), "--seed", "1",
                 "--check", "sequential/bound", "--check", "sequential/errors"])
    captured = capsys.readouterr()
    assert code == 1
    assert "NotImplementedError" in captured.out and "TODO" in captured.out
    assert "FAILED sequential/errors" in captured.out
    assert "Traceback" not in captured.out + captured.err
    # nothing was handed out, so the bound check tested nothing: it must not pass
    assert "FAILED sequential/bound" in captured.out and "not exercised" in captured.out


def test_exercise_names_real_checks_and_every_step() -> None:
    sheet = (KIT / "EXERCISE.md").read_text()
    skeleton = (KIT / "pool.py").read_text()
    known = {c.name for c in all_checks()}
    named = set(re.findall(r"--check (\S+)", sheet))
    assert named and named <= known
    assert set(re.findall(r"`((?:sequential|stress|parallel)/[a-z-]+)`", sheet)) <= known
    steps = sorted(set(re.findall(r"^## Step (\d)", sheet, re.MULTILINE)))
    assert steps == ["1", "2", "3", "4", "5"]
    for step in steps:
        assert f"TODO (step {step})" in skeleton or step == "3"  # step 3's TODO is the learner's
    step1 = sheet.split("## Step 1")[1].split("## Step 2")[0]
    first = re.search(r"^poolcheck check pool\.py (.*)$", step1, re.MULTILINE)
    assert first is not None
    assert first.group(1) == " ".join(f"--check {name}" for name in FIRST_CHECKS)
