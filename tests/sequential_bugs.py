"""The bundled pool with one sequential bug each: the state machine must name the invariant."""

from __future__ import annotations

from typing import Any

from poolcheck.pool import Pool


class CloseLeavesIdleOpen(Pool):
    """close() forgets the idle connections instead of closing them."""

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._idle = {}
            self._cond.notify_all()


class NonBlockKeepsEverything(Pool):
    """block=False: every returned connection is kept, however many are idle."""

    def put_conn(self, conn: Any) -> None:
        if conn is not None and not self.block:
            with self._cond:
                if not self._closed:
                    self._idle[id(conn)] = conn
                    return
        super().put_conn(conn)


class FailedConnectKeepsSlot(Pool):
    """A factory that raises leaves its slot reserved for ever."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        factory = self._factory

        def leaky() -> Any:
            try:
                return factory()
            except Exception:
                with self._cond:
                    self._live += 1  # undoes the release get_conn is about to do
                raise

        self._factory = leaky


class CloseClosesCheckedOut(Pool):
    """close() also closes the connections callers still hold (they are due on return)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[Any] = []

    def get_conn(self, timeout: float | None = None) -> Any:
        conn = super().get_conn(timeout)
        self.handed.append(conn)
        return conn

    def close(self) -> None:
        super().close()
        for conn in self.handed:
            conn.close()


BUGS = {
    "CloseLeavesIdleOpen": "no-leak",
    "NonBlockKeepsEverything": "bound",
    "FailedConnectKeepsSlot": "capacity",
    "CloseClosesCheckedOut": "closed",
}
