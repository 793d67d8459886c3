"""The JSON documents of member and order rows, and the domain's typed records they hold.

Times are RFC 3339 text with their offset (``isoformat``), amounts decimal text
(``"30.00"``); a record keeps only the keys it has, as the rows have always held them, so
rows written before the records were typed read the same and are written back unchanged.
The domain only ever sees ``datetime``, ``Decimal`` and the records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

Document = dict[str, Any]
R = TypeVar("R")


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _amount(value: str | int | float | None) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def _put(document: Document, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, datetime):
        document[name] = value.isoformat()
    elif isinstance(value, Decimal):
        document[name] = str(value)
    else:
        document[name] = value


def times_from_json(document: Mapping[str, str] | None) -> dict[str, datetime]:
    """``profile_at`` and ``schedule_marks``: a business time by name."""
    return {name: datetime.fromisoformat(value) for name, value in (document or {}).items() if value}


def times_to_json(times: Mapping[str, datetime]) -> dict[str, str]:
    return {name: moment.isoformat() for name, moment in times.items()}


def time_list_from_json(document: Iterable[str] | None) -> list[datetime]:
    """``points_expiries``: ascending business times."""
    return [datetime.fromisoformat(value) for value in document or ()]


def time_list_to_json(times: Iterable[datetime]) -> list[str]:
    return [moment.isoformat() for moment in times]


def _reader(hint: object) -> Callable[[Any], Any]:
    """How a record's field is read from its JSON: times and amounts from text, the rest as stored."""
    if get_origin(hint) is list:
        return time_list_from_json
    kinds = set(get_args(hint)) | {hint}
    if datetime in kinds:
        return _time
    if Decimal in kinds:
        return _amount
    return lambda value: value


_READERS: dict[type[Any], tuple[tuple[str, Callable[[Any], Any]], ...]] = {}


def _readers(kind: type[Any]) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """Each field's name and reader, worked out once per record type."""
    readers = _READERS.get(kind)
    if readers is None:
        hints = get_type_hints(kind)
        readers = _READERS[kind] = tuple((field.name, _reader(hints[field.name])) for field in fields(kind))
    return readers


def records_from_json(kind: type[R], document: Mapping[str, Mapping[str, Any]] | None) -> dict[str, R]:
    """``refunds``, ``reviews`` or ``shipments`` of an order row: one record of ``kind`` by id."""
    readers = _readers(kind)
    return {
        key: kind(**{name: read(entry.get(name)) for name, read in readers}) for key, entry in (document or {}).items()
    }


def records_to_json(records: Mapping[str, Any]) -> dict[str, Document]:
    return {key: _document(record) for key, record in records.items()}


def _document(record: Any) -> Document:
    document: Document = {}
    for field in fields(record):
        value = getattr(record, field.name)
        if isinstance(value, list):
            document[field.name] = time_list_to_json(value)
        else:
            _put(document, field.name, value)
    return document
