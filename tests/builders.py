"""Builders of what the tests feed the service: domain events, contract JSON events and database rows.

Domain events (``Event``) go straight to the pure domain; contract JSON events
(``envelope``, ``Stream``) are what producers publish to Kafka; rows are what the
service would have written to PostgreSQL. Defaults name one member of one shop
(``SHOP``, ``MEMBER``); every builder takes the business time explicitly.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka.structs import ConsumerRecord
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.contract.actions import Action, EventTrigger, Message, NotificationOutcome
from shared.contract.domain_payloads import REFUND_STATUS, REVIEW_KIND, SHIPMENT_STATUS, to_domain
from shared.contract.events import PAYLOAD_BY_TYPE
from shared.db.schema import coupons, decisions, members, orders, points_ledger, quarantined_members, unredeemed_codes
from shared.domain.decisions import MemberContext
from shared.domain.events import (
    ConsentChanged,
    Event,
    MemberJoined,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderItem,
    OrderPaid,
    Payload,
    ProfileUpdated,
    RefundEvent,
    ReviewEvent,
    ShipmentEvent,
    TagsChanged,
)
from shared.domain.model import Member, Order, RefundRecord, ReviewRecord, ShipmentRecord

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
    return to_domain(kind, PAYLOAD_BY_TYPE[kind].model_validate(fields))


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
    **attributes: Any,
) -> Event:
    """A ``member.joined``; ``attributes`` give the other profile fields (``gender=``, ``city=`` ...)."""
    data = MemberJoined(channel, birthday, timezone, marketing_consent, **attributes)
    return domain_event(data, at, member=member, shop=shop, event_id=event_id)


def profile_updated(at: datetime, *, member: str = MEMBER, event_id: str | None = None, **profile: Any) -> Event:
    """A ``member.profile_updated`` giving the profile fields named (``birthday=``, ``gender=``, ``city=`` ...)."""
    return domain_event(ProfileUpdated(**profile), at, member=member, event_id=event_id)


def consent_changed(at: datetime, consent: bool, *, member: str = MEMBER, event_id: str | None = None) -> Event:
    return domain_event(ConsentChanged(consent), at, member=member, event_id=event_id)


def tags_changed(
    at: datetime,
    *,
    add: tuple[str, ...] = (),
    remove: tuple[str, ...] = (),
    member: str = MEMBER,
    event_id: str | None = None,
) -> Event:
    """A ``member.tags_changed``; give ``event_id`` to tell apart two changes at the same time."""
    return domain_event(TagsChanged(add, remove), at, member=member, event_id=event_id)


def item(sku: str = "SKU-1", category: str | None = None, *, quantity: int = 1, unit_price: str = "10.00") -> OrderItem:
    """One line of an order's ``items``."""
    return OrderItem(sku, quantity, Decimal(unit_price), category)


def order_created(
    order_id: str,
    amount: str,
    at: datetime,
    *,
    items: tuple[OrderItem, ...] | None = None,
    member: str = MEMBER,
    event_id: str | None = None,
) -> Event:
    data = OrderCreated(order_id, Decimal(amount), CURRENCY, items)
    return domain_event(data, at, member=member, event_id=event_id)


def order_paid(
    order_id: str,
    amount: str,
    at: datetime,
    *,
    items: tuple[OrderItem, ...] | None = None,
    member: str = MEMBER,
    shop: str = SHOP,
    event_id: str | None = None,
    coupon_codes: tuple[str, ...] | None = None,
) -> Event:
    data = OrderPaid(order_id, Decimal(amount), CURRENCY, coupon_codes=coupon_codes, items=items)
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


def counted_order(order_id: str, at: datetime, amount: str, *, member: str = MEMBER, **changes: Any) -> Order:
    """An order paid at ``at`` that counts as one of the member's paid orders (not cancelled)."""
    return paid_order(order_id, at, amount, member=member, **{"counted": True, **changes})


def created_order(order_id: str, at: datetime, amount: str, *, member: str = MEMBER, **changes: Any) -> Order:
    """An order created at ``at`` and not paid (yet); ``changes`` set any other field."""
    order = Order(order_id=order_id, member_id=member, amount=Decimal(amount), created_at=at)
    return replace(order, **changes)


