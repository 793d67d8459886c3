"""Applying one event to a member: state transitions and the v1 rule decisions.

Everything runs on the event's business time; the same history always yields the
same state and the same action ids. Events about an order not seen yet are parked
and applied, in business-time order, as soon as the order can take them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.domain.model import ZERO, ActionDecision, Category, Event, Member, Order
from shared.domain.playbook import IncentiveSpec, ShopPlaybook
from shared.domain.tiers import qualifying_tier

ACTION_NAMESPACE = uuid.UUID("6f1c7f0e-3f43-4d7b-9a55-0b8f6c2b1e10")

# Events that need a paid order first; order.cancelled only needs the order to be known.
_NEEDS_PAID_ORDER = ("shipment.", "refund.", "review.", "order.completed")


@dataclass(slots=True)
class Outcome:
    """What handling one event produced."""

    actions: list[ActionDecision] = field(default_factory=list)
    parked: bool = False
    rejected: str | None = None
    released: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class MemberContext:
    """A member with all of its orders and parked events.

    ``shop_orders`` holds orders of other members that the batch refers to, so an
    event naming another member's order can be told apart from a new order.
    """

    member: Member
    orders: dict[str, Order] = field(default_factory=dict)
    shop_orders: dict[str, Order] = field(default_factory=dict)
    pending: list[Event] = field(default_factory=list)
    touched_orders: set[str] = field(default_factory=set)


def action_id(*parts: str) -> str:
    """A stable id from the business fact that triggered the action."""
    return str(uuid.uuid5(ACTION_NAMESPACE, "|".join(parts)))


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _incentive(spec: IncentiveSpec, action: str, at: datetime) -> dict[str, Any]:
    """The incentive payload; coupon codes derive from the action id so replays reproduce them."""
    body: dict[str, Any] = {"kind": spec.kind}
    if spec.value is not None:
        body["value"] = _money(spec.value)
    if spec.min_spend is not None:
        body["min_spend"] = _money(spec.min_spend)
    if spec.points is not None:
        body["points"] = spec.points
    if spec.kind in ("coupon", "sample"):
        body["code"] = spec.kind[0].upper() + hashlib.sha256(action.encode()).hexdigest()[:12].upper()
        body["expires_at"] = (at + timedelta(days=spec.valid_days)).isoformat()
    return body


class _Decider:
    """Collects the actions one event yields, honouring the shop's rule switches."""

    def __init__(self, context: MemberContext, event: Event, playbook: ShopPlaybook) -> None:
        self.context = context
        self.member = context.member
        self.event = event
        self.playbook = playbook
        self.actions: list[ActionDecision] = []

    def emit(
        self,
        rule: str,
        category: Category,
        key: str,
        variables: Mapping[str, Any],
        incentive: IncentiveSpec | None = None,
    ) -> None:
        member, event = self.member, self.event
        ident = action_id(member.shop_id, member.member_id, rule, key)
        self.actions.append(
            ActionDecision(
                action_id=ident,
                shop_id=member.shop_id,
                member_id=member.member_id,
                rule=rule,
                category=category,
                trigger={"event_id": event.id, "event_type": event.type},
                occurred_at=event.time,
                template=rule,
                variables=dict(variables),
                incentive=_incentive(incentive, ident, event.time) if incentive is not None else None,
            )
        )

    def care(self, rule: str, key: str, variables: Mapping[str, Any]) -> None:
        if self.playbook.rule(rule) is not None:
            self.emit(rule, "care", key, variables)


def _order_variables(order: Order, event: Event) -> dict[str, Any]:
    variables: dict[str, Any] = {"order_id": order.order_id}
    for name in ("shipment_id", "carrier", "tracking_no", "reason", "refund_id"):
        if event.data.get(name) is not None:
            variables[name] = event.data[name]
    return variables


def figures_as_of(orders: Iterable[Order], at: datetime) -> tuple[Decimal, int]:
    """Net spend and paid orders counting only what had happened by business time ``at``.

    Refunds travel on their own topic and may be consumed before or after a later
    payment; judging a payment on the figures as of its own time makes the decision
    independent of that arrival order.
    """
    net_spend, paid_orders = ZERO, 0
    for order in orders:
        if order.paid_at is None or order.paid_amount is None or order.paid_at > at:
            continue
        refunded = sum(
            (
                Decimal(refund["applied"])
                for refund in order.refunds.values()
                if "applied" in refund and datetime.fromisoformat(refund["completed_at"]) <= at
            ),
            ZERO,
        )
        net_spend += order.paid_amount - refunded
        cancelled = order.cancelled_at is not None and order.cancelled_at <= at
        if not cancelled and refunded < order.paid_amount:
            paid_orders += 1
    return net_spend, paid_orders


