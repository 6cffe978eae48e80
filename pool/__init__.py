"""A small, thread-safe HTTP connection pool on ``http.client``."""

from poolcheck.pool.async_pool import AsyncPool
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
    "AsyncPool",
    "ClosedPoolError",
    "EmptyPoolError",
    "HostMismatchError",
    "Pool",
    "PoolError",
    "Response",
    "StreamingResponse",
]
