"""Applying one event to a member: state transitions and the v1 rule decisions.

Everything runs on the event's business time; the same history always yields the
same state and the same action ids. Events about an order not seen yet are parked
and applied, in business-time order, as soon as the order can take them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.domain import points
from shared.domain.decisions import Decider, MemberContext, action_id, money
from shared.domain.due_rules import next_due
from shared.domain.membership import refresh_standing, refresh_tier
from shared.domain.model import ZERO, ActionDecision, Event, Member, Order
from shared.domain.playbook import ShopPlaybook

__all__ = ["MemberContext", "Outcome", "action_id", "apply_event", "settle"]

# Events that need a paid order first; order.cancelled only needs the order to be known.
_NEEDS_PAID_ORDER = ("shipment.", "refund.", "review.", "order.completed")


@dataclass(slots=True)
class Outcome:
    """What handling one event produced."""

    actions: list[ActionDecision] = field(default_factory=list)
    parked: bool = False
    rejected: str | None = None
    released: list[Event] = field(default_factory=list)


def _order_variables(order: Order, event: Event) -> dict[str, object]:
    """The ids a journey message names; free text (``reason``) is never copied into an action."""
    variables: dict[str, object] = {"order_id": order.order_id}
    for name in ("shipment_id", "carrier", "tracking_no", "refund_id"):
        if event.data.get(name) is not None:
            variables[name] = event.data[name]
    return variables


def _set_joined_at(member: Member, at: datetime) -> None:
    """The earlier of the join and the first payment, whatever order they are consumed in."""
    if member.joined_at is None or at < member.joined_at:
        member.joined_at = at


def _member_joined(decider: Decider) -> None:
    member, data, at = decider.member, decider.event.data, decider.event.time
    if member.joined_by_event:
        return  # a repeated join changes nothing
    member.joined_by_event = True
    _set_joined_at(member, at)
    _set_profile(member, data, at)
    _set_consent(member, bool(data.get("marketing_consent", True)), at)
    refresh_tier(decider)


def _profile_updated(decider: Decider) -> None:
    _set_profile(decider.member, decider.event.data, decider.event.time)


def _set_profile(member: Member, data: Mapping[str, Any], at: datetime) -> None:
    """Each profile field keeps its latest value by business time, whatever order events arrive in."""
    for name in ("birthday", "timezone", "channel"):
        if data.get(name) is None:
            continue
        known = member.profile_at.get(name)
        if known is None or at >= datetime.fromisoformat(known):
            setattr(member, name, data[name])
            member.profile_at[name] = at.isoformat()


def _set_consent(member: Member, consent: bool, at: datetime) -> None:
    """The latest statement of consent by business time wins, whatever order they arrive in."""
    if member.consent_at is None or at >= member.consent_at:
        member.marketing_consent, member.consent_at = consent, at


def _consent_changed(decider: Decider) -> None:
    _set_consent(decider.member, bool(decider.event.data["marketing_consent"]), decider.event.time)


def _order_created(decider: Decider, order: Order) -> None:
    """The order's ``amount`` is the one it was created with, even when the payment was consumed first."""
    event = decider.event
    if order.created_at is None or event.time < order.created_at:
        order.created_at = event.time
        order.amount = event.data["amount"]


def _order_paid(decider: Decider, order: Order) -> None:
    member, event, playbook = decider.member, decider.event, decider.playbook
    if order.is_paid:
        return  # the order was already paid: a second payment event is not a second order
    amount: Decimal = event.data["amount"]
    order.paid_amount, order.paid_at = amount, event.time
    if order.created_at is None:
        order.amount = amount  # until an order.created says otherwise
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
    decider.care(
        "payment_confirmation",
        order.order_id,
        {"order_id": order.order_id, "amount": money(amount), "currency": event.data["currency"]},
    )
    earned = points.points_for(amount, playbook.points.per_currency_unit)
    if earned > 0:
        order.points_earned = earned
        decider.credit(f"earn:{order.order_id}", "earn", earned)
    if not member.first_purchase_rewarded:
        member.first_purchase_rewarded = True
        _incentive(decider, "first_purchase_gift", "once", {"order_id": order.order_id})
    elif not member.repurchase_rewarded and sum(1 for o in decider.context.orders.values() if o.is_paid) >= 2:
        member.repurchase_rewarded = True
        _incentive(decider, "repurchase_gift", "once", {"order_id": order.order_id})
    refresh_tier(decider)


