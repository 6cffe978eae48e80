"""The project's own synchronisation helpers: the pool's module never names threading."""

import threading
from typing import Any


def make_condition() -> Any:
    return threading.Condition(threading.Lock())
