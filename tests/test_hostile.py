"""Submissions written to cheat or harm, against the channel from the pool's process.

What the child sends is data, checked field by field (``poolcheck.app.channel``): a pickle
is not run, a frame that does not parse ends the conversation, and a check the child never
reported is failed, never passed. Honest submissions graded alongside are unaffected.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from poolcheck.app.isolation import FILE_SIZE, MEMORY_MB, OPEN_FILES, run_isolated
from poolcheck.causes import Cause
from poolcheck.settings import PROFILES

TINY = replace(PROFILES["quick"], examples=3, steps=5, stress_seconds=2, shrink_seconds=1,
               parallel_seconds=1)
ONLY = ["sequential/bound", "sequential/exclusive"]
# Code a submission runs when it is imported: it finds the result pipe from its arguments.
PIPE = """
import json, os, pickle, sys
from poolcheck.pool import Pool
FD = json.loads(sys.argv[-1])["fd"]
ARGS = json.loads(sys.argv[-1])

def write(data):
    os.write(FD, len(data).to_bytes(8, "big") + data)

def frame(kind, body):
    write(json.dumps({"kind": kind, "body": body}).encode())
"""


def _submission(tmp_path: Path, body: str) -> str:
    path = tmp_path / "submission.py"
    path.write_text(PIPE + body)
    return f"{path}:Pool"


def test_a_pickle_on_the_pipe_runs_no_code_in_the_grader(tmp_path: Path) -> None:
    marker = tmp_path / "ran-in-the-grader"
    spec = _submission(tmp_path, f'''
class Payload:
    def __reduce__(self):
        return (open, ({str(marker)!r}, "w"))

write(pickle.dumps(("loaded", Payload())))
os._exit(0)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert not marker.exists()
    assert outcome.load_error is not None and "cannot accept" in outcome.load_error
    assert not any(r.status == "passed" for r in outcome.results)


def test_forged_frames_after_loading_pass_nothing(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
frame("loaded", ARGS["spec"])
frame("start", ["sequential/bound"])
frame("result", {"name": "sequential/bound", "invariant": "timeout", "status": "passed",
                 "message": "", "reproduce": "rm -rf ~", "seconds": 0.1})
os._exit(0)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert outcome.load_error is None
    assert [r.status for r in outcome.results] == ["failed", "failed"]
    assert "cannot accept" in outcome.results[0].message  # the wrong invariant
    assert all("rm -rf" not in r.reproduce for r in outcome.results)


def test_done_without_results_is_no_pass(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
frame("loaded", ARGS["spec"])
frame("done", None)
os._exit(0)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert [r.status for r in outcome.results] == ["failed", "failed"]
    assert all("without a result" in r.message for r in outcome.results)


def test_a_giant_frame_is_refused_before_it_is_read(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
os.write(FD, (1 << 40).to_bytes(8, "big"))
os._exit(0)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert outcome.load_error is not None and "bytes (the limit is" in outcome.load_error


def test_an_honest_pool_still_passes(tmp_path: Path) -> None:
    spec = _submission(tmp_path, "")
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert [r.status for r in outcome.results] == ["passed", "passed"]


def test_round_facts_nobody_asked_for_are_refused(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
frame("loaded", ARGS["spec"])
frame("round", {"seed": 1})
os._exit(0)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert [r.status for r in outcome.results] == ["failed", "failed"]
    assert "which were not asked for" in outcome.results[0].message


# -- the grader judges the stress rounds itself -------------------------------------------

# A pool that never closes anything: every round leaves its connections open (no-leak).
LEAKY = """
from poolcheck.pool import Pool as _Pool

class Pool(_Pool):
    def close(self):
        pass
"""
NO_LEAK = ["stress/no-leak"]


def _leaky(tmp_path: Path, tamper: str) -> str:
    path = tmp_path / "leaky.py"
    path.write_text(LEAKY + tamper)
    return f"{path}:Pool"


def test_the_leak_is_found_when_nobody_tampers(tmp_path: Path) -> None:
    outcome = run_isolated(_leaky(tmp_path, ""), "auto", TINY, 1, NO_LEAK)
    assert [r.status for r in outcome.results] == ["failed"]
    assert outcome.results[0].cause is not Cause.INCONSISTENT


def test_silencing_the_judges_in_the_pools_process_passes_nothing(tmp_path: Path) -> None:
    spec = _leaky(tmp_path, """
import poolcheck.run.rounds
poolcheck.run.rounds.judge = lambda result: []  # the child now sees no violation at all
""")
    outcome = run_isolated(spec, "auto", TINY, 1, NO_LEAK)
    [result] = outcome.results
    assert result.status == "failed"
    assert result.cause is Cause.INCONSISTENT
    assert "still open" in result.message and "reported this check as passed" in result.message


def test_rounds_other_than_those_asked_for_pass_nothing(tmp_path: Path) -> None:
    spec = _leaky(tmp_path, """