def _upgrade_tier(decider: _Decider) -> None:
    """Raises the tier at once when the figures reach a higher one; never lowers it."""
    member, playbook, at = decider.member, decider.playbook, decider.event.time
    # A payment consumed after later ones is judged together with them.
    as_of = max(at, member.last_order_at) if member.last_order_at is not None else at
    reached = qualifying_tier(playbook, *figures_as_of(decider.context.orders.values(), as_of))
    if reached is None:
        return
    current_rank = playbook.tier_rank(member.tier)
    reached_rank = playbook.tier_rank(reached.code)
    if reached_rank < current_rank:
        return
    if member.tier_qualified_at is None or at > member.tier_qualified_at:
        member.tier_qualified_at = at
    if reached_rank == current_rank:
        return
    was_ranked = current_rank >= 0
    member.tier, member.tier_since = reached.code, at
    if not was_ranked and reached_rank == 0:
        return  # entering the base tier is joining, not an upgrade
    gift = playbook.rule("tier_upgrade_gift")
    if reached.code not in member.rewarded_tiers and gift is not None:
        spec = gift.per_tier.get(reached.code)
        if spec is not None:
            decider.emit(
                "tier_upgrade_gift",
                "incentive",
                reached.code,
                {"tier": reached.code, "tier_name": reached.name},
                spec,
            )
    # Tiers skipped on the way up count as given, so a later return to them gives nothing.
    for tier in playbook.tiers[: reached_rank + 1]:
        if tier.code not in member.rewarded_tiers:
            member.rewarded_tiers.append(tier.code)


def _enter_base_tier(member: Member, playbook: ShopPlaybook, at: datetime) -> None:
    """The base tier dates from the earliest join or payment, whichever is consumed first."""
    if not playbook.tiers:
        return
    base = playbook.tiers[0].code
    if member.tier is None:
        member.tier, member.tier_since, member.tier_qualified_at = base, at, at
    elif member.tier == base and member.tier_since is not None and at < member.tier_since:
        member.tier_since = at


def _set_joined_at(member: Member, at: datetime) -> None:
    """The earlier of the join and the first payment, whatever order they are consumed in."""
    if member.joined_at is None or at < member.joined_at:
        member.joined_at = at


def _member_joined(decider: _Decider) -> None:
    member, data, at = decider.member, decider.event.data, decider.event.time
    if member.joined_by_event:
        return  # a repeated join changes nothing
    member.joined_by_event = True
    _set_joined_at(member, at)
    # A join consumed after a profile update must not undo it: it only fills gaps.
    member.channel = member.channel or data.get("channel")
    member.birthday = member.birthday or data.get("birthday")
    member.timezone = member.timezone or data.get("timezone")
    _set_consent(member, bool(data.get("marketing_consent", True)), at)
    _enter_base_tier(member, decider.playbook, at)


def _profile_updated(decider: _Decider) -> None:
    member, data = decider.member, decider.event.data
    for name in ("birthday", "timezone", "channel"):
        if data.get(name) is not None:
            setattr(member, name, data[name])


def _set_consent(member: Member, consent: bool, at: datetime) -> None:
    """The latest statement of consent by business time wins, whatever order they arrive in."""
    if member.consent_at is None or at >= member.consent_at:
        member.marketing_consent, member.consent_at = consent, at


def _consent_changed(decider: _Decider) -> None:
    _set_consent(decider.member, bool(decider.event.data["marketing_consent"]), decider.event.time)


def _order_created(decider: _Decider, order: Order) -> None:
    event = decider.event
    if order.created_at is None:
        order.created_at = event.time
    if order.amount is None:
        order.amount = event.data["amount"]


def _order_paid(decider: _Decider, order: Order) -> None:
    member, event, playbook = decider.member, decider.event, decider.playbook
    if order.is_paid:
        return  # the order was already paid: a second payment event is not a second order
    amount: Decimal = event.data["amount"]
    order.paid_amount, order.paid_at = amount, event.time
    if order.amount is None:
        order.amount = amount
    if order.status == "created":
        order.status = "paid"
    member.net_spend += amount
    if order.cancelled_at is None:
        order.counted = True
        member.paid_orders += 1
    if member.first_order_at is None or event.time < member.first_order_at:
        member.first_order_at = event.time
    if member.last_order_at is None or event.time > member.last_order_at:
        member.last_order_at = event.time
    _set_joined_at(member, event.time)
    _enter_base_tier(member, playbook, event.time)
    decider.care(
        "payment_confirmation",
        order.order_id,
        {"order_id": order.order_id, "amount": _money(amount), "currency": event.data["currency"]},
    )
    first_gift = playbook.rule("first_purchase_gift")
    if not member.first_purchase_rewarded:
        member.first_purchase_rewarded = True
        if first_gift is not None and first_gift.incentive is not None:
            decider.emit("first_purchase_gift", "incentive", "once", {"order_id": order.order_id}, first_gift.incentive)
    _upgrade_tier(decider)


def _uncount(member: Member, order: Order) -> None:
    if order.counted:
        order.counted = False
        member.paid_orders -= 1


def _order_cancelled(decider: _Decider, order: Order) -> None:
    if order.cancelled_at is None:
        order.status, order.cancelled_at = "cancelled", decider.event.time
        _uncount(decider.member, order)


