"""Explanations: chosen from what the run showed, with the learner's own lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from poolcheck.causes import Cause
from poolcheck.load.targets import load
from poolcheck.model import Invariant
from poolcheck.report.explain import checks_json, explain
from poolcheck.run.checks import CheckResult, Status, run_checks
from poolcheck.settings import PROFILES

ROOT = Path(__file__).resolve().parent.parent


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


def test_the_cause_not_the_wording_chooses_the_concept() -> None:
    capacity = _result("sequential/capacity", message="no word about the factory here")
    capacity.cause = Cause.LEAK_ON_FACTORY_ERROR
    explanation = explain(capacity, [capacity])
    assert explanation is not None and explanation.concept == "leaking on an exception path"
    # a stress round has no shrunk program: the same cause there says nothing of the path
    stress = _result("stress/capacity")
    stress.cause = Cause.LEAK_ON_FACTORY_ERROR
    explanation = explain(stress, [stress])
    assert explanation is not None and explanation.concept == "a lost slot"


@pytest.mark.parametrize("pool,cause,concept", [
    ("failed_connect_keeps_slot", Cause.LEAK_ON_FACTORY_ERROR, "leaking on an exception path"),
    ("baseexception_leaks_slot", Cause.LEAK_ON_BASEEXCEPTION,
     "leaking on an exception path (BaseException)"),
    ("put_none_forgets_slot", Cause.LEAK_ON_PUT_NONE, "a slot not given back by put_conn(None)"),
])
def test_the_shrunk_program_names_the_path_that_leaked(pool: str, cause: Cause,
                                                         concept: str) -> None:
    target = load(f"{ROOT}/examples/buggy/{pool}.py:Pool")
    [result] = run_checks(target, PROFILES["quick"], 1, only=["sequential/capacity"])
    assert result.status == "failed" and result.cause is cause, result.message
    explanation = explain(result, [result])
    assert explanation is not None and explanation.concept == concept


def test_a_controlled_deadlock_beside_a_free_slot_is_a_lost_wakeup() -> None:
    """The controlled run names the cause (``controlled._deadlock``): an untimed waiter
    beside a free slot; the explanation follows it, whatever the message says."""
    target = load(f"{ROOT}/examples/buggy/lost_wakeup.py:Pool")
    [result] = run_checks(target, PROFILES["quick"], 1, only=["controlled/deadlock-free"])
    assert result.status == "failed" and result.cause is Cause.LOST_WAKEUP, result.message
    result.message = "it broke"
    explanation = explain(result, [result])
    assert explanation is not None and explanation.concept == "lost wakeup"


def test_a_race_across_an_await_is_said_only_of_a_race() -> None:
    on_loop = _result("controlled/linearizable")
    on_loop.cause = Cause.ACROSS_AWAIT
    explanation = explain(on_loop, [on_loop])
    assert explanation is not None and "across an await" in explanation.concept
    alone = _result("sequential/bound")  # the pool breaks the contract one call at a time
    explanation = explain(on_loop, [alone, on_loop])
    assert explanation is not None and "one-caller-at-a-time" in explanation.concept


def test_a_history_of_calls_one_at_a_time_is_no_race() -> None:
    """A linearizability failure whose calls, up to the refused one, never overlapped needs
    no concurrency: it is not explained as a race, even when no sequential check ran."""
    from poolcheck.judge import linearize
    from poolcheck.observe.history import Event, History, Pool

    def verdict(get_at: float) -> CheckResult:  # two connections out at once, maxsize=1
        history = History(Pool(1, True), (Event(0, "get", 0.0, 1.0, conn=1),
                                          Event(1, "get", get_at, 3.0, conn=2)))
        result = linearize.check(history)
        assert result.verdict == linearize.NOT_LINEARIZABLE
        failed = _result("controlled/linearizable")
        failed.evidence = (history, result)
        return failed

    alone = verdict(2.0)  # the second get began after the first returned
    explanation = explain(alone, [alone])
    assert explanation is not None and "one-caller-at-a-time" in explanation.concept
    overlapping = verdict(0.5)  # ... while the first ran: a race
    explanation = explain(overlapping, [overlapping])
    assert explanation is not None and "no sequential order" in explanation.concept


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
