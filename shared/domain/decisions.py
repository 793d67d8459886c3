"""Turning a rule's decision into an action, and booking the points an incentive gives.

Shared by the event path and the scheduler: an action's id comes from the business
fact that triggered it, so the same fact can never yield two actions, whoever
decides it and however often.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shared.domain import incentives, points
from shared.domain.budgets import BudgetBook
from shared.domain.calendar import add_months, zone
from shared.domain.model import (
    ZERO,
    ActionDecision,
    Category,
    Coupon,
    CouponChange,
    Decision,
    Event,
    LedgerEntry,
    LedgerKind,
    Member,
    Order,
    UnredeemedCode,
)
from shared.domain.money import money, round_money
from shared.domain.playbook import IncentiveSpec, ShopPlaybook
from shared.domain.tiers import QualificationPoint

__all__ = [
    "ACTION_NAMESPACE",
    "Decider",
    "MemberContext",
    "action_id",
    "incentive_body",
    "incentive_code",
    "incentive_payload",
    "money",
    "set_expiries",
]

ACTION_NAMESPACE = uuid.UUID("6f1c7f0e-3f43-4d7b-9a55-0b8f6c2b1e10")
_NAMESPACE = ACTION_NAMESPACE.bytes


@dataclass(slots=True)
class MemberContext:
    """A member with all of its orders, parked events and the ledger lines booked meanwhile.

    ``shop_orders`` holds orders of other members that the batch refers to, so an
    event naming another member's order can be told apart from a new order.
    ``ledger`` is the member's existing ledger when the caller loaded it (the
    scheduler does, for expiries); ``new_ledger`` collects the lines to append.
    """

    member: Member
    orders: dict[str, Order] = field(default_factory=dict)
    shop_orders: dict[str, Order] = field(default_factory=dict)
    pending: list[Event] = field(default_factory=list)
    touched_orders: set[str] = field(default_factory=set)
    ledger: list[LedgerEntry] | None = None
    new_ledger: list[LedgerEntry] = field(default_factory=list)
    late: list[str] = field(default_factory=list)  # rules whose due item came too late to send
    timeline: list[QualificationPoint] | None = None  # the tier timeline, until the orders' money changes
    decisions: list[Decision] = field(default_factory=list)  # incentive decisions taken meanwhile
    new_coupons: list[Coupon] = field(default_factory=list)  # coupons issued meanwhile
    coupon_changes: list[CouponChange] = field(default_factory=list)  # coupons redeemed or expired meanwhile
    # Codes the member's payments named that redeemed nothing of its own wallet (another member's: shared).
    unredeemed: list[UnredeemedCode] = field(default_factory=list)
    shared_seen: int = 0  # of them, codes known to be another member's when the payment was applied
    # The shop's coupons the batch's payments name, and those the batch issues, by code (shared by the
    # batch's contexts of one shop, like ``shop_orders``): whoever's wallet holds them.
    shop_coupons: dict[str, Coupon] = field(default_factory=dict)
    budgets: BudgetBook | None = None  # the batch's budget spend, when a shop in it has budgeted rules


def action_id(*parts: str) -> str:
    """A stable id from the business fact that triggered the action: ``str(uuid.uuid5(ACTION_NAMESPACE, ...))``.

    Spelt out (SHA-1 of the namespace and the name, then the version and variant bits) because
    a large campaign wave makes a million of them, and ``uuid.UUID`` costs several times the hash.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE + "|".join(parts).encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    hexa = digest.hex()
    return f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"


def incentive_code(kind: str, action: str) -> str:
    """A coupon's or sample's code, from its action id: the same fact always gives the same code."""
    return kind[0].upper() + hashlib.sha256(action.encode()).hexdigest()[:12].upper()


