"""`poolcheck init`: the starter kit is written, never over a learner's work; the untouched
skeleton loads and fails cleanly, naming its TODOs; the exercise sheet names real checks.
`poolcheck init --asyncio`: the same for the asyncio kit, and a pool built step by step as
its sheet says passes, at each step, the checks that step names."""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

import pytest
from poolcheck.app.cli import main
from poolcheck.app.starter import (
    ASYNCIO_FIRST_CHECKS,
    FIRST_CHECKS,
    KIT_FILES,
    add_init_parser,
    kit_files,
)
from poolcheck.load.targets import load
from poolcheck.run.checks import all_checks, default_checks, run_checks
from poolcheck.settings import PROFILES

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


# --- the asyncio kit: poolcheck init --asyncio ---------------------------------------------

ASYNC_KIT = KIT.parent / "starter_kit_asyncio"
ASYNC_STEPS = ["1", "2", "3", "4", "5", "6"]  # step 6 (level 4): cancellation


def _init_asyncio(folder: Path) -> int:
    parser = argparse.ArgumentParser(prog="poolcheck")
    add_init_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["init", "--asyncio", str(folder)])
    return int(args.run(args))


def test_the_asyncio_kit_is_read_from_the_package() -> None:
    assert kit_files(asynchronous=True) == {
        name: (ASYNC_KIT / name).read_bytes() for name in KIT_FILES}
    assert kit_files(asynchronous=True) != kit_files()


