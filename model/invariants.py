"""The contract's invariant names (docs/CONTRACT.md, section 3), as one type.

Every report, judge, explanation and grading config names an invariant by one of these
members, so a misspelt name is a type error, not a check that silently never fails. A
member is also its string (``Invariant.NO_LEAK == "no-leak"``), which is what JSON
reports and command lines carry.
"""

from __future__ import annotations

from enum import Enum


class Invariant(str, Enum):
    BOUND = "bound"  # never more than maxsize connections (block=True) or idle (block=False)
    EXCLUSIVE = "exclusive"  # a connection is held by one caller at a time
    NO_LEAK = "no-leak"  # every open connection is held or idle; after close(), none open
    CAPACITY = "capacity"  # after failures the pool still hands out maxsize at once
    CLOSED = "closed"  # after close(): ClosedPoolError, returned connections closed
    TIMEOUT = "timeout"  # EmptyPoolError no earlier than the timeout, and not much later
    WAKEUP = "wakeup"  # a waiter is served promptly when a connection or slot comes back
    DEADLOCK_FREE = "deadlock-free"  # no call hangs
    ERRORS = "errors"  # nothing raised but the contract's errors and the factory's
    LINEARIZABLE = "linearizable"  # every concurrent history has a sequential explanation
    # an exception delivered to a caller while it waits in get_conn loses no slot, leaks
    # no connection, swallows no wake-up and leaves the pool usable (controlled runs only)
    INTERRUPT_SAFE = "interrupt-safe"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, name: str) -> Invariant:
        """The member named ``name``; ValueError listing the names otherwise."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"no invariant named {name!r} (one of "
                             f"{', '.join(m.value for m in cls)})") from None
