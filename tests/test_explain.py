"""Explanations: chosen from what the run showed, with the learner's own lines."""

from __future__ import annotations

from poolcheck.model import Invariant
from poolcheck.report.explain import checks_json, explain
from poolcheck.run.checks import CheckResult, Status


def _result(name: str, status: Status = "failed", message: str = "it broke") -> CheckResult:
    return CheckResult(name, Invariant(name.split("/")[1]), status, message, "poolcheck check ...")


def test_a_bound_violation_only_under_concurrency_is_check_then_act() -> None:
    stress = _result("stress/bound")
    explanation = explain(stress, [_result("sequential/bound", "passed"), stress])
    assert explanation is not None and explanation.concept == "check-then-act"


def test_the_same_violation_alone_is_not_called_a_race() -> None:
    stress, alone = _result("stress/bound"), _result("sequential/bound")
    explanation = explain(stress, [alone, stress])
    assert explanation is not None and explanation.concept == "the limit is not enforced"


def test_the_shrunk_program_names_the_path_that_leaked() -> None:
    capacity = _result("sequential/capacity", message=(
        "get_conn raised EmptyPoolError with 0 idle and 1 of 2 connections in existence\n"
        "steps:\n  get_conn(timeout=0.0) -> ConnectFailed\n"))
    explanation = explain(capacity, [capacity])
    assert explanation is not None and explanation.concept == "leaking on an exception path"


def test_passed_checks_need_no_explanation() -> None:
    assert explain(_result("stress/bound", "passed"), []) is None


def test_the_learners_lines_are_picked_from_the_stacks() -> None:
    message = ('threads [1] wait in get_conn(timeout=None) for ever\n'
               '  File "/usr/lib/python3.11/threading.py", line 320, in wait\n'
               '    waiter.acquire()\n'
               '  File "/home/ana/pool.py", line 42, in get_conn\n'
               '    self._cond.wait()\n')
    hang = _result("stress/deadlock-free", message=message)
    explanation = explain(hang, [hang])
    assert explanation is not None
    assert explanation.where == ("pool.py:42 in get_conn: self._cond.wait()",)
    assert "pool.py:42" in explanation.text()


def test_json_carries_the_explanation_of_failures_only() -> None:
    docs = checks_json([_result("sequential/bound", "passed"), _result("stress/wakeup")])
    assert "explanation" not in docs[0]
    assert docs[1]["explanation"]["concept"] == "lost wakeup"  # type: ignore[index]
