"""Time-based rules: what falls due for a member and when, and what each due item does.

``plan`` derives every pending due item from the member's state alone (marks of what
was already done, orders, ledger summary), so the member row only needs to carry
the earliest due time, indexed, for the scheduler to find it. ``run_due`` handles
the items due up to ``as_of`` in due order, each on its own due time as business
time; running it again for the same ``as_of`` finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.domain import lifecycle, points
from shared.domain.calendar import next_anniversary, next_birthday, zone
from shared.domain.decisions import Decider, MemberContext, money, set_expiries
from shared.domain.membership import paid_times, refresh_standing, review_tier, tier_timeline
from shared.domain.model import ActionDecision, Order, ShipmentRecord
from shared.domain.playbook import ShopPlaybook
from shared.domain.tags import refresh_tags
from shared.domain.tiers import lapses_at

MAX_ITEMS_PER_RUN = 10_000  # a guard against a rule that would never stop falling due
TAGS = "tags"  # the due item of a time-dependent tag change


@dataclass(frozen=True, slots=True)
class DueItem:
    due_at: datetime
    rule: str
    key: str
    order_id: str | None = None
    expires_at: datetime | None = None  # the points expiry a reminder is about


def _mark(context: MemberContext, name: str) -> datetime | None:
    return context.member.schedule_marks.get(name)


def _set_mark(context: MemberContext, name: str, at: datetime) -> None:
    context.member.schedule_marks[name] = at


def _first_seen(context: MemberContext) -> datetime | None:
    member = context.member
    return member.joined_at or member.first_order_at or member.last_event_at


def plan(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    """Every due item the member's state implies, whether already due or not, in due order."""
    return sorted(_pending(context, playbook), key=_order_key)


