"""Member and order state, and the actions they yield; the events that change them are in ``events``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from shared.domain.events import Event

__all__ = [
    "ZERO",
    "ActionDecision",
    "Category",
    "Coupon",
    "CouponChange",
    "CouponStatus",
    "Decision",
    "Event",
    "ExternalTag",
    "LedgerEntry",
    "LedgerKind",
    "Member",
    "Order",
    "RefundRecord",
    "ReviewRecord",
    "ShipmentRecord",
    "UnredeemedCode",
]

ZERO = Decimal("0.00")

Category = Literal["care", "incentive"]


@dataclass(slots=True)
class RefundRecord:
    """One refund of an order: its latest stage by business time and, once completed, its share.

    ``amount`` is what the latest stage asked for, ``completed_amount`` what the completion
    asked for, ``applied`` the share of the paid amount it took (refunds completed before
    the shares were kept in business-time order have ``applied`` alone).
    """

    status: str | None = None
    status_at: datetime | None = None
    amount: Decimal | None = None
    completed_at: datetime | None = None
    completed_amount: Decimal | None = None
    applied: Decimal | None = None


@dataclass(slots=True)
class ShipmentRecord:
    """One shipment of an order: each field's latest value by business time, and when it was set.

    ``shipped_at`` and ``delivered_at`` are the earliest such events.
    """

    status: str | None = None
    status_at: datetime | None = None
    carrier: str | None = None
    carrier_at: datetime | None = None
    tracking_no: str | None = None
    tracking_no_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass(slots=True)
class ReviewRecord:
    """One review of an order: the posted review (``at`` and its figures) and the appended ones' times."""

    at: datetime | None = None
    rating: int | None = None
    text_length: int | None = None
    photos: int | None = None
    videos: int | None = None
    appended: list[datetime] = field(default_factory=list)  # ascending


@dataclass(slots=True)
class ExternalTag:
    """The latest change of one ``external.`` tag by business time: set (``present``) or removed."""

    present: bool = False
    at: datetime | None = None


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
    refunds: dict[str, RefundRecord] = field(default_factory=dict)
    reviews: dict[str, ReviewRecord] = field(default_factory=dict)
    shipments: dict[str, ShipmentRecord] = field(default_factory=dict)
    care_done: list[str] = field(default_factory=list)
    points_earned: int = 0
    points_reversed: int = 0
    review_rewarded: bool = False
    created_categories: list[str] = field(default_factory=list)  # of the ``order.created`` items
    paid_categories: list[str] | None = None  # of the ``order.paid`` items; None when it carried none

    @property
    def is_paid(self) -> bool:
        return self.paid_at is not None

    @property
    def categories(self) -> list[str]:
        """The paid items' categories, else the created items'."""
        return self.paid_categories if self.paid_categories is not None else self.created_categories


@dataclass(slots=True)
class Member:
    """One member of one shop, with lifetime money metrics and what they were already given."""

    shop_id: str
    member_id: str
    joined_at: datetime | None = None
    tier: str | None = None
    tier_since: datetime | None = None
    net_spend: Decimal = ZERO
    paid_orders: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    birthday: str | None = None
    timezone: str | None = None
    channel: str | None = None
    marketing_consent: bool = True
    consent_at: datetime | None = None
    profile_at: dict[str, datetime] = field(default_factory=dict)  # business time each profile field was set
    first_purchase_rewarded: bool = False
    rewarded_tiers: list[str] = field(default_factory=list)
    last_event_at: datetime | None = None
    joined_by_event: bool = False
    repurchase_rewarded: bool = False
    stage: str | None = None
    stage_since: datetime | None = None
    win_backs: int = 0
    tier_reviewed_at: datetime | None = None
    tier_lowered_at: datetime | None = None
    qualifying_net_spend: Decimal = ZERO
    qualifying_orders: int = 0
    points_balance: int = 0
    points_next_expiry_at: datetime | None = None
    points_expiries: list[datetime] = field(default_factory=list)  # upcoming lot expiries, ascending
    score: int = 0
    score_band: str | None = None
    score_parts: dict[str, int] = field(default_factory=dict)
    schedule_marks: dict[str, datetime] = field(default_factory=dict)  # how far each time-based rule was applied
    scheduled_until: datetime | None = None
    next_due_at: datetime | None = None
    gender: str | None = None
    birth_year: int | None = None
    province: str | None = None
    city: str | None = None
    store_id: str | None = None
    tags: list[str] = field(default_factory=list)  # built-in and external tag ids, sorted
    tags_until: datetime | None = None  # when a tag may next change with time alone (the scheduler's due item)
    external_tags: dict[str, ExternalTag] = field(default_factory=dict)

    @property
    def as_of(self) -> datetime | None:
        """The business time the member's state reflects: its latest event or scheduler run."""
        times = [t for t in (self.last_event_at, self.scheduled_until) if t is not None]
        return max(times) if times else None


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
    playbook_version: int = 0
    campaign: Mapping[str, Any] | None = None


CouponStatus = Literal["issued", "redeemed", "expired"]


@dataclass(slots=True)
class Coupon:
    """One coupon of a member's wallet as the wallet table keeps it."""

    shop_id: str
    code: str
    member_id: str
    rule: str
    action_id: str
    value: Decimal
    issued_at: datetime
    expires_at: datetime
    min_spend: Decimal | None = None
    campaign_id: str | None = None
    status: CouponStatus = "issued"
    order_id: str | None = None
    redeemed_at: datetime | None = None
    playbook_version: int = 0
    reminded_at: datetime | None = None  # when its expiry reminder fell due (sent, or too late to send)


@dataclass(frozen=True, slots=True)
class CouponChange:
    """A coupon redeemed (by ``order_id`` at ``redeemed_at``) or expired: what its wallet row takes."""

    code: str
    status: CouponStatus
    order_id: str | None = None
    redeemed_at: datetime | None = None
    reminded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UnredeemedCode:
    """A code a paid order named that redeemed nothing of the payer's own wallet.

    Kept whatever the code is: another member's coupon (a shared code: the report counts it by
    joining the wallet, which does not depend on which event arrived first), the payer's own
    coupon already redeemed or expired at the payment, or a code no wallet holds.
    """

    code: str
    order_id: str
    member_id: str  # who paid with it
    at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a member got, or did not get, one incentive: the record kept for every incentive decision.

    ``decision_id`` is the id the action has (or would have had), so a replay decides the same
    record once. ``value`` is what the incentive is worth to the budget (coupon face value,
    points at ``value_per_point``); ``order_id`` names the order that triggered it, if one did.
    """

    decision_id: str
    shop_id: str
    member_id: str
    rule: str
    outcome: str
    reason: str
    at: datetime
    action_id: str | None = None
    order_id: str | None = None
    code: str | None = None  # the coupon given, when one was
    kind: str | None = None
    value: Decimal = ZERO
    points: int = 0
    playbook_version: int = 0
    campaign_id: str | None = None
    wave: int | None = None
    strategy: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


LedgerKind = Literal["earn", "reverse", "review_reward", "gift", "redeem", "expire"]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One line of a member's append-only points ledger; credits are positive, debits negative.

    ``entry_id`` names the business fact (``earn:<order>``, ``reverse:<refund>``,
    ``redeem:<idempotency key>`` ...), so the same fact can never be booked twice.
    ``shortfall`` is what a debit could not take because the balance was too low.
    """

    entry_id: str
    kind: LedgerKind
    points: int
    at: datetime
    expires_at: datetime | None = None
    shortfall: int = 0
