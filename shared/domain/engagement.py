"""Applying one event to a member: state transitions and the v1 rule decisions.

Everything runs on the event's business time; the same history always yields the
same state and the same action ids. Events about an order not seen yet are parked
and applied, in business-time order, as soon as the order can take them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from shared.domain import points
from shared.domain.categories import item_categories
from shared.domain.decisions import Decider, MemberContext, action_id, money
from shared.domain.due_rules import next_due
from shared.domain.events import (
    PROFILE_FIELDS,
    ConsentChanged,
    Event,
    MemberJoined,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderPaid,
    OrderPayload,
    ProfileUpdated,
    RefundEvent,
    ReviewEvent,
    ShipmentEvent,
    TagsChanged,
)
from shared.domain.membership import refresh_standing, refresh_tier
from shared.domain.model import (
    ZERO,
    ActionDecision,
    CouponChange,
    ExternalTag,
    Member,
    Order,
    RefundRecord,
    ReviewRecord,
    ShipmentRecord,
    UnredeemedCode,
)
from shared.domain.money import round_money
from shared.domain.playbook import ShopPlaybook
from shared.domain.tags import refresh_tags

__all__ = ["MemberContext", "Outcome", "action_id", "apply_event", "settle"]

# Events that need a paid order first; order.cancelled only needs the order to be known.
_NEEDS_PAID_ORDER = (ShipmentEvent, RefundEvent, ReviewEvent, OrderCompleted)


@dataclass(slots=True)
class Outcome:
    """What handling one event produced."""

    actions: list[ActionDecision] = field(default_factory=list)
    parked: bool = False
    rejected: str | None = None
    released: list[Event] = field(default_factory=list)


def _shipment_variables(order: Order, data: ShipmentEvent) -> dict[str, object]:
    """The ids a journey message names; free text (``reason``) never reaches the domain."""
    variables: dict[str, object] = {"order_id": order.order_id, "shipment_id": data.shipment_id}
    if data.carrier is not None:
        variables["carrier"] = data.carrier
    if data.tracking_no is not None:
        variables["tracking_no"] = data.tracking_no
    return variables


def _set_joined_at(member: Member, at: datetime) -> None:
    """The earlier of the join and the first payment, whatever order they are consumed in."""
    if member.joined_at is None or at < member.joined_at:
        member.joined_at = at


def _member_joined(decider: Decider, data: MemberJoined) -> None:
    member, at = decider.member, decider.event.time
    if member.joined_by_event:
        return  # a repeated join changes nothing
    member.joined_by_event = True
    _set_joined_at(member, at)
    _set_profile(member, data, at)
    _set_consent(member, data.marketing_consent, at)
    refresh_tier(decider)


def _set_profile(member: Member, data: MemberJoined | ProfileUpdated, at: datetime) -> None:
    """Each profile field keeps its latest value by business time, whatever order events arrive in.

    The fields share their names with the member's (``PROFILE_FIELDS``), so one rule applies them all.
    """
    for name in PROFILE_FIELDS:
        value = getattr(data, name)
        if value is not None and _profile_is_latest(member, name, at):
            setattr(member, name, value)


def _profile_is_latest(member: Member, name: str, at: datetime) -> bool:
    """Whether a value of ``name`` given at ``at`` is not older than the one kept; if so, ``at`` is noted."""
    if not _not_before(member.profile_at.get(name), at):
        return False
    member.profile_at[name] = at
    return True


def _not_before(known: datetime | None, at: datetime) -> bool:
    """Whether a value set at ``at`` may replace one set at ``known`` (None: never set): the latest wins."""
    return known is None or at >= known


def _set_consent(member: Member, consent: bool, at: datetime) -> None:
    """The latest statement of consent by business time wins, whatever order they arrive in."""
    if member.consent_at is None or at >= member.consent_at:
        member.marketing_consent, member.consent_at = consent, at


def _change_tags(member: Member, data: TagsChanged, at: datetime) -> None:
    """Each external tag keeps its latest change by business time, so replays and late arrivals agree.

    A change at the same time as the one kept replaces it, as for profile fields.
    """
    changes = [(tag, True) for tag in data.add] + [(tag, False) for tag in data.remove]
    for tag, present in changes:
        known = member.external_tags.get(tag)
        if _not_before(known.at if known is not None else None, at):
            member.external_tags[tag] = ExternalTag(present=present, at=at)


def _order_created(decider: Decider, order: Order, data: OrderCreated) -> None:
    """The order's ``amount`` and items are those it was created with, even when the payment was consumed first."""
    event = decider.event
    if order.created_at is None or event.time < order.created_at:
        order.created_at = event.time
        order.amount = data.amount
        order.created_categories = item_categories(data.items or ())


