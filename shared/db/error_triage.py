"""Which database errors are worth retrying: the one rule every consumer loop follows.

A transient error (the connection, the server's resources, an operator's restart, a lost
race) is retried with the same input, since the input is not at fault. Anything else the
database or the code raised is final for that input: the caller isolates the record or
member behind it instead of retrying it forever.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# SQLSTATE classes worth retrying: connection exceptions (08), insufficient resources (53),
# operator intervention such as a terminated backend or a restart (57), and the lost races
# of serialization failure and deadlock (40001, 40P01).
_RETRYABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


def is_transient(error: BaseException) -> bool:
    """Connection trouble and lost races are worth retrying; anything else the database said is final."""
    if isinstance(error, (OperationalError, InterfaceError, OSError, TimeoutError)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    return sqlstate in _RETRYABLE_SQLSTATES or sqlstate.startswith(_RETRYABLE_SQLSTATE_CLASSES)


def describe(error: BaseException) -> str:
    """The error's type (and SQLSTATE), never its message: messages can quote the values involved."""
    if isinstance(error, DBAPIError):
        cause = getattr(error.orig, "__cause__", None) or error.orig
        return f"{type(cause).__name__}, SQLSTATE {getattr(error.orig, 'sqlstate', '?')}"
    return type(error).__name__
