"""Which database errors the engagement consumer retries, and which isolate a record."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.db.error_triage import is_transient


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str | None, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("statement", {}, _DriverError(sqlstate), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "sqlstate",
    ["08003", "08006", "57P01", "53300", "40001", "40P01"],
    ids=[
        "connection_gone",
        "connection_failure",
        "admin_shutdown",
        "too_many_connections",
        "serialization",
        "deadlock",
    ],
)
def test_connection_trouble_and_lost_races_are_retried(sqlstate: str) -> None:
    assert is_transient(_wrapped(sqlstate))


@pytest.mark.parametrize(
    "sqlstate", ["22003", "22021", "23505", None], ids=["numeric_overflow", "bad_encoding", "unique", "unknown"]
)
def test_what_the_database_refuses_outright_is_not_retried(sqlstate: str | None) -> None:
    assert not is_transient(_wrapped(sqlstate))


def test_an_invalidated_connection_and_network_errors_are_retried() -> None:
    assert is_transient(_wrapped(None, invalidated=True))
    assert is_transient(OperationalError("statement", {}, _DriverError(None)))
    assert is_transient(ConnectionResetError())
    assert not is_transient(ValueError("a bug"))
