"""Which failures mean "a store is unreachable right now" (retryable) rather than a bug."""

from __future__ import annotations

import pymongo.errors
import redis.exceptions
from sqlalchemy import exc as sa_exc

from backend.stores.queue.port import QueueUnavailable

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    QueueUnavailable,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    pymongo.errors.ConnectionFailure,
    sa_exc.TimeoutError,  # connection pool exhausted
)


def store_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    # SQLAlchemy marks "the connection went away" on the DBAPI error it wraps.
    return isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError)
    )
