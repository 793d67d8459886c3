"""Input events as the rules see them: one typed payload per event type or family.

The contract (``shared.contract.events``, docs/events.md) validates a record; the edge
turns it into an ``Event`` whose ``data`` is one of these frozen values, with money as
``Decimal`` and the business time as an aware ``datetime``. Free text (``reason`` on
shipments and refunds) is left at the edge: no rule reads it, so none can copy it into
an action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar, Literal

Gender = Literal["female", "male", "other", "unknown"]
ShipmentStatus = Literal["shipped", "in_transit", "out_for_delivery", "delivered", "exception"]
RefundStatus = Literal["requested", "approved", "rejected", "completed"]
ReviewKind = Literal["posted", "appended"]

SHIPMENT_STATUSES: tuple[ShipmentStatus, ...] = ("shipped", "in_transit", "out_for_delivery", "delivered", "exception")
REFUND_STATUSES: tuple[RefundStatus, ...] = ("requested", "approved", "rejected", "completed")
REVIEW_KINDS: tuple[ReviewKind, ...] = ("posted", "appended")

PROFILE_FIELDS: tuple[str, ...] = (
    "birthday",
    "timezone",
    "channel",
    "gender",
    "birth_year",
    "province",
    "city",
    "store_id",
)
"""The member's profile fields, named alike on ``MemberJoined``, ``ProfileUpdated`` and ``Member``.

Each keeps the value of the latest event by business time that gave it, so they are
applied by name, one rule for all.
"""


@dataclass(frozen=True, slots=True)
class MemberJoined:
    event_type: ClassVar[str] = "member.joined"
    order_id: ClassVar[None] = None

    channel: str
    birthday: str | None = None  # "MM-DD" or "YYYY-MM-DD", a real date
    timezone: str | None = None  # a known IANA name
    marketing_consent: bool = True
    gender: Gender | None = None
    birth_year: int | None = None  # 1900 to the year of the event's time
    province: str | None = None
    city: str | None = None
    store_id: str | None = None  # the offline store the member belongs to


@dataclass(frozen=True, slots=True)
class ProfileUpdated:
    """At least one field is given; only the fields given change."""

    event_type: ClassVar[str] = "member.profile_updated"
    order_id: ClassVar[None] = None

    birthday: str | None = None
    timezone: str | None = None
    channel: str | None = None
    gender: Gender | None = None
    birth_year: int | None = None
    province: str | None = None
    city: str | None = None
    store_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentChanged:
    event_type: ClassVar[str] = "member.consent_changed"
    order_id: ClassVar[None] = None

    marketing_consent: bool


@dataclass(frozen=True, slots=True)
class TagsChanged:
    """External tags (``external.<name>``) set on or taken off the member; no id is in both."""

    event_type: ClassVar[str] = "member.tags_changed"
    order_id: ClassVar[None] = None

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OrderItem:
    sku: str
    quantity: int
    unit_price: Decimal
    category: str | None = None  # as the producer wrote it; the domain keeps its slug


@dataclass(frozen=True, slots=True)
class OrderCreated:
    event_type: ClassVar[str] = "order.created"

    order_id: str
    amount: Decimal
    currency: str
    items: tuple[OrderItem, ...] | None = None
    coupon_codes: tuple[str, ...] | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class OrderPaid:
    event_type: ClassVar[str] = "order.paid"

    order_id: str
    amount: Decimal  # what was actually paid
    currency: str
    coupon_codes: tuple[str, ...] | None = None
    items: tuple[OrderItem, ...] | None = None  # what was paid for, when the producer says


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    event_type: ClassVar[str] = "order.cancelled"

    order_id: str


@dataclass(frozen=True, slots=True)
class OrderCompleted:
    event_type: ClassVar[str] = "order.completed"

    order_id: str


@dataclass(frozen=True, slots=True)
class ShipmentEvent:
    """``shipment.<status>``; a shipment's ``reason`` is free text and is not kept."""

    status: ShipmentStatus
    order_id: str
    shipment_id: str
    carrier: str | None = None
    tracking_no: str | None = None

    @property
    def event_type(self) -> str:
        return f"shipment.{self.status}"


@dataclass(frozen=True, slots=True)
class RefundEvent:
    """``refund.<status>``; a refund's ``reason`` is free text and is not kept."""

    status: RefundStatus
    order_id: str
    refund_id: str
    amount: Decimal
    currency: str

    @property
    def event_type(self) -> str:
        return f"refund.{self.status}"


@dataclass(frozen=True, slots=True)
class ReviewEvent:
    """``review.posted`` or ``review.appended`` (a follow-up review of the same order)."""

    kind: ReviewKind
    order_id: str
    review_id: str
    rating: int
    text_length: int
    photo_count: int
    video_count: int | None = None

    @property
    def event_type(self) -> str:
        return f"review.{self.kind}"


MemberPayload = MemberJoined | ProfileUpdated | ConsentChanged | TagsChanged
OrderPayload = OrderCreated | OrderPaid | OrderCancelled | OrderCompleted | ShipmentEvent | RefundEvent | ReviewEvent
Payload = MemberPayload | OrderPayload


@dataclass(frozen=True, slots=True)
class Event:
    """A validated input event: CloudEvents attributes and its typed payload.

    ``type`` and ``order_id`` are read from the payload, so they can never disagree with it.
    """

    source: str
    id: str
    time: datetime
    shop_id: str
    member_id: str
    data: Payload

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)

    @property
    def type(self) -> str:
        return self.data.event_type

    @property
    def order_id(self) -> str | None:
        return self.data.order_id
