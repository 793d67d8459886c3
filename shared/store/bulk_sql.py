"""Set-based statements: one statement and one JSON parameter holding every row, whatever the batch size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, Text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.db.engine import dump_json

Key = tuple[str, str]

# Two text arrays ``:a`` and ``:b`` zipped into rows: how a batch of keys reaches PostgreSQL.
UNNEST_KEYS = "unnest(CAST(:a AS text[]), CAST(:b AS text[]))"


def key_arrays(keys: Sequence[Key]) -> dict[str, list[str]]:
    """The ``UNNEST_KEYS`` parameters, de-duplicated and sorted so row locks are taken in key order."""
    ordered = sorted(set(keys))
    return {"a": [k[0] for k in ordered], "b": [k[1] for k in ordered]}


def _value(table: Table, name: str, index: int) -> str:
    """Column ``name`` of the JSON row ``u.r`` (an array holding it at ``index``), back in its column's type."""
    kind = table.c[name].type
    if isinstance(kind, JSONB):
        return f"u.r->{index}"
    if isinstance(kind, ARRAY):  # a JSON null stays NULL, not an empty array
        elements = f"ARRAY(SELECT jsonb_array_elements_text(u.r->{index}))"
        return f"CASE WHEN jsonb_typeof(u.r->{index}) = 'array' THEN {elements} END"
    if isinstance(kind, Text):
        return f"u.r->>{index}"
    return f"CAST(u.r->>{index} AS {kind.compile(dialect=postgresql.dialect())})"  # type: ignore[no-untyped-call]


def rows_of(param: str = "rows") -> str:
    """The rows of the JSON parameter ``param`` (``json_rows``), each as ``u.r``."""
    return f"jsonb_array_elements(CAST(:{param} AS jsonb)) AS u(r)"


_ROWS = rows_of()


def insert_rows(table: Table, names: Sequence[str], param: str = "rows") -> str:
    """``INSERT ... SELECT`` from the rows of ``json_rows`` (sent as ``param``)."""
    values = ", ".join(_value(table, name, index) for index, name in enumerate(names))
    return f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {values} FROM {rows_of(param)}"


def row_value(table: Table, names: Sequence[str], name: str) -> str:
    """The SQL of column ``name``'s value in the JSON row ``u.r`` of ``names``' values."""
    return _value(table, name, list(names).index(name))


def update_rows(table: Table, names: Sequence[str], keys: Sequence[str]) -> str:
    """``UPDATE ... FROM`` the rows of ``json_rows``, rows known to exist, matched on ``keys``; stamps ``updated_at``.

    Cheaper than an upsert: no speculative insertion into the primary key's index first.
    """
    sets = ", ".join(f"{name} = {_value(table, name, i)}" for i, name in enumerate(names) if name not in keys)
    match = " AND ".join(f"t.{key} = {_value(table, key, names.index(key))}" for key in keys)
    return f"UPDATE {table.name} t SET {sets}, updated_at = now() FROM {_ROWS} WHERE {match}"


def upsert(table: Table, names: Sequence[str], keys: Sequence[str]) -> str:
    """``insert_rows`` that overwrites the rows already there and stamps ``updated_at`` (when the table has one)."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in keys)
    stamp = ", updated_at = now()" if "updated_at" in table.c else ""
    return f"{insert_rows(table, names)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}{stamp}"


def json_rows(rows: Sequence[Sequence[Any]], param: str = "rows") -> dict[str, str]:
    """The ``:rows`` parameter of the statements above: the batch as one JSON array of row arrays.

    One string for the driver to send, whatever the batch: an array per column would have
    it inspect every element on its own, which cost more than the rest of writing a member.
    JSON documents travel nested (a JSON text as ``orjson.Fragment``), amounts as decimal
    strings, times as RFC 3339.
    """
    return {param: dump_json(rows)}
