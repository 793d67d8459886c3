"""Member and order state, the events that change them and the actions they yield."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

ZERO = Decimal("0.00")

Category = Literal["care", "incentive"]


@dataclass(frozen=True, slots=True)
class Event:
    """A validated input event; ``data`` holds its payload with money as Decimal."""

    source: str
    id: str
    type: str
    time: datetime
    shop_id: str
    member_id: str
    data: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)

    @property
    def order_id(self) -> str | None:
        value = self.data.get("order_id")
        return str(value) if value is not None else None


@dataclass(slots=True)
class Order:
    """What the service remembers of one order, enough to count it and apply refunds."""

    order_id: str
    member_id: str
    status: str = "created"
    amount: Decimal | None = None
    paid_amount: Decimal | None = None
    refunded_amount: Decimal = ZERO
    counted: bool = False
    created_at: datetime | None = None
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    completed_at: datetime | None = None
    shipment_status: str | None = None
    refunds: dict[str, dict[str, str]] = field(default_factory=dict)
    reviews: list[str] = field(default_factory=list)

    @property
    def is_paid(self) -> bool:
        return self.paid_at is not None


@dataclass(slots=True)
class Member:
    """One member of one shop, with lifetime money metrics and what they were already given."""

    shop_id: str
    member_id: str
    joined_at: datetime | None = None
    tier: str | None = None
    tier_since: datetime | None = None
    tier_qualified_at: datetime | None = None
    net_spend: Decimal = ZERO
    paid_orders: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    birthday: str | None = None
    timezone: str | None = None
    channel: str | None = None
    marketing_consent: bool = True
    consent_at: datetime | None = None
    first_purchase_rewarded: bool = False
    rewarded_tiers: list[str] = field(default_factory=list)
    last_event_at: datetime | None = None
    joined_by_event: bool = False


@dataclass(frozen=True, slots=True)
class ActionDecision:
    """A care or incentive action, everything but the wall-clock ``created_at``."""

    action_id: str
    shop_id: str
    member_id: str
    rule: str
    category: Category
    trigger: Mapping[str, str]
    occurred_at: datetime
    template: str
    variables: Mapping[str, Any]
    incentive: Mapping[str, Any] | None = None