def _order_paid(decider: Decider, order: Order, data: OrderPaid) -> None:
    member, event, playbook = decider.member, decider.event, decider.playbook
    if order.is_paid:
        return  # the order was already paid: a second payment event is not a second order
    amount = data.amount
    order.paid_amount, order.paid_at = amount, event.time
    if data.items is not None:
        order.paid_categories = item_categories(data.items)  # else the created items' stand
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
    if data.coupon_codes:
        _redeem_coupons(decider, order, data.coupon_codes)
    decider.care(
        "payment_confirmation",
        order.order_id,
        {"order_id": order.order_id, "amount": money(amount), "currency": data.currency},
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


def _redeem_coupons(decider: Decider, order: Order, codes: Iterable[str]) -> None:
    """Redeems the member's own codes valid at the payment's time; every other code is kept as unredeemed.

    ``shop_coupons`` holds every coupon the batch's payments name. A code valid at the payment
    redeems even when the scheduler already expired it: the payment came first in business
    time, only its event arrived late. A code of another member's wallet (or of none) redeems
    nothing; it is kept, so that the report can count shared codes from the wallet whatever
    order the members' events arrived in.
    """
    context, member, at = decider.context, decider.member, decider.event.time
    for code in dict.fromkeys(codes):
        if _redeem(context, member, code, order.order_id, at):
            continue
        context.unredeemed.append(UnredeemedCode(code, order.order_id, member.member_id, at))
        known = context.shop_coupons.get(code)
        if known is not None and known.member_id != member.member_id:
            context.shared_seen += 1


def _redeem(context: MemberContext, member: Member, code: str, order_id: str, at: datetime) -> bool:
    """Whether ``code`` is a coupon of the member's own wallet, not yet redeemed and valid at ``at``; if so,
    it is redeemed."""
    known = context.shop_coupons.get(code)
    if known is None or known.member_id != member.member_id or known.status == "redeemed":
        return False
    if not known.issued_at <= at < known.expires_at:
        return False
    known.status, known.order_id, known.redeemed_at = "redeemed", order_id, at
    context.coupon_changes.append(CouponChange(code, "redeemed", order_id, at))
    return True


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
    "shipped": "shipped_notice",
    "out_for_delivery": "out_for_delivery_notice",
    "delivered": "delivered_notice",
}


def _shipment(decider: Decider, order: Order, data: ShipmentEvent) -> None:
    """Status, carrier and tracking number are those of the latest event by business time, whatever arrived last."""
    event, status, shipment_id = decider.event, data.status, data.shipment_id
    record = order.shipments.setdefault(shipment_id, ShipmentRecord())
    at = event.time
    if _not_before(record.status_at, at):
        record.status, record.status_at = status, at
    if data.carrier and _not_before(record.carrier_at, at):
        record.carrier, record.carrier_at = data.carrier, at
    if data.tracking_no and _not_before(record.tracking_no_at, at):
        record.tracking_no, record.tracking_no_at = data.tracking_no, at
    if status == "shipped" and (record.shipped_at is None or at < record.shipped_at):
        record.shipped_at = at
    if status == "delivered" and (record.delivered_at is None or at < record.delivered_at):
        record.delivered_at = at
    order.shipment_status = _latest_status(order)
    variables = _shipment_variables(order, data)
    rule = _SHIPMENT_RULES.get(status)
    if rule == "delivered_notice":
        variables["review_invitation"] = True
    if rule is not None:
        decider.care(rule, f"{order.order_id}|{shipment_id}", variables)
    elif status == "exception":
        decider.care("logistics_exception_care", f"{event.source}|{event.id}", variables)


def _latest_status(order: Order) -> str | None:
    """The status of the order's shipment event that is latest by business time."""
    latest_at: datetime | None = None
    status = order.shipment_status
    for record in order.shipments.values():
        if record.status_at is not None and (latest_at is None or record.status_at > latest_at):
            latest_at, status = record.status_at, record.status
    return status


_REFUND_RULES = {
    "requested": "refund_requested_ack",
    "approved": "refund_approved_notice",
    "rejected": "refund_rejected_notice",
}