def shipment_record(shipped_at: datetime, delivered_at: datetime | None = None) -> ShipmentRecord:
    """A shipment shipped at ``shipped_at`` and, when given, delivered at ``delivered_at``."""
    status = "delivered" if delivered_at is not None else "shipped"
    return ShipmentRecord(
        status=status, status_at=delivered_at or shipped_at, shipped_at=shipped_at, delivered_at=delivered_at
    )


def member_state(member: str = MEMBER, *, shop: str = SHOP, **fields: Any) -> Member:
    """A member as the domain keeps it; ``fields`` set any other field."""
    return Member(shop_id=shop, member_id=member, **fields)


def member_context(member: Member, *orders: Order) -> MemberContext:
    """``member`` with its ``orders``, as the domain's rules read it."""
    by_id = {order.order_id: order for order in orders}
    return MemberContext(member=member, orders=by_id, shop_orders=dict(by_id))


def completed_refund(amount: str, at: datetime) -> RefundRecord:
    """A refund of ``amount`` completed at ``at`` that took all it asked for."""
    return RefundRecord(status="completed", amount=Decimal(amount), completed_at=at, applied=Decimal(amount))


def posted_review(
    at: datetime,
    *,
    photos: int = 0,
    videos: int = 0,
    appended: tuple[datetime, ...] = (),
    rating: int = 5,
    text_length: int = 40,
) -> ReviewRecord:
    """A review posted at ``at`` (rating 5, 40 characters unless told), with the times of its appended reviews."""
    return ReviewRecord(
        at=at, rating=rating, text_length=text_length, photos=photos, videos=videos, appended=list(appended)
    )


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


def first_order(stream: Stream, member: str) -> None:
    """A member's join and first order (created, then paid, 300.00) at minutes 0, 1 and 2 of ``stream``."""
    stream.add("member.joined", member, 0, channel="app")
    stream.add("order.created", member, 1, order_id=f"{member}-o1", amount="300.00", currency="CNY")
    stream.add("order.paid", member, 2, order_id=f"{member}-o1", amount="300.00", currency="CNY")


# --- database rows ------------------------------------------------------------------------------
#
# Column values as the service writes them, for ``insert(table).values(**row)`` or
# ``insert_rows``; each builder names only the columns that matter and leaves the rest to
# the schema's defaults.


def member_row(member_id: str = MEMBER, *, shop: str = SHOP, **columns: Any) -> Json:
    """A ``members`` row; ``columns`` set any other column."""
    return {"shop_id": shop, "member_id": member_id, **columns}


def joined_member_row(member_id: str, at: datetime, *, shop: str = SHOP, **columns: Any) -> Json:
    """A member who joined at ``at`` and nothing since: base tier, ``prospect``, the one-month gift due 30 days on."""
    return member_row(
        member_id,
        shop=shop,
        **{
            "joined_at": at,
            "joined_by_event": True,
            "last_event_at": at,
            "stage": "prospect",
            "stage_since": at,
            "tier": "member",
            "tier_since": at,
            "next_due_at": at + timedelta(days=30),
            **columns,
        },
    )


def ledger_row(
    member_id: str,
    entry_id: str,
    kind: str,
    points: int,
    at: datetime,
    *,
    expires_at: datetime | None = None,
    shop: str = SHOP,
) -> Json:
    """A ``points_ledger`` line."""
    return {
        "shop_id": shop,
        "member_id": member_id,
        "entry_id": entry_id,
        "kind": kind,
        "points": points,
        "at": at,
        "expires_at": expires_at,
    }


Rows = tuple[tuple[Table, Json], ...]  # (table, row) pairs for ``insert_rows``


def member_with_points_rows(
    member_id: str, earned: int, at: datetime, *, shop: str = SHOP, next_due_at: datetime | None = None
) -> Rows:
    """A member who joined at ``at`` and earned ``earned`` points on one order, booked as the service books them."""
    expires = at + timedelta(days=365)
    member = member_row(
        member_id,
        shop=shop,
        joined_at=at,
        last_event_at=at,
        points_balance=earned,
        points_next_expiry_at=expires,
        next_due_at=next_due_at,
    )
    line = ledger_row(member_id, "earn:o-1", "earn", earned, at, expires_at=expires, shop=shop)
    return ((members, member), (points_ledger, line))