def incentive_body(spec: IncentiveSpec, action: str, at: datetime) -> dict[str, Any]:
    """A rule's incentive payload (``incentive_payload``), valid for the spec's days."""
    expires_at = at + timedelta(days=spec.valid_days)
    return incentive_payload(spec.kind, action, spec.value, spec.min_spend, spec.points, expires_at)


def incentive_payload(
    kind: str,
    action: str,
    value: Decimal | None,
    min_spend: Decimal | None,
    points: int | None,
    expires_at: datetime | None,
) -> dict[str, Any]:
    """The action's incentive; a coupon's or sample's code derives from the action id, so replays reproduce it."""
    body: dict[str, Any] = {"kind": kind}
    if value is not None:
        body["value"] = money(value)
    if min_spend is not None:
        body["min_spend"] = money(min_spend)
    if points is not None:
        body["points"] = points
    if kind in ("coupon", "sample"):
        body["code"] = incentive_code(kind, action)
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
    return body


def set_expiries(member: Member, moments: Iterable[datetime]) -> None:
    """Keeps the member's upcoming lot expiries (distinct, ascending) and the next one."""
    ordered = sorted(set(moments))
    member.points_expiries = ordered
    member.points_next_expiry_at = ordered[0] if ordered else None


class Decider:
    """Collects the actions one event or one due item yields, honouring the shop's rule switches."""

    def __init__(
        self,
        context: MemberContext,
        playbook: ShopPlaybook,
        at: datetime,
        trigger: Mapping[str, str],
        event: Event | None = None,
        silent: bool = False,
    ) -> None:
        self.context = context
        self.silent = silent  # a due item handled too late: state moves on, nothing is sent or given
        self.member = context.member
        self.playbook = playbook
        self.at = at
        self.trigger = trigger
        self._event = event
        self.actions: list[ActionDecision] = []

    @classmethod
    def for_event(cls, context: MemberContext, event: Event, playbook: ShopPlaybook) -> Decider:
        return cls(context, playbook, event.time, {"event_id": event.id, "event_type": event.type}, event)

    @property
    def event(self) -> Event:
        assert self._event is not None, "only event handlers read the event"
        return self._event

    def emit(
        self,
        rule: str,
        category: Category,
        key: str,
        variables: Mapping[str, Any],
        incentive: IncentiveSpec | None = None,
        ledger_kind: LedgerKind = "gift",
    ) -> None:
        """Adds the action; an incentive is first decided (late, holdout, budget) and its decision kept.

        An incentive of points is booked on the ledger under the same fact; a coupon goes
        into the member's wallet under its code.
        """
        member = self.member
        ident = action_id(member.shop_id, member.member_id, rule, key)
        if incentive is not None and not self._decide(rule, ident, variables, incentive):
            if self.silent:
                self.context.late.append(rule)
            return
        if self.silent:
            self.context.late.append(rule)
            return
        body = incentive_body(incentive, ident, self.at) if incentive is not None else None
        if incentive is not None and incentive.kind == "points" and incentive.points:
            entry = self.credit(f"{rule}:{key}", ledger_kind, incentive.points)
            if body is not None:
                body["expires_at"] = entry.expires_at.isoformat() if entry.expires_at else None
        if incentive is not None and incentive.kind == "coupon" and body is not None:
            self._issue_coupon(rule, ident, incentive, body)
        self.actions.append(
            ActionDecision(
                action_id=ident,
                shop_id=member.shop_id,
                member_id=member.member_id,
                rule=rule,
                category=category,
                trigger=self._trigger(rule),
                occurred_at=self.at,
                template=rule,
                variables=dict(variables),
                incentive=body,
                playbook_version=self.playbook.version,
            )
        )

    def _decide(self, rule: str, ident: str, variables: Mapping[str, Any], incentive: IncentiveSpec) -> bool:
        """Whether the incentive is given; its decision is recorded whatever the outcome."""
        member, playbook = self.member, self.playbook
        config = playbook.rules.get(rule)
        value = incentives.incentive_value(incentive, playbook)
        outcome, reason = incentives.EMITTED, "given"
        if self.silent:
            lateness = playbook.schedule.max_lateness
            outcome = incentives.LATE_SKIPPED
            after = incentives.spoken(lateness) if lateness is not None else "too long"
            reason = f"its due item was handled more than {after} after it fell due (schedule.max_lateness)"
        elif config is not None and incentives.held_out(member.shop_id, member.member_id, rule, config.holdout_percent):
            outcome = incentives.HOLDOUT
            reason = f"the member is in the rule's {config.holdout_percent} % holdout"
        elif config is not None and config.budget is not None:
            budget = config.budget
            book = self.context.budgets
            if book is None:
                raise RuntimeError(f"the budget of {rule} was not loaded")
            if not book.spend_within(member.shop_id, rule, budget, self.at, self._zone(), value):
                outcome = incentives.BUDGET_EXHAUSTED
                spent = book.spent(member.shop_id, rule, budget, self.at, self._zone())
                reason = f"{spent} of the {budget.period} budget of {budget.amount} spent; this incentive is {value}"
        order_id = variables.get("order_id")
        self.context.decisions.append(
            Decision(
                decision_id=ident,
                shop_id=member.shop_id,
                member_id=member.member_id,
                rule=rule,
                outcome=outcome,
                reason=reason,
                at=self.at,
                action_id=ident if outcome == incentives.EMITTED else None,
                order_id=order_id if isinstance(order_id, str) else None,
                code=incentive_code(incentive.kind, ident)
                if outcome == incentives.EMITTED and incentive.kind == "coupon"
                else None,
                kind=incentive.kind,
                value=value,
                points=(incentive.points or 0) if incentive.kind == "points" else 0,
                playbook_version=playbook.version,
            )
        )
        return outcome == incentives.EMITTED

    def _zone(self) -> ZoneInfo:
        return zone(None, self.playbook.timezone)

    def _issue_coupon(self, rule: str, ident: str, incentive: IncentiveSpec, body: Mapping[str, Any]) -> None:
        member = self.member
        code = str(body["code"])
        expires_at = self.at + timedelta(days=incentive.valid_days)
        value = round_money(incentive.value) if incentive.value is not None else ZERO
        self.context.new_coupons.append(
            coupon := Coupon(
                shop_id=member.shop_id,
                code=code,
                member_id=member.member_id,
                rule=rule,
                action_id=ident,
                value=value,
                issued_at=self.at,
                expires_at=expires_at,
                min_spend=round_money(incentive.min_spend) if incentive.min_spend is not None else None,
                playbook_version=self.playbook.version,
            )
        )
        self.context.shop_coupons[code] = coupon  # a later payment of the batch may name it

    def _trigger(self, rule: str) -> dict[str, str]:
        """A scheduled action names its own rule, even when another due item (a stage change) decided it."""
        trigger = dict(self.trigger)
        if "schedule" in trigger:
            trigger["schedule"] = rule
        return trigger

    def care(self, rule: str, key: str, variables: Mapping[str, Any]) -> None:
        if self.playbook.rule(rule) is not None:
            self.emit(rule, "care", key, variables)

    def credit(self, entry_id: str, kind: LedgerKind, amount: int) -> LedgerEntry:
        expires = add_months(self.at, self.playbook.points.expire_after_months)
        entry = points.credit(entry_id, kind, amount, self.at, expires)
        self._book(entry)
        set_expiries(self.member, [expires, *self.member.points_expiries])
        return entry

    def debit(self, entry_id: str, kind: LedgerKind, wanted: int) -> LedgerEntry:
        entry = points.debit(self.member.points_balance, entry_id, kind, wanted, self.at)
        self._book(entry)
        return entry

    def _book(self, entry: LedgerEntry) -> None:
        self.member.points_balance += entry.points
        self.context.new_ledger.append(entry)
        if self.context.ledger is not None:
            self.context.ledger.append(entry)
