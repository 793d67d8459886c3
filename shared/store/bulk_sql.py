"""Set-based statements: one statement and one array parameter per column, whatever the batch size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Table
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


def _array_type(column: Column[Any]) -> str:
    """The PostgreSQL array type a column's values travel in; JSON and arrays go as text."""
    kind = column.type
    if isinstance(kind, (JSONB, ARRAY)):
        return "text[]"
    return f"{kind.compile(dialect=postgresql.dialect())}[]"  # type: ignore[no-untyped-call]


def _value(table: Table, name: str) -> str:
    """Column ``name`` of the unnested row ``u``, back in its column's type."""
    kind = table.c[name].type
    if isinstance(kind, JSONB):
        return f"u.{name}::jsonb"
    if isinstance(kind, ARRAY):
        # A NULL stays NULL: a nullable array column (``orders.paid_categories``) tells "none given" from "empty".
        return f"CASE WHEN u.{name} IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(u.{name}::jsonb)) END"
    return f"u.{name}"


def _unnest(table: Table, names: Sequence[str]) -> str:
    arrays = ", ".join(f"CAST(:{name} AS {_array_type(table.c[name])})" for name in names)
    return f"unnest({arrays}) AS u({', '.join(names)})"


def unnest_insert(table: Table, names: Sequence[str]) -> str:
    """``INSERT ... SELECT FROM unnest(arrays)``."""
    values = ", ".join(_value(table, name) for name in names)
    return f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {values} FROM {_unnest(table, names)}"


def unnest_update(table: Table, names: Sequence[str], keys: Sequence[str]) -> str:
    """``UPDATE ... FROM unnest(arrays)`` of rows known to exist, matched on ``keys``; stamps ``updated_at``.

    Cheaper than an upsert: no speculative insertion into the primary key's index first.
    """
    sets = ", ".join(f"{name} = {_value(table, name)}" for name in names if name not in keys)
    match = " AND ".join(f"t.{key} = u.{key}" for key in keys)
    return f"UPDATE {table.name} t SET {sets}, updated_at = now() FROM {_unnest(table, names)} WHERE {match}"


def upsert(table: Table, names: Sequence[str], keys: Sequence[str]) -> str:
    """``unnest_insert`` that overwrites the rows already there and stamps ``updated_at``."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in keys)
    return f"{unnest_insert(table, names)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}, updated_at = now()"


def column_arrays(table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows (values in ``names`` order) turned into one array per column."""
    params: dict[str, list[Any]] = {}
    for index, name in enumerate(names):
        values = [row[index] for row in rows]
        kind = table.c[name].type
        if isinstance(kind, (JSONB, ARRAY)):
            # A str is taken to be JSON text already (e.g. a record's original bytes); a missing array is NULL.
            values = [
                value if isinstance(value, str) or (value is None and isinstance(kind, ARRAY)) else dump_json(value)
                for value in values
            ]
        params[name] = values
    return params
