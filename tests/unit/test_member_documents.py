"""The JSON documents of member and order rows: read into typed records, written back as they were."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from shared.domain.model import ExternalTag, Order, RefundRecord, ReviewRecord, ShipmentRecord
from shared.store import member_documents as documents
from shared.store.member_rows import MEMBER_FIELDS, member_from_row, order_from_row

SHANGHAI = timezone(timedelta(hours=8))
T1 = datetime(2025, 1, 10, 10, 6, tzinfo=SHANGHAI)
T2 = datetime(2025, 1, 12, 9, 0, 0, 250000, tzinfo=SHANGHAI)

# As the rows hold them (written before the records were typed).
REFUNDS: dict[str, Any] = {
    "r-1": {
        "status": "completed",
        "status_at": "2025-01-10T10:06:00+08:00",
        "amount": "30.00",
        "completed_at": "2025-01-10T10:06:00+08:00",
        "completed_amount": "30.00",
        "applied": "30.00",
    },
    "r-2": {"status": "requested", "status_at": "2025-01-12T09:00:00.250000+08:00", "amount": "5.00"},
    "r-old": {
        "status": "completed",
        "status_at": "2024-12-01T00:00:00+00:00",
        "amount": "9.90",
        "applied": "9.90",
        "completed_at": "2024-12-01T00:00:00+00:00",
    },
}
SHIPMENTS: dict[str, Any] = {
    "s-1": {
        "status": "delivered",
        "status_at": "2025-01-12T09:00:00.250000+08:00",
        "carrier": "SF",
        "carrier_at": "2025-01-10T10:06:00+08:00",
        "shipped_at": "2025-01-10T10:06:00+08:00",
        "delivered_at": "2025-01-12T09:00:00.250000+08:00",
    },
    "s-2": {"status": "in_transit", "status_at": "2025-01-10T10:06:00+08:00"},
}
REVIEWS: dict[str, Any] = {
    "rv-1": {
        "appended": ["2025-01-12T09:00:00.250000+08:00"],
        "at": "2025-01-10T10:06:00+08:00",
        "rating": 5,
        "text_length": 80,
        "photos": 2,
        "videos": 0,
    },
    "rv-2": {"appended": ["2025-01-10T10:06:00+08:00", "2025-01-12T09:00:00.250000+08:00"]},
}


def test_refunds_read_as_records_and_write_back_unchanged() -> None:
    records = documents.records_from_json(RefundRecord, REFUNDS)
    assert records["r-1"] == RefundRecord("completed", T1, Decimal("30.00"), T1, Decimal("30.00"), Decimal("30.00"))
    assert records["r-2"] == RefundRecord(status="requested", status_at=T2, amount=Decimal("5.00"))
    assert records["r-old"].completed_amount is None
    assert documents.records_to_json(records) == REFUNDS


def test_shipments_read_as_records_and_write_back_unchanged() -> None:
    records = documents.records_from_json(ShipmentRecord, SHIPMENTS)
    assert records["s-1"] == ShipmentRecord(
        status="delivered", status_at=T2, carrier="SF", carrier_at=T1, shipped_at=T1, delivered_at=T2
    )
    assert records["s-2"] == ShipmentRecord(status="in_transit", status_at=T1)
    assert documents.records_to_json(records) == SHIPMENTS


def test_reviews_read_as_records_and_write_back_unchanged() -> None:
    records = documents.records_from_json(ReviewRecord, REVIEWS)
    assert records["rv-1"] == ReviewRecord(at=T1, rating=5, text_length=80, photos=2, videos=0, appended=[T2])
    assert records["rv-2"] == ReviewRecord(appended=[T1, T2])
    assert documents.records_to_json(records) == REVIEWS


def test_times_keep_their_offsets_and_fractions() -> None:
    marks = {"lifecycle": "2025-01-12T09:00:00.250000+08:00", "one_month_gift": "2025-02-09T09:00:00+00:00"}
    assert documents.times_from_json(marks)["lifecycle"] == T2
    assert documents.times_to_json(documents.times_from_json(marks)) == marks
    expiries = ["2026-01-10T10:06:00+08:00", "2026-01-14T09:00:00+08:00"]
    assert documents.time_list_from_json(expiries)[0] == T1.replace(year=2026)
    assert documents.time_list_to_json(documents.time_list_from_json(expiries)) == expiries


def test_rows_become_members_and_orders_with_typed_documents() -> None:
    row: dict[str, Any] = dict.fromkeys(MEMBER_FIELDS)
    row.update(
        shop_id="shop-1",
        member_id="m-1",
        rewarded_tiers=("member",),
        profile_at={"birthday": "2025-01-10T10:06:00+08:00"},
        schedule_marks={},
        points_expiries=["2025-01-12T09:00:00.250000+08:00"],
        tags=("profile.female",),
        external_tags={"external.vip_club": {"present": True, "at": "2025-01-10T10:06:00+08:00"}},
    )
    member = member_from_row([row[name] for name in MEMBER_FIELDS])
    assert (member.profile_at, member.points_expiries, member.rewarded_tiers) == ({"birthday": T1}, [T2], ["member"])
    assert (member.tags, member.external_tags) == (["profile.female"], {"external.vip_club": ExternalTag(True, T1)})
    order_row: dict[str, Any] = {field.name: None for field in fields(Order)}
    order_row.update(order_id="o-1", member_id="m-1", refunds=REFUNDS, reviews=REVIEWS, shipments=SHIPMENTS)
    order_row.update(care_done=("review_invitation",), created_categories=("shoes",))
    order = order_from_row(list(order_row.values()))
    assert order.refunds["r-1"].applied == Decimal("30.00")
    assert order.reviews["rv-2"].appended == [T1, T2]
    assert order.shipments["s-1"].delivered_at == T2
    assert order.care_done == ["review_invitation"]
    assert (order.categories, order.paid_categories) == (["shoes"], None)