def _refund(decider: Decider, order: Order, data: RefundEvent) -> None:
    """A refund's status is its latest stage by business time, and completion is final.

    Each stage is acknowledged once, also when it is consumed after the completion it
    preceded in business time; a stage dated after the completion is ignored.
    """
    event, refund_id, status = decider.event, data.refund_id, data.status
    entry = order.refunds.setdefault(refund_id, RefundRecord())
    completed_at = entry.completed_at
    if completed_at is not None and (status == "completed" or event.time > completed_at):
        return  # a completed refund is final
    amount = round_money(data.amount)
    if status == "completed" or (completed_at is None and _not_before(entry.status_at, event.time)):
        entry.status, entry.status_at, entry.amount = status, event.time, amount
    variables: dict[str, object] = {
        "order_id": order.order_id,
        "refund_id": refund_id,
        "amount": money(amount),
        "currency": data.currency,
    }
    if status != "completed":
        decider.care(_REFUND_RULES[status], refund_id, variables)
        return
    entry.completed_at, entry.completed_amount = event.time, amount
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
        (entry for entry in order.refunds.values() if entry.completed_at is not None),
        key=_completed_at,
    )
    refunded = ZERO
    for entry in completed:
        # Refunds completed before the shares were kept in business-time order keep what they were given.
        asked = entry.completed_amount if entry.completed_amount is not None else entry.applied
        if asked is None:
            raise ValueError("a completed refund names no amount")
        applied = min(asked, max(ZERO, paid - refunded))
        entry.applied = round_money(applied)
        refunded += applied
    member.net_spend -= refunded - order.refunded_amount
    order.refunded_amount = refunded
    if refunded >= paid:
        _uncount(member, order)


def _completed_at(entry: RefundRecord) -> datetime:
    assert entry.completed_at is not None
    return entry.completed_at


def _review(decider: Decider, order: Order, data: ReviewEvent) -> None:
    event = decider.event
    review = order.reviews.setdefault(data.review_id, ReviewRecord())
    at = event.time
    if data.kind == "appended":
        # The same time noted twice is one appended review: the same instant with the same offset.
        if not any(known == at and known.utcoffset() == at.utcoffset() for known in review.appended):
            review.appended = sorted([*review.appended, at])
        return
    if review.at is not None:
        return  # the same review posted again
    review.at, review.rating, review.text_length = at, data.rating, data.text_length
    review.photos, review.videos = data.photo_count, data.video_count or 0
    config = decider.playbook.rule("review_reward")
    if (
        config is not None
        and config.incentive is not None
        and not order.review_rewarded
        and data.photo_count >= config.min_photos
        and data.text_length >= config.min_text_length
    ):
        order.review_rewarded = True
        decider.emit(
            "review_reward",
            "incentive",
            order.order_id,
            {"order_id": order.order_id, "review_id": data.review_id},
            config.incentive,
            ledger_kind="review_reward",
        )


def _apply_to_order(decider: Decider, order: Order, data: OrderPayload) -> None:
    match data:
        case OrderCreated():
            _order_created(decider, order, data)
        case OrderPaid():
            _order_paid(decider, order, data)
        case OrderCancelled():
            _order_cancelled(decider, order)
        case OrderCompleted():
            _order_completed(decider, order)
        case ShipmentEvent():
            _shipment(decider, order, data)
        case RefundEvent():
            _refund(decider, order, data)
        case ReviewEvent():
            _review(decider, order, data)
        case _:
            assert_never(data)


def _can_apply(event: Event, order: Order | None) -> bool:
    if isinstance(event.data, OrderCreated | OrderPaid):
        return True
    if order is None:
        return False
    return order.is_paid or not isinstance(event.data, _NEEDS_PAID_ORDER)


def _apply_now(context: MemberContext, event: Event, playbook: ShopPlaybook) -> list[ActionDecision]:
    member = context.member
    decider = Decider.for_event(context, event, playbook)
    data = event.data
    if isinstance(data, MemberJoined):
        _member_joined(decider, data)
    elif isinstance(data, ProfileUpdated):
        _set_profile(member, data, event.time)
    elif isinstance(data, ConsentChanged):
        _set_consent(member, data.marketing_consent, event.time)
    elif isinstance(data, TagsChanged):
        _change_tags(member, data, event.time)
    else:
        order_id = data.order_id
        order = context.orders.get(order_id)
        if order is None:
            order = Order(order_id=order_id, member_id=member.member_id)
            context.orders[order_id] = context.shop_orders[order_id] = order
        context.touched_orders.add(order_id)
        _apply_to_order(decider, order, data)
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
    """After a member's events are applied: its standing, tags and next due time, as of its clock."""
    refresh_standing(context, playbook)
    refresh_tags(context, playbook)
    context.member.next_due_at = next_due(context, playbook)
