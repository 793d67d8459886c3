"""Deciding a batch of new actions: the contact policy plus the counting it needs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from services.notifier.delivery_store import MemberContact, WindowQuery
from shared.contract.actions import Action
from shared.domain.contact_policy import Decision, decide, window_start
from shared.domain.playbook import Playbook


def business_order(actions: Sequence[Action]) -> list[Action]:
    """Distinct actions (first copy wins) in business-time order, so earlier ones count for later ones."""
    unique: dict[str, Action] = {}
    for action in actions:
        unique.setdefault(action.action_id, normalised(action))
    return sorted(unique.values(), key=lambda action: (action.occurred_at, action.action_id))


def normalised(action: Action) -> Action:
    """Naive timestamps are UTC on the wire; make them aware once, here."""
    updates = {
        name: value.replace(tzinfo=UTC)
        for name, value in (("occurred_at", action.occurred_at), ("created_at", action.created_at))
        if value.tzinfo is None
    }
    return action.model_copy(update=updates) if updates else action


def window_queries(actions: Sequence[Action], playbook: Playbook) -> list[WindowQuery]:
    """One frequency-window query per incentive action, keyed by its position."""
    return [
        WindowQuery(
            key=index,
            shop_id=action.shop_id,
            member_id=action.member_id,
            lower=window_start(action.occurred_at, playbook.for_shop(action.shop_id).contact),
            upper=action.occurred_at,
        )
        for index, action in enumerate(actions)
        if action.category == "incentive"
    ]


def plan(
    actions: Sequence[Action],
    playbook: Playbook,
    contacts: Mapping[tuple[str, str], MemberContact],
    recorded_counts: Mapping[int, int],
) -> list[Decision]:
    """Decisions for ``actions`` (in business order), counting earlier ones of the batch too.

    ``recorded_counts`` holds, per position, the incentives already in the database
    for that window; an incentive decided here to be sent or deferred adds to the
    count of the same member's later incentives whose window it falls in.
    """
    counted: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    decisions: list[Decision] = []
    for index, action in enumerate(actions):
        shop = playbook.for_shop(action.shop_id)
        member = (action.shop_id, action.member_id)
        contact = contacts.get(member)
        in_batch = 0
        if action.category == "incentive":
            lower = window_start(action.occurred_at, shop.contact)
            in_batch = sum(1 for at in counted[member] if lower < at <= action.occurred_at)
        decision = decide(
            action.category,
            action.occurred_at,
            contact.consent if contact is not None else None,
            contact.timezone if contact is not None else None,
            shop.timezone,
            shop.contact,
            recorded_counts.get(index, 0) + in_batch,
        )
        if action.category == "incentive" and decision.kind != "suppress":
            counted[member].append(action.occurred_at)
        decisions.append(decision)
    return decisions
