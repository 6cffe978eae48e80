"""Submissions written to cheat or harm, against the channel from the pool's process.

What the child sends is data, checked field by field (``poolcheck.app.channel``): a pickle
is not run, a frame that does not parse ends the conversation, and a check the child never
reported is failed, never passed. Honest submissions graded alongside are unaffected.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from poolcheck.app.isolation import run_isolated
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
