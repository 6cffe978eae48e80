"""What the pool's process may tell the grader: plain JSON, checked field by field.

The child process runs untrusted code, so everything it writes on its result pipe is
data to be checked, never code to be run: frames are length-prefixed JSON (never pickle),
limited in size, and every field is checked against what the parent itself knows (the
checks it asked for, the invariant of each, the reproduce line it would write). A frame
that fails a check ends the conversation: the checks still running are reported as
failed with the reason, never as passed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from poolcheck.causes import Cause
from poolcheck.errors import HistoryError, TokenError
from poolcheck.judge import linearize
from poolcheck.load.adapters import ADAPTERS
from poolcheck.model import Invariant
from poolcheck.observe.facts import Step
from poolcheck.observe.history import History, history_from_lines, history_lines
from poolcheck.observe.observations import BadFacts
from poolcheck.observe.wire import facts_from_json, steps_from_json
from poolcheck.run.checks import (
    STRESS_ROUNDS,
    CheckResult,
    all_checks,
    reproduce_command,
)
from poolcheck.run.verify import JUDGED
from poolcheck.settings import CONFIGURATIONS, LINEARIZE_BUDGET

FRAME_LIMIT = 8 * 1024 * 1024  # bytes in one frame: a report with a long history fits
MESSAGE_LIMIT = 256 * 1024  # characters of one check's message
HEADER = 8  # the frame's length, big-endian
KINDS = frozenset({"load_error", "loaded", "start", "result", "round", "history", "example",
                   "controlled", "done"})
HISTORY_KINDS = frozenset({"stress", "parallel", "controlled"})

STATUSES = frozenset({"passed", "failed", "error", "timeout"})


class BadFrame(Exception):
    """The child sent something that is not a frame of this protocol; says what."""


# -- the child's side ----------------------------------------------------------------------


def frame(kind: str, body: object) -> bytes:
    data = json.dumps({"kind": kind, "body": body}, allow_nan=False).encode()
    return len(data).to_bytes(HEADER, "big") + data


def result_body(result: CheckResult) -> dict[str, Any]:
    body = result.as_json()
    if result.evidence is not None:
        body["history"] = history_lines(result.evidence[0])
    return body


# -- the parent's side ---------------------------------------------------------------------


@dataclass
class Context:
    """What the parent knows and the child must agree with."""

    spec: str  # TARGET as the parent was asked to load it
    seed: int
    profile: str
    asked: frozenset[str]  # the checks this child was asked to run
    observe: bool = False  # it was asked for every stress round's facts (a stress check
    # or a user invariant was asked for)
    record: bool = False  # it was asked for every history (--record)
    command_spec: str = ""  # TARGET as reports name it, once the child has loaded it


def frame_length(head: bytes) -> int:
    length = int.from_bytes(head, "big")
    if length > FRAME_LIMIT:
        raise BadFrame(f"a frame of {length} bytes (the limit is {FRAME_LIMIT})")
    return length


def parse(data: bytes, context: Context) -> tuple[str, Any]:
    """A frame's (kind, body), checked; BadFrame says what is wrong."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadFrame(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"kind", "body"}:
        raise BadFrame("not a frame of this protocol")
    kind, body = doc["kind"], doc["body"]
    if kind not in KINDS:
        raise BadFrame(f"unknown kind {kind!r}")
    if kind == "load_error":
        return kind, _text(body, "load error", 4096)
    if kind == "loaded":
        return kind, _command_spec(body, context.spec)
    if kind == "start":
        rounds_only = context.observe and body == [STRESS_ROUNDS]
        if not isinstance(body, list) or not body or (not rounds_only and any(
                n not in context.asked for n in body)):
            raise BadFrame("a start frame naming checks that were not asked for")
        return kind, list(body)
    if kind == "round":
        if not context.observe:
            raise BadFrame("a round's facts, which were not asked for")
        try:
            return kind, facts_from_json(body)
        except BadFacts as exc:
            raise BadFrame(f"a round's facts: {exc}") from None
    if kind == "example":
        return kind, _example(body, context)
    if kind == "controlled":
        if not any(n.startswith("controlled/") for n in context.asked):
            raise BadFrame("a controlled run's facts, which were not asked for")
        try:
            return kind, facts_from_json(body)
        except BadFacts as exc:
            raise BadFrame(f"a controlled run's facts: {exc}") from None
    if kind == "history":
        if not isinstance(body, dict) or set(body) != {"kind", "lines"} or \
                body["kind"] not in HISTORY_KINDS:
            raise BadFrame("a history frame that is not {kind, lines}")
        if not context.record and JUDGED.get(body["kind"]) not in context.asked:
            raise BadFrame("a history, which was not asked for")
        lines = body["lines"]
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            raise BadFrame("a history that is not a list of lines")
        try:
            return kind, (body["kind"], history_from_lines(lines))
        except HistoryError as exc:
            raise BadFrame(f"a malformed history ({exc})") from None
    if kind == "result":
        return kind, _result(body, context)
    if body is not None:
        raise BadFrame("a done frame with a body")
    return kind, None