def _order_completed(decider: _Decider, order: Order) -> None:
    if order.completed_at is None:
        order.completed_at = decider.event.time
        if order.status != "cancelled":
            order.status = "completed"


_SHIPMENT_RULES = {
    "shipment.shipped": "shipped_notice",
    "shipment.delivered": "delivered_notice",
}


def _shipment(decider: _Decider, order: Order) -> None:
    event = decider.event
    order.shipment_status = event.type.removeprefix("shipment.")
    variables = _order_variables(order, event)
    shipment_id = str(event.data["shipment_id"])
    rule = _SHIPMENT_RULES.get(event.type)
    if rule == "delivered_notice":
        variables["review_invitation"] = True
    if rule is not None:
        decider.care(rule, f"{order.order_id}|{shipment_id}", variables)
    elif event.type == "shipment.exception":
        decider.care("logistics_exception_care", f"{event.source}|{event.id}", variables)


def _refund(decider: _Decider, order: Order) -> None:
    member, event = decider.member, decider.event
    refund_id = str(event.data["refund_id"])
    status = event.type.removeprefix("refund.")
    entry = order.refunds.setdefault(refund_id, {"amount": _money(event.data["amount"])})
    if entry.get("status") == "completed":
        return  # a completed refund is final
    entry["status"] = status
    if status != "completed":
        return
    paid = order.paid_amount or ZERO
    effective = min(event.data["amount"], max(ZERO, paid - order.refunded_amount))
    entry["applied"] = _money(effective)
    entry["completed_at"] = event.time.isoformat()
    order.refunded_amount += effective
    member.net_spend -= effective
    if order.refunded_amount >= paid:
        _uncount(member, order)
    variables = _order_variables(order, event)
    variables.update(amount=_money(event.data["amount"]), currency=event.data["currency"])
    decider.care("refund_completed_notice", refund_id, variables)


def _review(decider: _Decider, order: Order) -> None:
    review_id = str(decider.event.data["review_id"])
    if review_id not in order.reviews:
        order.reviews.append(review_id)


_ORDER_HANDLERS: dict[str, Callable[[_Decider, Order], None]] = {
    "order.created": _order_created,
    "order.paid": _order_paid,
    "order.cancelled": _order_cancelled,
    "order.completed": _order_completed,
}
_MEMBER_HANDLERS: dict[str, Callable[[_Decider], None]] = {
    "member.joined": _member_joined,
    "member.profile_updated": _profile_updated,
    "member.consent_changed": _consent_changed,
}
_FAMILY_HANDLERS: dict[str, Callable[[_Decider, Order], None]] = {
    "shipment": _shipment,
    "refund": _refund,
    "review": _review,
}


def _can_apply(event: Event, order: Order | None) -> bool:
    if event.type in ("order.created", "order.paid"):
        return True
    if order is None:
        return False
    return order.is_paid or not event.type.startswith(_NEEDS_PAID_ORDER)


def _apply_now(context: MemberContext, event: Event, playbook: ShopPlaybook) -> list[ActionDecision]:
    member = context.member
    decider = _Decider(context, event, playbook)
    member_handler = _MEMBER_HANDLERS.get(event.type)
    if member_handler is not None:
        member_handler(decider)
    else:
        order_id = event.order_id
        assert order_id is not None
        order = context.orders.get(order_id)
        if order is None:
            order = Order(order_id=order_id, member_id=member.member_id)
            context.orders[order_id] = context.shop_orders[order_id] = order
        context.touched_orders.add(order_id)
        handler = _ORDER_HANDLERS.get(event.type) or _FAMILY_HANDLERS[event.type.split(".", 1)[0]]
        handler(decider, order)
    if member.last_event_at is None or event.time > member.last_event_at:
        member.last_event_at = event.time
    return decider.actions


def apply_event(context: MemberContext, event: Event, playbook: ShopPlaybook) -> Outcome:
    """Applies ``event`` (and any parked events it unblocks) to the member in ``context``."""
    outcome = Outcome()
    order_id = event.order_id
    order = context.orders.get(order_id) if order_id is not None else None
    if order_id is not None and order is None and order_id in context.shop_orders:
        outcome.rejected = "order_member_mismatch"
        return outcome
    if order_id is not None and not _can_apply(event, order):
        context.pending.append(event)
        outcome.parked = True
        return outcome
    outcome.actions.extend(_apply_now(context, event, playbook))
    if order_id is not None:
        _release_parked(context, order_id, playbook, outcome)
    return outcome


def _release_parked(context: MemberContext, order_id: str, playbook: ShopPlaybook, outcome: Outcome) -> None:
    """Applies, oldest business time first, the parked events of ``order_id`` that now fit."""
    while context.pending:
        order = context.orders.get(order_id)
        ready = [e for e in context.pending if e.order_id == order_id and _can_apply(e, order)]
        if not ready:
            return
        event = min(ready, key=lambda e: (e.time, e.source, e.id))
        context.pending.remove(event)
        outcome.released.append(event)
        outcome.actions.extend(_apply_now(context, event, playbook))