def _incentive(decider: Decider, rule: str, key: str, variables: dict[str, object]) -> None:
    config = decider.playbook.rule(rule)
    if config is not None and config.incentive is not None:
        decider.emit(rule, "incentive", key, variables, config.incentive)


def _uncount(member: Member, order: Order) -> None:
    if order.counted:
        order.counted = False
        member.paid_orders -= 1


def _order_cancelled(decider: Decider, order: Order) -> None:
    if order.cancelled_at is None:
        order.status, order.cancelled_at = "cancelled", decider.event.time
        _uncount(decider.member, order)
        refresh_tier(decider)


def _order_completed(decider: Decider, order: Order) -> None:
    if order.completed_at is None:
        order.completed_at = decider.event.time
        if order.status != "cancelled":
            order.status = "completed"


_SHIPMENT_RULES = {
    "shipment.shipped": "shipped_notice",
    "shipment.out_for_delivery": "out_for_delivery_notice",
    "shipment.delivered": "delivered_notice",
}


def _is_latest(record: Mapping[str, str], name: str, at: datetime) -> bool:
    """Whether ``at`` is not before the business time ``record[name]`` was set at (``<name>_at``)."""
    known = record.get(f"{name}_at")
    return known is None or at >= datetime.fromisoformat(known)


def _latest(record: dict[str, str], name: str, value: str, at: datetime) -> None:
    """Sets ``record[name]`` unless a later event (by business time) already set it."""
    if _is_latest(record, name, at):
        record[name], record[f"{name}_at"] = value, at.isoformat()


def _earliest(record: dict[str, str], stamp: str, at: datetime) -> None:
    known = record.get(stamp)
    if known is None or at < datetime.fromisoformat(known):
        record[stamp] = at.isoformat()


def _shipment(decider: Decider, order: Order) -> None:
    """Status, carrier and tracking number are those of the latest event by business time, whatever arrived last."""
    event = decider.event
    status = event.type.removeprefix("shipment.")
    shipment_id = str(event.data["shipment_id"])
    record = order.shipments.setdefault(shipment_id, {})
    _latest(record, "status", status, event.time)
    for name in ("carrier", "tracking_no"):
        if event.data.get(name):
            _latest(record, name, str(event.data[name]), event.time)
    if status in ("shipped", "delivered"):
        _earliest(record, f"{status}_at", event.time)
    order.shipment_status = _latest_status(order)
    variables = _order_variables(order, event)
    rule = _SHIPMENT_RULES.get(event.type)
    if rule == "delivered_notice":
        variables["review_invitation"] = True
    if rule is not None:
        decider.care(rule, f"{order.order_id}|{shipment_id}", variables)
    elif event.type == "shipment.exception":
        decider.care("logistics_exception_care", f"{event.source}|{event.id}", variables)


def _latest_status(order: Order) -> str | None:
    """The status of the order's shipment event that is latest by business time."""
    stamped = [record for record in order.shipments.values() if record.get("status_at")]
    if not stamped:
        return order.shipment_status
    return max(stamped, key=lambda record: datetime.fromisoformat(record["status_at"]))["status"]


_REFUND_RULES = {
    "requested": "refund_requested_ack",
    "approved": "refund_approved_notice",
    "rejected": "refund_rejected_notice",
}