def _pending(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    """The due items in no particular order: callers mostly need only the earliest."""
    items: list[DueItem] = []
    for planner in (_member_gifts, _calendar_gifts, _lifecycle, _tier_review, _points, _tags):
        items.extend(planner(context, playbook))
    journey = _JourneyRules.of(playbook)
    if journey.any:
        for order in context.orders.values():
            items.extend(_journey(order, journey))
    return items


def _order_key(item: DueItem) -> tuple[datetime, str, str]:
    return (item.due_at, item.rule, item.key)


def next_due(context: MemberContext, playbook: ShopPlaybook) -> datetime | None:
    return _earliest(_pending(context, playbook))


def _earliest(items: list[DueItem]) -> datetime | None:
    return min(item.due_at for item in items) if items else None


@dataclass(frozen=True, slots=True)
class _JourneyRules:
    """The delays of the journey's waiting nodes, looked up once per plan rather than per order."""

    unpaid: timedelta | None
    delivery: timedelta | None
    invitation: timedelta | None

    @property
    def any(self) -> bool:
        return self.unpaid is not None or self.delivery is not None or self.invitation is not None

    @classmethod
    def of(cls, playbook: ShopPlaybook) -> _JourneyRules:
        def delay(rule: str) -> timedelta | None:
            config = playbook.rule(rule)
            return config.delay if config is not None else None

        return cls(delay("unpaid_reminder"), delay("delivery_delay_care"), delay("review_invitation"))


def _member_gifts(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    joined = context.member.joined_at
    if joined is None:
        return []
    items = []
    for rule in ("one_month_gift", "hundred_day_gift"):
        config = playbook.rule(rule)
        if config is not None and config.delay is not None and _mark(context, rule) is None:
            items.append(DueItem(joined + config.delay, rule, "once"))
    return items


def _calendar_gifts(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    member = context.member
    first = _first_seen(context)
    if first is None:
        return []
    tz = zone(member.timezone, playbook.timezone)
    items = []
    anniversary = playbook.rule("anniversary_gift")
    if anniversary is not None and member.joined_at is not None:
        after = _mark(context, "anniversary_gift") or member.joined_at
        years, due = next_anniversary(member.joined_at, after, tz, anniversary.send_at)
        items.append(DueItem(due, "anniversary_gift", str(years)))
    birthday = playbook.rule("birthday_gift")
    if birthday is not None and member.birthday:
        # Counted from when the birthday became known: no gifts for birthdays before that.
        known = member.profile_at.get("birthday")
        after = max(t for t in (_mark(context, "birthday_gift"), first, known) if t is not None)
        found = next_birthday(member.birthday, after, tz, birthday.send_at)
        if found is not None:
            items.append(DueItem(found[1], "birthday_gift", str(found[0])))
    return items


def _lifecycle(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    moment = lifecycle.next_transition(paid_times(context), _mark(context, "lifecycle"), playbook.lifecycle)
    return [DueItem(moment, "lifecycle", "stage")] if moment is not None else []


def _tier_review(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    member = context.member
    rank = playbook.tier_rank(member.tier)
    if rank <= 0:
        return []
    lapse = lapses_at(tier_timeline(context, playbook), rank)
    if lapse is None:
        return []
    due = lapse + timedelta(days=playbook.tier_policy.retention_days)
    if member.tier_reviewed_at is not None and due <= member.tier_reviewed_at:
        return []
    return [DueItem(due, "tier_review", member.tier or "")]


def _points(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    """The next lot expiry, and a reminder for the first expiry not reminded of yet."""
    expiries = context.member.points_expiries
    if not expiries:
        return []
    items = [DueItem(expiries[0], "points_expiry", expiries[0].isoformat())]
    reminder = playbook.rule("points_expiry_reminder")
    reminded = _mark(context, "points_expiry_reminder")
    upcoming = [moment for moment in expiries if reminded is None or moment > reminded]
    if reminder is not None and reminder.lead is not None and upcoming:
        expiry = upcoming[0]
        items.append(DueItem(expiry - reminder.lead, "points_expiry_reminder", expiry.isoformat(), expires_at=expiry))
    return items


def _tags(context: MemberContext, playbook: ShopPlaybook) -> list[DueItem]:
    """When a tag may next change with time alone: the member's tags are evaluated again then."""
    until = context.member.tags_until
    return [DueItem(until, TAGS, "refresh")] if until is not None else []


def _journey(order: Order, rules: _JourneyRules) -> list[DueItem]:
    """Care nodes that wait for something not to happen: payment, delivery, a review."""
    items = []
    if rules.unpaid is not None and order.created_at is not None and "unpaid_reminder" not in order.care_done:
        due = order.created_at + rules.unpaid
        if not _before(order.paid_at, due) and not _before(order.cancelled_at, due):
            items.append(DueItem(due, "unpaid_reminder", order.order_id, order.order_id))
    if rules.delivery is not None:
        for shipment_id, shipment in order.shipments.items():
            shipped = shipment.shipped_at
            if shipped is None or f"delivery_delay_care:{shipment_id}" in order.care_done:
                continue
            due = shipped + rules.delivery
            if not _before(shipment.delivered_at, due):
                items.append(DueItem(due, "delivery_delay_care", shipment_id, order.order_id))
    if rules.invitation is not None and order.completed_at is not None and "review_invitation" not in order.care_done:
        due = order.completed_at + rules.invitation
        if not _before(_first_review(order), due):
            items.append(DueItem(due, "review_invitation", order.order_id, order.order_id))
    return items


def _before(moment: datetime | None, due: datetime) -> bool:
    return moment is not None and moment <= due


def _first_review(order: Order) -> datetime | None:
    times = [review.at for review in order.reviews.values() if review.at is not None]
    return min(times) if times else None


def run_due(context: MemberContext, playbook: ShopPlaybook, as_of: datetime) -> list[ActionDecision]:
    """Handles every item due up to ``as_of``, oldest first, and moves the member's clock to ``as_of``."""
    actions: list[ActionDecision] = []
    pending = _pending(context, playbook)
    for _ in range(MAX_ITEMS_PER_RUN):
        due = [item for item in pending if item.due_at <= as_of]
        if not due:
            break
        item = min(due, key=_order_key)
        lateness = playbook.schedule.max_lateness
        decider = Decider(
            context,
            playbook,
            item.due_at,
            {"schedule": item.rule, "due_at": item.due_at.isoformat()},
            silent=lateness is not None and as_of - item.due_at > lateness,
        )
        _HANDLERS[item.rule](decider, item)
        actions.extend(decider.actions)
        pending = _pending(context, playbook)
    member = context.member
    if member.scheduled_until is None or as_of > member.scheduled_until:
        member.scheduled_until = as_of
    refresh_standing(context, playbook)  # reads the plan's inputs but changes none of them
    refresh_tags(context, playbook)  # evaluated once, as of the run, whatever tag changes fell due on the way
    member.next_due_at = _earliest([item for item in pending if item.rule != TAGS] + _tags(context, playbook))
    return actions


def _gift(decider: Decider, item: DueItem, variables: dict[str, Any]) -> None:
    config = decider.playbook.rule(item.rule)
    if config is not None and config.incentive is not None:
        decider.emit(item.rule, "incentive", item.key, variables, config.incentive)


def _member_gift(decider: Decider, item: DueItem) -> None:
    _set_mark(decider.context, item.rule, item.due_at)
    joined = decider.member.joined_at
    _gift(decider, item, {"joined_at": joined.isoformat() if joined else None})


def _anniversary(decider: Decider, item: DueItem) -> None:
    _set_mark(decider.context, item.rule, item.due_at)
    _gift(decider, item, {"years": int(item.key)})


def _birthday(decider: Decider, item: DueItem) -> None:
    _set_mark(decider.context, item.rule, item.due_at)
    _gift(decider, item, {"year": int(item.key)})


def _stage_change(decider: Decider, item: DueItem) -> None:
    """Applies the stage time has brought; entering dormant or churned offers something to come back for."""
    context, at = decider.context, item.due_at
    _set_mark(context, "lifecycle", at)
    times = paid_times(context)
    stage = lifecycle.stage_at(times, context.member.joined_at, at, decider.playbook.lifecycle)
    if stage.since != at or not times:
        return
    last = max(t for t in times if t <= at)
    variables = {"stage": stage.name, "last_order_at": last.isoformat()}
    if stage.name == lifecycle.DORMANT:
        _gift(decider, DueItem(at, "dormant_wake_coupon", f"{stage.name}|{last.isoformat()}"), variables)
    elif stage.name == lifecycle.CHURNED:
        _gift(decider, DueItem(at, "churn_win_back_sample", f"{stage.name}|{last.isoformat()}"), variables)


def _review(decider: Decider, item: DueItem) -> None:
    review_tier(decider, tier_timeline(decider.context, decider.playbook))


def _ledger(context: MemberContext) -> list[Any]:
    if context.ledger is None:
        raise RuntimeError("points rules need the member's ledger loaded")
    return context.ledger


def _expiry(decider: Decider, item: DueItem) -> None:
    """Books the expiry of the points earned long enough ago, oldest first."""
    context, at = decider.context, item.due_at
    entries = _ledger(context)
    expiring = points.expiring_at([entry for entry in entries if entry.at <= at], at)
    if expiring > 0:
        decider.debit(f"expire:{at.isoformat()}", "expire", expiring)
    # Lots a short balance could not expire stay open; only later ones fall due again.
    set_expiries(context.member, (lot.expires_at for lot in points.open_lots(entries) if lot.expires_at > at))


def _expiry_reminder(decider: Decider, item: DueItem) -> None:
    """Reminds of the points expiring at this expiry that no earlier reminder covered."""
    context = decider.context
    expiry = item.expires_at
    if expiry is None:
        raise ValueError("a points expiry reminder names no expiry")
    covered = _mark(context, "points_expiry_reminder")
    _set_mark(context, "points_expiry_reminder", expiry)
    entries = [entry for entry in _ledger(context) if entry.at <= item.due_at]
    start = covered if covered is not None and covered > item.due_at else item.due_at
    expiring = points.expiring_within(entries, start, expiry)
    if expiring > 0 and decider.playbook.rule("points_expiry_reminder") is not None:
        decider.emit(
            "points_expiry_reminder",
            "incentive",
            item.key,
            {"points": expiring, "expires_at": expiry.isoformat(), "balance": context.member.points_balance},
        )


def _tags_due(decider: Decider, item: DueItem) -> None:
    """Nothing to send: ``run_due`` evaluates the tags once, as of the run, when it is done."""
    decider.member.tags_until = None


def _unpaid(decider: Decider, item: DueItem) -> None:
    order = decider.context.orders[item.order_id or ""]
    order.care_done.append("unpaid_reminder")
    decider.context.touched_orders.add(order.order_id)
    amount = order.amount
    decider.care(
        "unpaid_reminder",
        order.order_id,
        {"order_id": order.order_id, "amount": money(amount) if amount is not None else None},
    )


def _delivery_delay(decider: Decider, item: DueItem) -> None:
    order = decider.context.orders[item.order_id or ""]
    order.care_done.append(f"delivery_delay_care:{item.key}")
    decider.context.touched_orders.add(order.order_id)
    shipment = order.shipments.get(item.key) or ShipmentRecord()
    variables = {"order_id": order.order_id, "shipment_id": item.key}
    if shipment.carrier:
        variables["carrier"] = shipment.carrier
    if shipment.tracking_no:
        variables["tracking_no"] = shipment.tracking_no
    decider.care("delivery_delay_care", f"{order.order_id}|{item.key}", variables)


def _invitation(decider: Decider, item: DueItem) -> None:
    order = decider.context.orders[item.order_id or ""]
    order.care_done.append("review_invitation")
    decider.context.touched_orders.add(order.order_id)
    decider.care("review_invitation", order.order_id, {"order_id": order.order_id})


_HANDLERS: dict[str, Callable[[Decider, DueItem], None]] = {
    "one_month_gift": _member_gift,
    "hundred_day_gift": _member_gift,
    "anniversary_gift": _anniversary,
    "birthday_gift": _birthday,
    "lifecycle": _stage_change,
    "tier_review": _review,
    "points_expiry": _expiry,
    "points_expiry_reminder": _expiry_reminder,
    "unpaid_reminder": _unpaid,
    "delivery_delay_care": _delivery_delay,
    "review_invitation": _invitation,
    TAGS: _tags_due,
}
