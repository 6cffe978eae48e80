"""Invariants users add without forking: ``@poolcheck.invariant("name")``.

    import poolcheck

    @poolcheck.invariant("closes-once")
    def closes_once(run):
        return [f"connection {c.id} closed {len(c.closes)} times"
                for c in run.connections if len(c.closes) > 1]

A user invariant is a function of one round's facts (``poolcheck.observe.observations.Run``)
that returns the violations it sees, as messages (none: it holds). It becomes the check
``stress/<name>``. It runs in poolcheck's own process on facts checked on their way in,
never in the process that runs the pool, so a pool cannot see or change it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from poolcheck.errors import LoadError
from poolcheck.model import Invariant
from poolcheck.observe.observations import Run

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}$")
Judge = Callable[[Run], Iterable[str]]


@dataclass(frozen=True)
class UserInvariant:
    """An invariant a user added: its name, the function, and where it was written."""

    name: str
    judge: Judge
    source: str  # file:line, for reports

    @property
    def check_name(self) -> str:
        return f"stress/{self.name}"

    def __str__(self) -> str:
        return self.name

    def violations(self, run: Run) -> list[str]:
        """What the function found in ``run``; its own exception is reported as one."""
        found = self.judge(run)
        if isinstance(found, str):  # a single message, not a list of them
            return [found]
        return [str(m) for m in found or ()]


_REGISTERED: list[UserInvariant] = []


def invariant(name: str) -> Callable[[Judge], Judge]:
    """Register the decorated function as the invariant ``name`` (check ``stress/name``)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(f"invariant name {name!r}: use lowercase letters, digits and dashes")
    if name in {i.value for i in Invariant}:
        raise ValueError(f"invariant name {name!r} is one of the contract's own")

    def register(fn: Judge) -> Judge:
        code = getattr(fn, "__code__", None)
        where = f"{code.co_filename}:{code.co_firstlineno}" if code else repr(fn)
        made = UserInvariant(name, fn, where)
        _REGISTERED.append(made)
        fn.__poolcheck_invariant__ = made  # type: ignore[attr-defined]
        return fn

    return register


def load_invariants(paths: Iterable[str | Path]) -> list[UserInvariant]:
    """The invariants the files register, in order; LoadError for a file that cannot be
    used (missing, failing to import, registering nothing, a name twice)."""
    found: list[UserInvariant] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise LoadError(f"--invariants {path}: no such file")
        before = len(_REGISTERED)
        name = f"poolcheck_invariants_{len(sys.modules)}_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise LoadError(f"--invariants {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise LoadError(f"--invariants {path}: importing it raised "
                            f"{type(exc).__name__}: {exc} (line {where.lineno})") from None
        added = _REGISTERED[before:]
        del _REGISTERED[before:]
        if not added:
            raise LoadError(f"--invariants {path}: it registers no invariant (decorate a "
                            "function with @poolcheck.invariant(\"name\"))")
        found += added
    names = [i.name for i in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LoadError(f"--invariants: {twice[0]!r} is registered twice")
    return found


def invariants_of(items: Iterable[object]) -> list[UserInvariant]:
    """User invariants from what a caller of ``poolcheck.check(invariants=...)`` passed:
    files that register them, or functions decorated with ``@poolcheck.invariant``."""
    found: list[UserInvariant] = []
    for item in items:
        if isinstance(item, (str, Path)):
            found += load_invariants([item])
        elif isinstance(getattr(item, "__poolcheck_invariant__", None), UserInvariant):
            found.append(item.__poolcheck_invariant__)  # type: ignore[attr-defined]
        else:
            raise LoadError(f"invariants: {item!r} is neither a file nor a function "
                            "decorated with @poolcheck.invariant(\"name\")")
    names = [i.name for i in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LoadError(f"invariants: {twice[0]!r} is registered twice")
    return found


def judge_round(invariants: Iterable[UserInvariant],
                run: Run) -> dict[str, tuple[Literal["failed", "error"], str]]:
    """What each invariant says of ``run``, by name, for those that found something: its
    first messages (failed), or, for a function that raised, where it raised (error)."""
    found: dict[str, tuple[Literal["failed", "error"], str]] = {}
    for inv in invariants:
        try:
            messages = inv.violations(run)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            found[inv.name] = ("error", f"the invariant itself raised {type(exc).__name__}: "
                                        f"{exc} ({frame.filename}:{frame.lineno})")
            continue
        if messages:
            found[inv.name] = ("failed", "\n".join(messages[:20]))
    return found