import poolcheck.run.rounds
poolcheck.run.rounds.judge = lambda result: []
poolcheck.run.rounds.round_seed = lambda seed, index: 7  # one easy round, over and over
""")
    [result] = run_isolated(spec, "auto", TINY, 1, NO_LEAK).results
    assert result.status == "failed" and result.cause is Cause.INCONSISTENT
    assert "not the rounds asked for" in result.message


def test_a_pass_without_the_facts_of_any_round_is_no_pass(tmp_path: Path) -> None:
    spec = _leaky(tmp_path, """
import poolcheck.run.checks as checks

def no_rounds(target, profile, seed, chosen, *args, **kwargs):
    return [checks.CheckResult(c.name, c.invariant, "passed", "fine", "", 0.1)
            for c in chosen]

checks.run_stress_checks = no_rounds
""")
    [result] = run_isolated(spec, "auto", TINY, 1, NO_LEAK).results
    assert result.status == "failed" and result.cause is Cause.INCONSISTENT
    assert "facts of no round" in result.message


# The catalogue's pool that still hands out connections after close(): no history with a
# get after the close is linearizable.
CLOSED_HANDS_OUT = Path(__file__).resolve().parents[1] / "examples" / "buggy" / \
    "closed_pool_hands_out.py"
BLIND = """
import poolcheck.judge.linearize as linearize
_real = linearize.check
linearize.check = lambda history, *args: _real(type(history)(history.pool, ()), *args)
"""


def test_blinding_the_linearizability_checker_in_the_pools_process_passes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "blind.py"
    path.write_text(CLOSED_HANDS_OUT.read_text() + BLIND)
    checks = ["parallel/linearizable", "controlled/linearizable"]
    outcome = run_isolated(f"{path}:Pool", "auto", TINY, 1, checks)
    assert [r.status for r in outcome.results] == ["failed", "failed"]
    for result in outcome.results:
        assert result.cause is Cause.INCONSISTENT
        assert ("histories it recorded is not linearizable" in result.message
                or "the facts of one of its runs show this violation" in result.message)
        assert result.evidence is not None  # the history, judged here, is the evidence


CLOSE_LEAVES_IDLE_OPEN = CLOSED_HANDS_OUT.with_name("close_leaves_idle_open.py")


def test_silencing_the_sequential_judge_in_the_pools_process_passes_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "silent.py"
    path.write_text(CLOSE_LEAVES_IDLE_OPEN.read_text() + """
import poolcheck.judge.steps
poolcheck.judge.steps.StepJudge.observe = lambda self, step: None
""")
    [result] = run_isolated(f"{path}:Pool", "auto", TINY, 1, ["sequential/no-leak"]).results
    assert result.status == "failed" and result.cause is Cause.INCONSISTENT
    assert "close() left idle connection(s)" in result.message
    assert "the steps it recorded show this violation" in result.message


def test_steps_of_a_check_that_is_not_running_are_refused(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
frame("loaded", ARGS["spec"])
frame("start", ["sequential/bound"])
frame("example", {"check": "sequential/exclusive", "maxsize": 1, "block": False,
                  "steps": []})
frame("result", {"name": "sequential/bound", "invariant": "bound", "status": "passed",
                 "message": "", "reproduce": "", "seconds": 0.1})
os._exit(0)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert [r.status for r in outcome.results] == ["failed", "failed"]
    assert "a check that was not running" in outcome.results[0].message


def test_an_output_flood_is_stopped(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
chunk = "x" * 65536
while True:
    sys.stdout.write(chunk)
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert outcome.load_error is not None and "printed more than 64 MiB" in outcome.load_error
    assert len(outcome.load_error) < 4000  # only the tail is kept


def test_the_limits_hold_before_the_pool_is_imported(tmp_path: Path) -> None:
    spec = _submission(tmp_path, '''
import resource
raise RuntimeError("limits " + " ".join(
    str(resource.getrlimit(getattr(resource, name))[1])
    for name in ("RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CPU", "RLIMIT_CORE")))
''')
    outcome = run_isolated(spec, "auto", TINY, 1, ONLY)
    assert outcome.load_error is not None
    limits = [int(x) for x in outcome.load_error.split("limits ")[1].split()[:5]]
    memory, files, size, cpu, core = limits
    assert memory == MEMORY_MB * 2**20 and files <= OPEN_FILES and size == FILE_SIZE
    assert 0 < cpu < 3600 and core == 0
