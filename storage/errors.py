"""Driver and SQLAlchemy exceptions mapped to the error tree in one place (like httpx's map_exceptions).

A connection-level fault (server gone, connection dropped, pool exhausted) is StorageUnavailable: nothing was
written and the caller answers 503 / "sistem sedang gangguan". A refusal of one row's data is
StorageDataError (DataConflict for constraints): it belongs to the item that caused it, never to the others
written with it. Anything else (a ProgrammingError is our bug) passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa

from services.errors import DataConflict, StorageDataError, StorageUnavailable, TitipError

# SQLSTATE classes: 22 = data exception (value too long 22001, out of range 22003, invalid text 22P02),
# 23 = integrity constraint violation; 08 = connection exception, 57P0x = server shutting down,
# 53 = insufficient resources.
_DATA_CLASSES = ("22",)
_CONFLICT_CLASSES = ("23",)
_UNAVAILABLE_PREFIXES = ("08", "57P", "53")


def _sqlstate(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None), error):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return ""


def translate(error: BaseException) -> BaseException:
    """The error-tree exception for a database exception; `error` itself when it is not one of ours to map."""
    if isinstance(error, TitipError):
        return error
    if isinstance(error, sa.IntegrityError):
        return DataConflict(str(error.orig or error)[:300])
    if isinstance(error, (sa.DisconnectionError, sa.TimeoutError)):
        return StorageUnavailable(f"{type(error).__name__}: {error}"[:300])
    if isinstance(error, sa.DBAPIError):
        state = _sqlstate(error)
        if error.connection_invalidated or state.startswith(_UNAVAILABLE_PREFIXES):
            return StorageUnavailable(f"{type(error).__name__}: {error.orig}"[:300])
        if state.startswith(_CONFLICT_CLASSES):
            return DataConflict(str(error.orig)[:300])
        if isinstance(error, sa.DataError) or state.startswith(_DATA_CLASSES):
            return StorageDataError(str(error.orig)[:300])
        if isinstance(error, (sa.OperationalError, sa.InterfaceError)):
            return StorageUnavailable(f"{type(error).__name__}: {error.orig}"[:300])
        return error
    if isinstance(error, OverflowError):  # sqlite3: a Python int beyond 64 bits
        return StorageDataError(str(error)[:300])
    if isinstance(error, (ConnectionError, OSError, TimeoutError)):
        return StorageUnavailable(f"{type(error).__name__}: {error}"[:300])
    return error


def is_driver_error(error: BaseException) -> bool:
    return translate(error) is not error


@contextmanager
def mapped() -> Iterator[None]:
    """Re-raise database exceptions raised inside the block as the error tree's."""
    try:
        yield
    except Exception as error:
        mapped_error = translate(error)
        if mapped_error is error:
            raise
        raise mapped_error from error