def quarantine_row(
    member_id: str,
    at: datetime,
    *,
    shop: str = SHOP,
    reason: str = "processing_error",
    detail: str = "ValueError while settling the member's stored state",
    events: int = 0,
    last_event_at: datetime | None = None,
) -> Json:
    """A ``quarantined_members`` row: the member quarantined at ``at``."""
    return {
        "shop_id": shop,
        "member_id": member_id,
        "reason": reason,
        "detail": detail,
        "events": events,
        "quarantined_at": at,
        "last_event_at": last_event_at,
    }


def quarantined_member_rows(
    member_id: str, at: datetime, *, joined_at: datetime, shop: str = SHOP, **quarantine: Any
) -> Rows:
    """A member who joined at ``joined_at``, off the schedule, quarantined at ``at`` (``quarantine_row``'s columns)."""
    member = member_row(member_id, shop=shop, joined_at=joined_at, next_due_at=None)
    return ((members, member), (quarantined_members, quarantine_row(member_id, at, shop=shop, **quarantine)))


def care_action(member_id: str, number: int, occurred_at: datetime, *, shop: str = SHOP) -> Action:
    """The ``number``-th payment confirmation of a member, decided one second before it was created."""
    return Action(
        action_id=f"act-{member_id}-{number}",
        shop_id=shop,
        member_id=member_id,
        rule="payment_confirmation",
        category="care",
        trigger=EventTrigger(event_id=f"evt-{number}", event_type="order.paid"),
        occurred_at=occurred_at,
        created_at=occurred_at + timedelta(seconds=1),
        message=Message(template="payment_confirmation", variables={"order_id": f"o-{number}"}),
    )


def action_row(action: Action) -> Json:
    """The ``actions`` row of an action, its payload as the contract's JSON."""
    return {
        "action_id": action.action_id,
        "shop_id": action.shop_id,
        "member_id": action.member_id,
        "rule": action.rule,
        "category": action.category,
        "occurred_at": action.occurred_at,
        "created_at": action.created_at,
        "payload": action.model_dump(mode="json"),
    }


def notification_row(outcome: NotificationOutcome) -> Json:
    """The ``notifications`` row of an outcome, its payload as the contract's JSON."""
    return {
        "notification_id": outcome.notification_id,
        "action_id": outcome.action_id,
        "channel": outcome.channel,
        "shop_id": outcome.shop_id,
        "member_id": outcome.member_id,
        "status": outcome.status,
        "reason": outcome.reason,
        "at": outcome.at,
        "payload": outcome.model_dump(mode="json"),
    }


def decision_row(
    decision_id: str,
    member_id: str,
    rule: str,
    outcome: str,
    at: datetime,
    *,
    value: str = "0",
    kind: str | None = "coupon",
    order_id: str | None = None,
    campaign_id: str | None = None,
    shop: str = SHOP,
    points: int = 0,
    wave: int | None = None,
    strategy: str | None = None,
) -> tuple[Table, Json]:
    """An incentive decision; an emitted one carries the action named like the decision, as the event path names it."""
    return decisions, {
        "decision_id": decision_id,
        "shop_id": shop,
        "member_id": member_id,
        "rule": rule,
        "campaign_id": campaign_id,
        "wave": wave,
        "strategy": strategy,
        "outcome": outcome,
        "reason": "decided" if outcome == "emitted" else outcome,
        "at": at,
        "action_id": decision_id if outcome == "emitted" else None,
        "order_id": order_id,
        "code": None,  # set by ``insert_rows`` from the coupon issued under the decision's action, if any
        "kind": kind,
        "value": Decimal(value),
        "points": points,
        "playbook_version": 3,
        "decided_at": at + timedelta(seconds=1),
    }


