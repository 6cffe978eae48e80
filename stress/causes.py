"""Why a check did not pass, when the run can say more than the invariant's name.

A judge, the sequential machine or the harness sets a cause from what it observed (an
exception's type, the steps the shrunk program took), never from a message's wording; the
explanation for learners is then a lookup on it (``poolcheck.report.explain``).
"""

from __future__ import annotations

from enum import Enum


class Cause(str, Enum):
    # the harness: no verdict on the pool itself
    PROCESS_STOPPED = "process-stopped"  # the pool's process crashed, exited or overran
    NOT_EXERCISED = "not-exercised"  # get_conn never handed out a connection
    NOT_IMPLEMENTED = "not-implemented"  # no close(), or NotImplementedError raised
    CANNOT_DRIVE = "cannot-drive"  # the controlled scheduler could not drive this pool
    NOT_COMPLETED = "not-completed"  # an earlier hang stopped this check
    INCONSISTENT = "inconsistent"  # the pool's process claimed what its own facts deny
    # the pool
    CLOSED_WHILE_HELD = "closed-while-held"  # closed a connection a caller still held
    LEAK_ON_BASEEXCEPTION = "leak-on-baseexception"  # a BaseException from the factory
    LEAK_ON_FACTORY_ERROR = "leak-on-factory-error"  # an Exception from the factory
    LEAK_ON_PUT_NONE = "leak-on-put-none"  # put_conn(None) did not free the slot
    CLOSE_LEFT_IDLE_OPEN = "close-left-idle-open"  # close() did not close idle ones
    CLOSE_WOKE_NOBODY = "close-woke-nobody"  # callers waiting at close() kept waiting
    EMPTY_TOO_EARLY = "empty-too-early"  # EmptyPoolError before the timeout had passed
    # the controlled scheduler: what the order of events, or the event loop, shows
    LOST_WAKEUP = "lost-wakeup"  # an untimed waiter waits for ever beside a free slot
    CANCELLED = "cancelled"  # the interrupt was an asyncio task's cancellation
    ACROSS_AWAIT = "across-await"  # tasks interleave only at awaits: a race spans one

    def __str__(self) -> str:
        return self.value
