"""The model on hand-written calls: what it allows and what it rejects, by invariant."""

import pytest
from poolcheck import model
from poolcheck.model import CLOSED, EMPTY, Call, Rejected, State


def run(state: State, *calls: Call) -> State:
    for call in calls:
        result = model.step(state, call)
        assert isinstance(result, State), result
        state = result
    return state


def rejected_as(result: State | Rejected) -> str:
    assert isinstance(result, Rejected), result
    return result.invariant


def test_reuse_any_idle_connection() -> None:
    s = run(model.initial(2, True), Call("get", 1), Call("get", 2),
            Call("put", 1, kept=True), Call("put", 2, kept=True))
    assert s.idle == {1, 2}
    assert isinstance(model.step(s, Call("get", 1)), State)
    assert isinstance(model.step(s, Call("get", 2)), State)
    assert model.allowed_get_outcomes(s) == {"reuse:1", "reuse:2"}


def test_block_full_pool_allows_only_empty() -> None:
    s = run(model.initial(1, True), Call("get", 1))
    assert model.allowed_get_outcomes(s) == {EMPTY}
    assert rejected_as(model.step(s, Call("get", 2))) == "bound"
    assert rejected_as(model.step(s, Call("get", 1))) == "exclusive"
    assert model.step(s, Call("get", outcome=EMPTY)) == s


def test_empty_with_room_breaks_capacity() -> None:
    s = model.initial(2, True)
    assert rejected_as(model.step(s, Call("get", outcome=EMPTY))) == "capacity"
    s1 = run(s, Call("get", 1), Call("discard", 1))
    assert rejected_as(model.step(s1, Call("get", outcome=EMPTY))) == "capacity"


def test_nonblock_never_empty_and_keeps_at_most_maxsize() -> None:
    s = run(model.initial(1, False), Call("get", 1), Call("get", 2), Call("put", 1, kept=True))
    assert rejected_as(model.step(s, Call("get", outcome=EMPTY))) == "errors"
    assert rejected_as(model.step(s, Call("put", 2, kept=True))) == "bound"
    assert isinstance(model.step(s, Call("put", 2, kept=False)), State)


def test_close() -> None:
    s = run(model.initial(2, True), Call("get", 1), Call("get", 2), Call("put", 1, kept=True),
            Call("close"))
    assert s.closed and not s.idle
    assert model.allowed_get_outcomes(s) == {CLOSED}
    assert rejected_as(model.step(s, Call("get", 3))) == "closed"
    assert rejected_as(model.step(s, Call("put", 2, kept=True))) == "closed"
    assert isinstance(model.step(s, Call("put", 2, kept=False)), State)
    assert rejected_as(model.step(model.initial(1, True), Call("get", outcome=CLOSED))) == "errors"


def test_factory_error_only_where_creating_is_allowed() -> None:
    s = model.initial(1, True)
    assert model.step(s, Call("get", outcome="ConnectionRefusedError")) == s
    full = run(s, Call("get", 1))
    assert rejected_as(model.step(full, Call("get", outcome="OSError"))) == "bound"


def test_returning_what_is_not_checked_out() -> None:
    s = run(model.initial(1, False), Call("get", 1), Call("put", 1, kept=True))
    assert rejected_as(model.step(s, Call("put", 1, kept=True))) == "exclusive"
    assert rejected_as(model.step(s, Call("discard", 7))) == "exclusive"


@pytest.mark.parametrize("closed_by", ["discard", "put"])
def test_handing_out_a_closed_connection(closed_by: str) -> None:
    s = run(model.initial(2, False), Call("get", 1), Call(closed_by, 1))  # type: ignore[arg-type]
    assert rejected_as(model.step(s, Call("get", 1))) == "closed"


def test_the_pool_may_evict_an_idle_connection_and_create_another() -> None:
    s = run(model.initial(1, True), Call("get", 1), Call("put", 1, kept=True))
    assert rejected_as(model.step(s, Call("get", 2))) == "bound"  # 1 is still idle
    s = run(s, Call("evict", 1), Call("get", 2))
    assert s.out == {2} and s.idle == frozenset()
    assert rejected_as(model.step(run(s, Call("put", 2, kept=True)), Call("get", 1))) == \
        "closed"  # an evicted connection is closed: never handed out again


def test_evicting_a_checked_out_connection_breaks_exclusive() -> None:
    s = run(model.initial(2, True), Call("get", 1))
    assert rejected_as(model.step(s, Call("evict", 1))) == "exclusive"
    assert model.step(s, Call("evict", 7)) == s  # never handed out: the pool's own