def _example(body: object, context: Context) -> tuple[str, int, bool, list[Step]]:
    """One sequential program's steps, for the grader to judge (``run.verify``)."""
    if not isinstance(body, dict) or set(body) != {"check", "maxsize", "block", "steps"}:
        raise BadFrame("an example that is not {check, maxsize, block, steps}")
    check, maxsize, block = body["check"], body["maxsize"], body["block"]
    if not isinstance(check, str) or not check.startswith("sequential/") or \
            check not in context.asked:
        raise BadFrame(f"the steps of a check that was not asked for: {check!r}")
    if (maxsize, block) not in CONFIGURATIONS:
        raise BadFrame(f"{check}: a configuration poolcheck does not run")
    try:
        return check, maxsize, block, steps_from_json(body["steps"])
    except BadFacts as exc:
        raise BadFrame(f"{check}: steps: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise BadFrame(f"{what} is not text")
    if len(value) > limit:
        return value[:limit] + f"\n(cut at {limit} characters)"
    return value


def _command_spec(value: object, spec: str) -> str:
    """TARGET as the reports name it: the parent's own spec, with at most an adapter."""
    text = _text(value, "the target's name", 4096)
    if text == spec or (text.startswith(f"{spec} --adapter ")
                        and text[len(spec) + len(" --adapter "):] in ADAPTERS):
        return text
    raise BadFrame("the target's name is not the one the parent asked to load")


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value < 1e7):
        raise BadFrame(f"{what} is not a number of seconds")
    return float(value)


def _result(body: object, context: Context) -> CheckResult:
    if not isinstance(body, dict):
        raise BadFrame("a result that is not an object")
    known = {c.name: c for c in all_checks()}
    name = body.get("name")
    if name not in context.asked or name not in known:
        raise BadFrame(f"a result for a check that was not asked for: {name!r}")
    check = known[name]
    status = body.get("status")
    if status not in STATUSES:
        raise BadFrame(f"{name}: unknown status {status!r}")
    if body.get("invariant") != check.invariant.value:
        raise BadFrame(f"{name}: the wrong invariant")
    cause = body.get("cause")
    if cause is not None and cause not in {c.value for c in Cause}:
        raise BadFrame(f"{name}: unknown cause {cause!r}")
    found_after = body.get("found_after")
    reproduce = reproduce_command(context.command_spec or context.spec, name, context.seed,
                                  context.profile)
    if name.startswith("controlled/") and status == "failed":
        reproduce = _replay_line(body.get("reproduce"))
    result = CheckResult(
        name, Invariant(body["invariant"]), status, _text(body.get("message"), f"{name}: message",
                                             MESSAGE_LIMIT),
        reproduce, _seconds(body.get("seconds"), f"{name}: seconds"),
        found_after=None if found_after is None else _seconds(found_after, f"{name}: found_after"),
        cause=None if cause is None else Cause(cause))
    if "history" in body:
        result.evidence = _evidence(body["history"], name)
    return result


def _replay_line(value: object) -> str:
    from poolcheck.run.controlled import read_token

    text = _text(value, "the replay line", 1 << 20)
    token = text.removeprefix("poolcheck replay ")
    try:
        read_token(token)
    except TokenError as exc:
        raise BadFrame(f"the replay token does not read: {exc}") from None
    return f"poolcheck replay {token}"


def _evidence(lines: object, name: str) -> tuple[History, linearize.Result] | None:
    """The failing history, judged again here: the parent keeps it only if its own
    linearizability check rejects it too."""
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise BadFrame(f"{name}: a history that is not a list of lines")
    try:
        history = history_from_lines(lines)
    except HistoryError as exc:
        raise BadFrame(f"{name}: a malformed history ({exc})") from None
    result = linearize.check(history, LINEARIZE_BUDGET)
    return (history, result) if result.verdict == linearize.NOT_LINEARIZABLE else None