def test_init_asyncio_writes_its_kit_then_refuses_to_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "new" / "learner"
    assert _init_asyncio(folder) == 0
    for name in KIT_FILES:
        assert (folder / name).read_bytes() == (ASYNC_KIT / name).read_bytes()
    out = capsys.readouterr().out
    checks = " ".join(f"--check {name}" for name in ASYNCIO_FIRST_CHECKS)
    assert f"next: read {folder / 'EXERCISE.md'}, do step 1 in {folder / 'pool.py'}" in out
    assert f"  poolcheck check {folder / 'pool.py'} {checks}\n" in out
    assert "(the asyncio kit)" in out

    for name in KIT_FILES:  # either file, even the other kit's: nothing is written
        (folder / name).write_text("# my work\n")
        other = "EXERCISE.md" if name == "pool.py" else "pool.py"
        (folder / other).unlink()
        assert _init_asyncio(folder) == 2
        assert main(["init", str(folder)]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and len(captured.err.splitlines()) == 2
        assert "already exist" in captured.err and "Traceback" not in captured.err
        assert (folder / name).read_text() == "# my work\n"
        assert not (folder / other).exists()


def test_poolcheck_init_asyncio_is_a_command(tmp_path: Path) -> None:
    assert main(["init", "--asyncio", str(tmp_path / "a")]) == 0
    assert main(["init", str(tmp_path / "t")]) == 0
    for name in KIT_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (ASYNC_KIT / name).read_bytes()
        assert (tmp_path / "t" / name).read_bytes() == (KIT / name).read_bytes()


def test_untouched_asyncio_skeleton_loads_as_asyncio_and_fails_cleanly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _init_asyncio(tmp_path) == 0
    capsys.readouterr()
    target = load(str(tmp_path / "pool.py") + ":Pool")
    assert target.asynchronous
    code = main(["check", str(tmp_path / "pool.py"), "--seed", "1",
                 "--check", "sequential/bound", "--check", "sequential/errors"])
    captured = capsys.readouterr()
    assert code == 1
    assert "NotImplementedError" in captured.out and "TODO (step" in captured.out
    assert "FAILED sequential/errors" in captured.out
    assert "FAILED sequential/bound" in captured.out and "not exercised" in captured.out
    assert "Traceback" not in captured.out + captured.err


def _sheet_steps(sheet: str) -> dict[str, str]:
    """Each ``## Step N`` section of an exercise sheet, by N."""
    parts = re.split(r"^## Step (\d)\b.*$", sheet, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def _step_checks(section: str) -> list[str] | None:
    """The checks a step's ``poolcheck check pool.py ...`` line runs (None: the default)."""
    lines = re.findall(r"^poolcheck check pool\.py\b(.*)$", section, re.MULTILINE)
    assert len(lines) == 1, section
    return re.findall(r"--check (\S+)", lines[0]) or None


def test_asyncio_exercise_names_real_checks_and_every_step() -> None:
    sheet = (ASYNC_KIT / "EXERCISE.md").read_text()
    skeleton = (ASYNC_KIT / "pool.py").read_text()
    known = {c.name for c in all_checks()}
    assert set(re.findall(r"--check (\S+)", sheet)) <= known
    assert set(re.findall(r"`((?:sequential|stress|parallel|controlled)/[a-z-]+)`",
                          sheet)) <= known
    steps = _sheet_steps(sheet)
    assert list(steps) == ASYNC_STEPS
    assert "## Step 6 (level 4): cancellation" in sheet
    for step in steps:  # steps 3 and 6 change code that the learner wrote
        assert (f"TODO (step {step})" in skeleton) == (step not in ("3", "6"))
        named = re.search(r"\*\*Checks\.\*\*(.*?)\n\n", steps[step], re.DOTALL)
        assert named is not None, f"step {step} names no checks"
        for name in _step_checks(steps[step]) or []:
            assert f"`{name}`" in named.group(1), (step, name)
    assert _step_checks(steps["1"]) == list(ASYNCIO_FIRST_CHECKS)
    assert _step_checks(steps["5"]) is None  # all the default checks
    assert _step_checks(steps["6"]) == ["controlled/interrupt-safe"]
    assert "async def get_conn" in skeleton and "import threading" not in skeleton


# A learner's solution, step by step: each step's edits to the skeleton, in the order the
# sheet asks for them (the design of poolcheck.pool.AsyncPool: waiter futures, handed a
# connection, a slot, or a marker). Each `old` must be in the file exactly once.
ASYNC_SOLUTION: dict[str, list[tuple[str, str]]] = {
    "1": [
        ("        # TODO (step 1): the pool's state: a list of idle connections (no lock: see "
         "step 1).\n",
         "        self._idle: list[Any] = []  # newest last\n"),
        ('''        raise NotImplementedError(
            "TODO (step 1): block=False: reuse an idle connection, else make a new one")
''', '''        if self._idle:
            return self._idle.pop()
        return await self._factory()
'''),
        ('''        raise NotImplementedError(
            "TODO (step 1): keep the connection if fewer than maxsize are idle, else "
            "close it")
''', '''        if len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            conn.close()
'''),
    ],
    "2": [
        ("# import asyncio  # step 2 needs it\n# from collections import deque  # step 2 "
         "may want it\n",
         "import asyncio\nfrom collections import deque\n"),
        ("        # TODO (step 2): a count of the connections that exist, and a queue of "
         "waiters.\n",
         "        self._live = 0  # connections that exist, and slots being connected\n"
         "        self._waiters: deque[asyncio.Future[Any]] = deque()  # oldest first\n"),
        ('''        if self.block:
            raise NotImplementedError(
                "TODO (step 2): block=True: reuse an idle connection, else make one if "
                "fewer than maxsize exist, else wait for one to be handed to you")
        if self._idle:
            return self._idle.pop()
        return await self._factory()
''', '''        if self._idle:
            return self._idle.pop()
        if self.block and self._live >= self.maxsize:
            if timeout is not None:
                raise NotImplementedError("TODO (step 3): timeouts")
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            return await waiter
        self._live += 1
        return await self._factory()
'''),
        ('''        if len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            conn.close()
''', '''        if self._waiters:
            self._waiters.popleft().set_result(conn)
        elif len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            self._live -= 1
            conn.close()
'''),
    ],
    "3": [
        ("\n\ndef check_timeout", "\n\nTIMED_OUT = object()\n\n\ndef check_timeout"),
        ('''            if timeout is not None:
                raise NotImplementedError("TODO (step 3): timeouts")
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            return await waiter
''', '''            got = await self._wait(timeout)
            if got is TIMED_OUT:
                raise EmptyPoolError(f"nothing became free within {timeout} s")
            return got
'''),
        ('''        if self._waiters:
            self._waiters.popleft().set_result(conn)
        elif len(self._idle) < self.maxsize:
''', '''        if self._hand_on(conn):
            return
        if len(self._idle) < self.maxsize:
'''),
        ("    def put_conn(", '''    async def _wait(self, timeout: float | None) -> Any:
        if timeout is not None and timeout <= 0:
            return TIMED_OUT
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, self._expire, waiter)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(TIMED_OUT)

    def _hand_on(self, what: Any) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(what)
                return True
        return False

    def put_conn('''),
    ],
    "4": [
        ("\nTIMED_OUT = object()\n", "\nTIMED_OUT = object()\nSLOT = object()\n"),
        ('''                raise EmptyPoolError(f"nothing became free within {timeout} s")
            return got
        self._live += 1
        return await self._factory()
''', '''                raise EmptyPoolError(f"nothing became free within {timeout} s")
            if got is not SLOT:
                return got
        else:
            self._live += 1
        try:
            return await self._factory()
        except BaseException:
            self._free_slot()
            raise
'''),
        ('''            raise NotImplementedError(
                "TODO (step 4): put_conn(None): give back the slot of a broken connection")
''', '''            self._free_slot()
            return
'''),
        ("    def put_conn(", '''    def _free_slot(self) -> None:
        if not self._hand_on(SLOT):
            self._live -= 1

    def put_conn('''),
    ],
    "5": [
        ("\nSLOT = object()\n", "\nSLOT = object()\nCLOSED = object()\n"),
        ("        # TODO (step 5): a closed flag.\n", "        self._closed = False\n"),
        ('''            timeout = self.timeout
        if self._idle:
''', '''            timeout = self.timeout
        if self._closed:
            raise ClosedPoolError("the pool is closed")
        if self._idle:
'''),
        ('''            if got is TIMED_OUT:
''', '''            if got is CLOSED:
                raise ClosedPoolError("the pool was closed while we waited")
            if got is TIMED_OUT:
'''),
        ('''        if self._hand_on(conn):
            return
        if len(self._idle) < self.maxsize:
            self._idle.append(conn)
        else:
            self._live -= 1
            conn.close()
''', '''        if not self._closed:
            if self._hand_on(conn):
                return
            if len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        self._live -= 1
        conn.close()
'''),
        ('''        raise NotImplementedError(
            "TODO (step 5): close the pool: close idle connections, wake every waiter")
''', '''        self._closed = True
        idle, self._idle = self._idle, []
        self._live -= len(idle)
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(CLOSED)
        for conn in idle:
            conn.close()
'''),
    ],
    "6": [
        ('''            return await waiter
        finally:
''', '''            return await waiter
        except BaseException:  # cancelled: pass on what we were handed, if anything
            if waiter.done() and not waiter.cancelled():
                got = waiter.result()
                if got is SLOT:
                    self._free_slot()
                elif got is not TIMED_OUT and got is not CLOSED:
                    self.put_conn(got)
            else:
                waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            raise
        finally:
'''),
    ],
}
# brief: each step's checks in about a second (the shipped sheet's, on a finished pool);
# step 1 serves only block=False, and the rounds run each mode at least once however slow
# the machine (test_rounds.py)
ASYNC_BRIEF = replace(PROFILES["quick"], examples=3, steps=10, stress_seconds=0.3,
                      shrink_seconds=0, parallel_seconds=0.3)


def _solved(upto: str) -> str:
    """The skeleton with steps 1 to ``upto`` done."""
    text = (ASYNC_KIT / "pool.py").read_text()
    for step in ASYNC_STEPS[:ASYNC_STEPS.index(upto) + 1]:
        for old, new in ASYNC_SOLUTION[step]:
            assert text.count(old) == 1, f"step {step}: the skeleton changed: {old!r}"
            text = text.replace(old, new)
    return text


@pytest.mark.parametrize("step", ASYNC_STEPS)
def test_each_asyncio_step_passes_the_checks_it_names(tmp_path: Path, step: str) -> None:
    """Steps 1 to N done as the sheet says, later TODOs still raising: step N's checks
    pass (step 5's are all the default ones; step 6 adds controlled/interrupt-safe)."""
    source = _solved(step)
    assert not re.findall(rf"TODO \(step [1-{step}]\)", source)
    (tmp_path / "pool.py").write_text(source)
    target = load(f"{tmp_path / 'pool.py'}:Pool")
    assert target.asynchronous
    only = _step_checks(_sheet_steps((ASYNC_KIT / "EXERCISE.md").read_text())[step])
    results = run_checks(target, ASYNC_BRIEF, 11, only)
    assert {r.name for r in results} == set(only or default_checks())
    assert [(r.name, r.message) for r in results if r.status != "passed"] == []


def test_the_asyncio_steps_pitfalls_fail_their_checks(tmp_path: Path) -> None:
    """The checks can fail: a connect's slot freed in ``except Exception`` (step 4's
    pitfall) fails capacity; without step 6, a cancelled waiter loses what it was handed."""
    source = _solved("6")
    old = "        except BaseException:\n            self._free_slot()\n"
    assert source.count(old) == 1
    (tmp_path / "pitfall4.py").write_text(source.replace(old, old.replace("Base", "")))
    until_found = replace(ASYNC_BRIEF, examples=25, steps=25, shrink_seconds=0.5)
    [result] = run_checks(load(f"{tmp_path / 'pitfall4.py'}:Pool"), until_found, 11,
                          ["sequential/capacity"])
    assert result.status == "failed", result.message

    for old, new in ASYNC_SOLUTION["6"]:
        source = source.replace(new, old)
    (tmp_path / "no6.py").write_text(source)
    until_found = replace(ASYNC_BRIEF, parallel_seconds=10, shrink_seconds=0.5)
    [result] = run_checks(load(f"{tmp_path / 'no6.py'}:Pool"), until_found, 12,
                          ["controlled/interrupt-safe"])
    assert result.status == "failed" and "interrupted while it waited" in result.message
