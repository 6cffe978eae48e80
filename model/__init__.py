"""The sequential reference model: the contract's section 2 as a plain program.

Porcupine-style: an initial ``State`` and ``step(state, call)``, which returns the next
state when the call's outcome is allowed, or a ``Rejected`` that names the invariant the
outcome breaks. No threads, no clocks: every concurrent check reduces to this.
"""

from poolcheck.model.invariants import Invariant
from poolcheck.model.spec import (
    CLOSED,
    EMPTY,
    OK,
    Call,
    Rejected,
    State,
    allowed_get_outcomes,
    forget,
    initial,
    step,
)

__all__ = [
    "CLOSED",
    "EMPTY",
    "OK",
    "Call",
    "Invariant",
    "Rejected",
    "State",
    "allowed_get_outcomes",
    "forget",
    "initial",
    "step",
]
