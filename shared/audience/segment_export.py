"""A segment's members as exported: the member item, and its CSV and JSON-lines encodings.

One definition of the columns and their text for every exporter (the API's streamed
export, the operator command line), so a file written by either holds the same bytes for
the same members. Rows come from a server-side cursor a chunk at a time, as asyncpg
records or SQLAlchemy rows' ``_mapping``: anything that gives a column by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import orjson

from shared.audience.segment_query import MEMBER_FIELDS
from shared.domain.money import money

FORMATS = ("csv", "jsonl")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

CHUNK_ROWS = 1000  # rows read from the cursor, and written, at a time


class Columns(Protocol):
    """A row's columns by name: an ORM row's ``_mapping`` or an asyncpg record."""

    def __getitem__(self, name: str, /) -> Any: ...


def member_item(row: Columns) -> dict[str, Any]:
    """The member item of the segment's member pages and JSON-lines exports."""
    return {
        "member_id": row["member_id"],
        "tier": row["tier"],
        "stage": row["stage"],
        "net_spend": money(row["net_spend"]),
        "paid_orders": row["paid_orders"],
        "points_balance": row["points_balance"],
        "score": row["score"],
        "marketing_consent": row["marketing_consent"],
        "joined_at": row["joined_at"],
        "last_order_at": row["last_order_at"],
        "tags": list(row["tags"]),
    }


def _time_text(at: datetime | None) -> str:
    """As the JSON answers write it: RFC 3339, ``Z`` for UTC."""
    return "" if at is None else orjson.dumps(at, option=orjson.OPT_UTC_Z).decode()[1:-1]


_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def _csv_field(text: str) -> str:
    """RFC 4180: quoted (quotes doubled) when it holds a comma, a quote or a line break."""
    return '"' + text.replace('"', '""') + '"' if _NEEDS_QUOTES.search(text) else text


def _csv_line(member: Columns) -> str:
    return ",".join(
        (
            _csv_field(member["member_id"]),
            _csv_field(member["tier"] or ""),
            _csv_field(member["stage"] or ""),
            money(member["net_spend"]),
            str(member["paid_orders"]),
            str(member["points_balance"]),
            str(member["score"]),
            "true" if member["marketing_consent"] else "false",
            _time_text(member["joined_at"]),
            _time_text(member["last_order_at"]),
            _csv_field(" ".join(member["tags"])),
        )
    )


def csv_header() -> bytes:
    """RFC 4180's header row, CRLF-ended."""
    return (",".join(MEMBER_FIELDS) + "\r\n").encode()


def csv_chunk(rows: Iterable[Columns]) -> bytes:
    """Rows as CSV lines, CRLF line ends, fields with commas, quotes or line breaks quoted."""
    lines = [_csv_line(row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode() if lines else b""


def jsonl_chunk(rows: Iterable[Columns]) -> bytes:
    """Rows as JSON lines: each one the member item, times in RFC 3339 with ``Z`` for UTC."""
    return b"".join(orjson.dumps(member_item(row), option=orjson.OPT_UTC_Z) + b"\n" for row in rows)


def header(export_format: str) -> bytes:
    """What an export starts with: CSV's header row; nothing for JSON lines."""
    return csv_header() if export_format == "csv" else b""


def chunk(export_format: str, rows: Iterable[Columns]) -> bytes:
    return csv_chunk(rows) if export_format == "csv" else jsonl_chunk(rows)
