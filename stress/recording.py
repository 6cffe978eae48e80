"""Connections and a factory that record facts about the pool, never conclusions."""

from __future__ import annotations

import itertools
import threading


class ConnectFailed(ConnectionError):
    """What the recording factory raises when told to fail: the pool must let it through."""


class RecordingConnection:
    """A fake connection that knows whether it is closed and who is using it."""

    def __init__(self, ident: int) -> None:
        self.id = ident
        self.closed = False
        self.close_calls = 0
        self.user: int | None = None  # thread inside use(), if any

    def close(self) -> None:
        self.close_calls += 1
        self.closed = True

    def __repr__(self) -> str:
        return f"<connection #{self.id}{' closed' if self.closed else ''}>"


class RecordingFactory:
    """The pool's ``connection_factory``: numbers its connections and can be made to fail."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.created: list[RecordingConnection] = []
        self.fail_next = 0
        self.raised: list[BaseException] = []

    def __call__(self) -> RecordingConnection:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                err = ConnectFailed("connection refused (injected by poolcheck)")
                self.raised.append(err)
                raise err
            conn = RecordingConnection(next(self._ids))
            self.created.append(conn)
        return conn

    def owns(self, obj: object) -> bool:
        return isinstance(obj, RecordingConnection) and any(c is obj for c in self.created)

    def open_connections(self) -> list[RecordingConnection]:
        with self._lock:
            return [c for c in self.created if not c.closed]