def coupon_row(
    code: str,
    member_id: str,
    rule: str,
    action_id: str,
    value: str,
    issued_at: datetime,
    *,
    status: str = "issued",
    order_id: str | None = None,
    redeemed_at: datetime | None = None,
    campaign_id: str | None = None,
    shop: str = SHOP,
    min_spend: str | None = "99.00",
) -> tuple[Table, Json]:
    """A coupon of a member's wallet, valid 30 days from ``issued_at``."""
    return coupons, {
        "shop_id": shop,
        "code": code,
        "member_id": member_id,
        "rule": rule,
        "campaign_id": campaign_id,
        "action_id": action_id,
        "value": Decimal(value),
        "min_spend": None if min_spend is None else Decimal(min_spend),
        "issued_at": issued_at,
        "expires_at": issued_at + timedelta(days=30),
        "status": status,
        "order_id": order_id,
        "redeemed_at": redeemed_at,
    }


ORDER_CREATED = datetime(2026, 3, 1, tzinfo=UTC)


def order_row(
    order_id: str, member_id: str, paid_at: datetime | None, amount: str = "100.00", *, shop: str = SHOP
) -> tuple[Table, Json]:
    """An order paid in full at ``paid_at``, or only created (at ``ORDER_CREATED``) when that is None."""
    paid = paid_at is not None
    return orders, {
        "shop_id": shop,
        "order_id": order_id,
        "member_id": member_id,
        "status": "paid" if paid else "created",
        "amount": Decimal(amount),
        "paid_amount": Decimal(amount) if paid else None,
        "created_at": paid_at or ORDER_CREATED,
        "paid_at": paid_at,
    }


def share_row(code: str, order_id: str, member_id: str, at: datetime, *, shop: str = SHOP) -> tuple[Table, Json]:
    """A paid order of ``member_id`` that named a code it did not redeem (another member's: a shared code)."""
    return unredeemed_codes, {"shop_id": shop, "code": code, "order_id": order_id, "member_id": member_id, "at": at}


async def insert_rows(engine: AsyncEngine, *rows: tuple[Table, Json]) -> None:
    """Inserts (table, row) pairs in one transaction, in order.

    A decision names the coupon issued under its action, as the event path records it.
    """
    issued = {(row["shop_id"], row["action_id"]): row["code"] for table, row in rows if table is coupons}
    async with engine.begin() as connection:
        for table, row in rows:
            if table is decisions and row.get("code") is None and row.get("action_id") is not None:
                row = {**row, "code": issued.get((row["shop_id"], row["action_id"]))}
            await connection.execute(insert(table).values(**row))


# --- actions and Kafka records ------------------------------------------------------------------

ACTION_TIME = datetime(2024, 5, 1, 4, 0, tzinfo=UTC)  # noon in Asia/Shanghai: outside the default quiet hours


def action_message(
    *,
    category: str = "care",
    member: str = MEMBER,
    occurred_at: datetime = ACTION_TIME,
    action_id: str | None = None,
    rule: str | None = None,
    shop: str = SHOP,
) -> Json:
    """An action as the notifier reads it on ``member.actions`` (a coupon for an incentive)."""
    rule = rule or ("payment_confirmation" if category == "care" else "first_purchase_gift")
    body: Json = {
        "action_id": action_id or str(uuid.uuid4()),
        "shop_id": shop,
        "member_id": member,
        "rule": rule,
        "category": category,
        "trigger": {"event_id": f"evt-{uuid.uuid4().hex[:8]}", "event_type": "order.paid"},
        "occurred_at": occurred_at.isoformat(),
        "created_at": occurred_at.isoformat(),
        "message": {"template": rule, "variables": {"order_id": "o-1", "phone": "13800000000"}},
    }
    if category == "incentive":
        body["incentive"] = {"kind": "coupon", "value": "10.00", "min_spend": "99.00", "code": "C-1"}
    return body


def consumer_records(events: list[Json], topic: str = "commerce.orders") -> list[ConsumerRecord[bytes, bytes]]:
    """Contract JSON events as the records a consumer polls, keyed ``shop:member``, at offsets 0, 1, ..."""
    return [
        ConsumerRecord(
            topic=topic,
            partition=0,
            offset=offset,
            timestamp=0,
            timestamp_type=0,
            key=f"{event['shopid']}:{event['memberid']}".encode(),
            value=json.dumps(event).encode(),
            checksum=None,
            serialized_key_size=0,
            serialized_value_size=0,
            headers=(),
        )
        for offset, event in enumerate(events)
    ]
