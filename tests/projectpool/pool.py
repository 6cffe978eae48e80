"""A correct pool but for one line: a put_conn(None) frees the slot and notifies nobody."""

from typing import Any

from tests.projectpool.sync import make_condition


class ClosedPoolError(Exception):
    pass


class EmptyPoolError(Exception):
    pass


class Pool:
    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Any = None) -> None:
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory = connection_factory
        self._cond = make_condition()
        self._idle: list[Any] = []
        self._live = 0
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        with self._cond:
            while True:
                if self._closed:
                    raise ClosedPoolError("closed")
                if self._idle:
                    return self._idle.pop()
                if self._live < self.maxsize or not self.block:
                    self._live += 1
                    break
                if not self._cond.wait(timeout):
                    raise EmptyPoolError("timed out")
        try:
            return self._factory()
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            raise

    def put_conn(self, conn: Any) -> None:
        with self._cond:
            if conn is None:
                self._live -= 1  # the bug: no notify()
                return
            if self._closed or len(self._idle) >= self.maxsize:
                self._live -= 1
                conn.close()
                self._cond.notify()
                return
            self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()
