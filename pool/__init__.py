"""A small, thread-safe HTTP connection pool on ``http.client``."""

from poolcheck.pool.pool import (
    ClosedPoolError,
    EmptyPoolError,
    HostMismatchError,
    Pool,
    PoolError,
    Response,
    StreamingResponse,
)

__all__ = [
    "ClosedPoolError",
    "EmptyPoolError",
    "HostMismatchError",
    "Pool",
    "PoolError",
    "Response",
    "StreamingResponse",
]
