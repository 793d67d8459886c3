"""Builders of what the tests feed the service: domain events, contract JSON events and database rows.

Domain events (``Event``) go straight to the pure domain; contract JSON events
(``envelope``, ``Stream``) are what producers publish to Kafka; rows are what the
service would have written to PostgreSQL. Defaults name one member of one shop
(``SHOP``, ``MEMBER``); every builder takes the business time explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.contract.events import PAYLOAD_BY_TYPE, REFUND_STATUS, REVIEW_KIND, SHIPMENT_STATUS
from shared.domain.events import (
    ConsentChanged,
    Event,
    MemberJoined,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderPaid,
    Payload,
    ProfileUpdated,
    RefundEvent,
    ReviewEvent,
    ShipmentEvent,
)
from shared.domain.model import Order, RefundRecord, ReviewRecord

SHOP = "shop-1"
MEMBER = "m-1"
SOURCE = "shop-system"
CURRENCY = "CNY"
SHANGHAI = ZoneInfo("Asia/Shanghai")

Json = dict[str, Any]

# --- domain events ------------------------------------------------------------------------------


def domain_event(
    data: Payload,
    at: datetime,
    *,
    member: str = MEMBER,
    shop: str = SHOP,
    event_id: str | None = None,
    source: str = SOURCE,
) -> Event:
    """An event carrying ``data``; without ``event_id`` its id derives from the facts: rebuilt, it keeps its id."""
    if event_id is None:
        detail = ""
        if isinstance(data, RefundEvent):
            detail = data.refund_id
        elif isinstance(data, ShipmentEvent):
            detail = data.shipment_id
        elif isinstance(data, ReviewEvent):
            detail = data.review_id
        event_id = f"{data.event_type}|{data.order_id or member}|{detail}|{at.isoformat()}"
    return Event(source, event_id, at, shop, member, data)


def payload(kind: str, **fields: Any) -> Payload:
    """The domain payload of an event of type ``kind`` from its contract fields (money as text or Decimal).

    The fields pass the contract's own validation, so a test can only build what a producer could send.
    """
    return PAYLOAD_BY_TYPE[kind].model_validate(fields).to_domain(kind)


def event(
    kind: str,
    at: datetime,
    *,
    member: str = MEMBER,
    shop: str = SHOP,
    event_id: str | None = None,
    source: str = SOURCE,
    **fields: Any,
) -> Event:
    """An event of any type from its contract fields; the typed builders below name the common ones."""
    return domain_event(payload(kind, **fields), at, member=member, shop=shop, event_id=event_id, source=source)


def joined(
    at: datetime,
    *,
    channel: str = "app",
    birthday: str | None = None,
    timezone: str | None = None,
    marketing_consent: bool = True,
    member: str = MEMBER,
    shop: str = SHOP,
    event_id: str | None = None,
) -> Event:
    data = MemberJoined(channel, birthday, timezone, marketing_consent)
    return domain_event(data, at, member=member, shop=shop, event_id=event_id)


def profile_updated(
    at: datetime,
    *,
    birthday: str | None = None,
    timezone: str | None = None,
    channel: str | None = None,
    member: str = MEMBER,
    event_id: str | None = None,
) -> Event:
    return domain_event(ProfileUpdated(birthday, timezone, channel), at, member=member, event_id=event_id)


def consent_changed(at: datetime, consent: bool, *, member: str = MEMBER, event_id: str | None = None) -> Event:
    return domain_event(ConsentChanged(consent), at, member=member, event_id=event_id)


def order_created(
    order_id: str, amount: str, at: datetime, *, member: str = MEMBER, event_id: str | None = None
) -> Event:
    return domain_event(OrderCreated(order_id, Decimal(amount), CURRENCY), at, member=member, event_id=event_id)


def order_paid(
    order_id: str,
    amount: str,
    at: datetime,
    *,
    member: str = MEMBER,
    shop: str = SHOP,
    event_id: str | None = None,
) -> Event:
    data = OrderPaid(order_id, Decimal(amount), CURRENCY)
    return domain_event(data, at, member=member, shop=shop, event_id=event_id)


def order_cancelled(order_id: str, at: datetime, *, member: str = MEMBER, event_id: str | None = None) -> Event:
    return domain_event(OrderCancelled(order_id), at, member=member, event_id=event_id)


def order_completed(order_id: str, at: datetime, *, member: str = MEMBER, event_id: str | None = None) -> Event:
    return domain_event(OrderCompleted(order_id), at, member=member, event_id=event_id)


def shipment(
    order_id: str,
    at: datetime,
    *,
    status: str = "shipped",
    shipment_id: str = "s-1",
    carrier: str | None = "SF",
    tracking_no: str | None = None,
    member: str = MEMBER,
    event_id: str | None = None,
) -> Event:
    data = ShipmentEvent(SHIPMENT_STATUS[f"shipment.{status}"], order_id, shipment_id, carrier, tracking_no)
    return domain_event(data, at, member=member, event_id=event_id)


def refund(
    order_id: str,
    refund_id: str,
    amount: str,
    at: datetime,
    *,
    status: str = "completed",
    member: str = MEMBER,
    event_id: str | None = None,
) -> Event:
    data = RefundEvent(REFUND_STATUS[f"refund.{status}"], order_id, refund_id, Decimal(amount), CURRENCY)
    return domain_event(data, at, member=member, event_id=event_id)


def review(
    order_id: str,
    at: datetime,
    *,
    review_id: str = "rv-1",
    kind: str = "posted",
    rating: int = 5,
    text_length: int = 40,
    photo_count: int = 1,
    video_count: int | None = None,
    member: str = MEMBER,
    event_id: str | None = None,
) -> Event:
    data = ReviewEvent(
        REVIEW_KIND[f"review.{kind}"], order_id, review_id, rating, text_length, photo_count, video_count
    )
    return domain_event(data, at, member=member, event_id=event_id)


# --- domain state -------------------------------------------------------------------------------


def paid_order(order_id: str, at: datetime, amount: str, *, member: str = MEMBER, **changes: Any) -> Order:
    """An order paid at ``at``, as the domain keeps it; ``changes`` set any other field."""
    paid = Decimal(amount)
    order = Order(order_id=order_id, member_id=member, status="paid", amount=paid, paid_amount=paid, paid_at=at)
    return replace(order, **changes)


def completed_refund(amount: str, at: datetime) -> RefundRecord:
    """A refund of ``amount`` completed at ``at`` that took all it asked for."""
    return RefundRecord(status="completed", amount=Decimal(amount), completed_at=at, applied=Decimal(amount))


def posted_review(
    at: datetime, *, photos: int = 0, videos: int = 0, appended: tuple[datetime, ...] = ()
) -> ReviewRecord:
    """A review posted at ``at`` (rating 5, 40 characters), with the times of its appended reviews."""
    return ReviewRecord(at=at, rating=5, text_length=40, photos=photos, videos=videos, appended=list(appended))


# --- contract JSON events -----------------------------------------------------------------------

ENVELOPE_TIME = datetime(2024, 5, 1, 10, 0, tzinfo=SHANGHAI)


def envelope(
    event_type: str = "order.paid",
    data: Json | None = None,
    *,
    event_id: str = "evt-1",
    at: datetime | str = ENVELOPE_TIME,
    member: str = MEMBER,
    shop: str = SHOP,
    source: str = SOURCE,
    **attributes: Any,
) -> Json:
    """A CloudEvents record as a producer publishes it (structured JSON mode).

    ``data`` defaults to an ``order.paid`` payload of 129.00; ``attributes`` set or replace
    any attribute as given, so a test can send what the contract refuses.
    """
    record: Json = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": at if isinstance(at, str) else at.isoformat(),
        "datacontenttype": "application/json",
        "shopid": shop,
        "memberid": member,
        "data": {"order_id": "o-1", "amount": "129.00", "currency": CURRENCY} if data is None else data,
    }
    record.update(attributes)
    return record


@dataclass
class Stream:
    """A story of events told in business time, ready to produce to the test's topics."""

    start: datetime = field(default_factory=lambda: datetime(2026, 3, 1, 10, 0, tzinfo=SHANGHAI))
    events: list[Json] = field(default_factory=list)
    shop: str = SHOP

    def add(self, event_type: str, member: str, minutes: float, **data: Any) -> Json:
        record = envelope(
            event_type,
            data,
            event_id=f"{event_type}-{member}-{len(self.events)}",
            at=self.start + timedelta(minutes=minutes),
            member=member,
            shop=self.shop,
            source="test",
        )
        self.events.append(record)
        return record