def _refund(decider: Decider, order: Order) -> None:
    """A refund's status is its latest stage by business time, and completion is final.

    Each stage is acknowledged once, also when it is consumed after the completion it
    preceded in business time; a stage dated after the completion is ignored.
    """
    event = decider.event
    refund_id = str(event.data["refund_id"])
    status = event.type.removeprefix("refund.")
    entry = order.refunds.setdefault(refund_id, {})
    completed_at = entry.get("completed_at")
    if completed_at is not None and (status == "completed" or event.time > datetime.fromisoformat(completed_at)):
        return  # a completed refund is final
    amount = money(event.data["amount"])
    if status == "completed" or (completed_at is None and _is_latest(entry, "status", event.time)):
        entry.update(status=status, status_at=event.time.isoformat(), amount=amount)
    variables = _order_variables(order, event)
    variables.update(amount=amount, currency=event.data["currency"])
    if status != "completed":
        decider.care(_REFUND_RULES[status], refund_id, variables)
        return
    entry.update(completed_at=event.time.isoformat(), completed_amount=amount)
    _apply_refunds(decider, order)
    decider.care("refund_completed_notice", refund_id, variables)
    paid = order.paid_amount or ZERO
    target = points.reversal_target(order.points_earned, paid, order.refunded_amount)
    if target > order.points_reversed:
        decider.debit(f"reverse:{refund_id}", "reverse", target - order.points_reversed)
        order.points_reversed = target
    refresh_tier(decider)


def _apply_refunds(decider: Decider, order: Order) -> None:
    """Shares the paid amount among the order's completed refunds in business-time order.

    Each refund gets what it asks for, never more than what is paid and not yet refunded
    by the refunds completed before it, so a refund consumed late takes its business-time share.
    """
    member, paid = decider.member, order.paid_amount or ZERO
    completed = sorted(
        (entry for entry in order.refunds.values() if "completed_at" in entry),
        key=lambda entry: datetime.fromisoformat(entry["completed_at"]),
    )
    refunded = ZERO
    for entry in completed:
        # Refunds completed before the shares were kept in business-time order keep what they were given.
        asked = Decimal(entry.get("completed_amount") or entry["applied"])
        applied = min(asked, max(ZERO, paid - refunded))
        entry["applied"] = money(applied)
        refunded += applied
    member.net_spend -= refunded - order.refunded_amount
    order.refunded_amount = refunded
    if refunded >= paid:
        _uncount(member, order)


def _review(decider: Decider, order: Order) -> None:
    event = decider.event
    data = event.data
    review = order.reviews.setdefault(str(data["review_id"]), {"appended": []})
    if event.type == "review.appended":
        stamp = event.time.isoformat()
        if stamp not in review["appended"]:
            review["appended"] = sorted([*review["appended"], stamp], key=datetime.fromisoformat)
        return
    if review.get("at") is not None:
        return  # the same review posted again
    review.update(
        at=event.time.isoformat(),
        rating=int(data["rating"]),
        text_length=int(data["text_length"]),
        photos=int(data["photo_count"]),
        videos=int(data.get("video_count") or 0),
    )
    config = decider.playbook.rule("review_reward")
    if (
        config is not None
        and config.incentive is not None
        and not order.review_rewarded
        and review["photos"] >= config.min_photos
        and review["text_length"] >= config.min_text_length
    ):
        order.review_rewarded = True
        decider.emit(
            "review_reward",
            "incentive",
            order.order_id,
            {"order_id": order.order_id, "review_id": str(data["review_id"])},
            config.incentive,
            ledger_kind="review_reward",
        )


_ORDER_HANDLERS: dict[str, Callable[[Decider, Order], None]] = {
    "order.created": _order_created,
    "order.paid": _order_paid,
    "order.cancelled": _order_cancelled,
    "order.completed": _order_completed,
}
_MEMBER_HANDLERS: dict[str, Callable[[Decider], None]] = {
    "member.joined": _member_joined,
    "member.profile_updated": _profile_updated,
    "member.consent_changed": _consent_changed,
}
_FAMILY_HANDLERS: dict[str, Callable[[Decider, Order], None]] = {
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
    decider = Decider.for_event(context, event, playbook)
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


def settle(context: MemberContext, playbook: ShopPlaybook) -> None:
    """After a member's events are applied: its standing and next due time, as of its clock."""
    refresh_standing(context, playbook)
    context.member.next_due_at = next_due(context, playbook)
