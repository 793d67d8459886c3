"""The JSON documents of member and order rows, and the domain's typed records they hold.

Times are RFC 3339 text with their offset (``isoformat``), amounts decimal text
(``"30.00"``); a record keeps only the keys it has, as the rows have always held them, so
rows written before the records were typed read the same and are written back unchanged.
The domain only ever sees ``datetime``, ``Decimal`` and the records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.domain.model import RefundRecord, ReviewRecord, ShipmentRecord

Document = dict[str, Any]


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


def refunds_from_json(document: Mapping[str, Mapping[str, Any]] | None) -> dict[str, RefundRecord]:
    return {
        refund_id: RefundRecord(
            status=entry.get("status"),
            status_at=_time(entry.get("status_at")),
            amount=_amount(entry.get("amount")),
            completed_at=_time(entry.get("completed_at")),
            completed_amount=_amount(entry.get("completed_amount")),
            applied=_amount(entry.get("applied")),
        )
        for refund_id, entry in (document or {}).items()
    }


def refunds_to_json(refunds: Mapping[str, RefundRecord]) -> dict[str, Document]:
    documents = {}
    for refund_id, record in refunds.items():
        document: Document = {}
        _put(document, "status", record.status)
        _put(document, "status_at", record.status_at)
        _put(document, "amount", record.amount)
        _put(document, "completed_at", record.completed_at)
        _put(document, "completed_amount", record.completed_amount)
        _put(document, "applied", record.applied)
        documents[refund_id] = document
    return documents


def shipments_from_json(document: Mapping[str, Mapping[str, Any]] | None) -> dict[str, ShipmentRecord]:
    return {
        shipment_id: ShipmentRecord(
            status=entry.get("status"),
            status_at=_time(entry.get("status_at")),
            carrier=entry.get("carrier"),
            carrier_at=_time(entry.get("carrier_at")),
            tracking_no=entry.get("tracking_no"),
            tracking_no_at=_time(entry.get("tracking_no_at")),
            shipped_at=_time(entry.get("shipped_at")),
            delivered_at=_time(entry.get("delivered_at")),
        )
        for shipment_id, entry in (document or {}).items()
    }


def shipments_to_json(shipments: Mapping[str, ShipmentRecord]) -> dict[str, Document]:
    documents = {}
    for shipment_id, record in shipments.items():
        document: Document = {}
        _put(document, "status", record.status)
        _put(document, "status_at", record.status_at)
        _put(document, "carrier", record.carrier)
        _put(document, "carrier_at", record.carrier_at)
        _put(document, "tracking_no", record.tracking_no)
        _put(document, "tracking_no_at", record.tracking_no_at)
        _put(document, "shipped_at", record.shipped_at)
        _put(document, "delivered_at", record.delivered_at)
        documents[shipment_id] = document
    return documents


def reviews_from_json(document: Mapping[str, Mapping[str, Any]] | None) -> dict[str, ReviewRecord]:
    return {
        review_id: ReviewRecord(
            at=_time(entry.get("at")),
            rating=entry.get("rating"),
            text_length=entry.get("text_length"),
            photos=entry.get("photos"),
            videos=entry.get("videos"),
            appended=time_list_from_json(entry.get("appended")),
        )
        for review_id, entry in (document or {}).items()
    }


def reviews_to_json(reviews: Mapping[str, ReviewRecord]) -> dict[str, Document]:
    documents = {}
    for review_id, record in reviews.items():
        document: Document = {"appended": time_list_to_json(record.appended)}
        _put(document, "at", record.at)
        _put(document, "rating", record.rating)
        _put(document, "text_length", record.text_length)
        _put(document, "photos", record.photos)
        _put(document, "videos", record.videos)
        documents[review_id] = document
    return documents
