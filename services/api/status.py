"""A member's status document, built from its stored state and the shop's playbook.

Plain dicts in the order of ``services.api.schemas.MemberStatus`` (the documented shape),
serialised by ``services.api.responses.json_response``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.api.repository import MemberRecord
from shared.domain import points
from shared.domain.model import LedgerEntry
from shared.domain.money import money
from shared.domain.playbook import ShopPlaybook
from shared.domain.rfm import RfmEdges, rfm_scores, rfm_segment
from shared.domain.tiers import next_tier


def expiry_lead(playbook: ShopPlaybook) -> timedelta:
    """How far ahead of ``as_of`` points count as expiring soon: the expiry reminder's lead."""
    reminder = playbook.rules.get("points_expiry_reminder")
    return reminder.lead if reminder is not None and reminder.lead is not None else timedelta(days=14)


def _rfm(member: MemberRecord, edges: RfmEdges | None, playbook: ShopPlaybook) -> dict[str, Any] | None:
    if edges is None:
        return None
    scores = rfm_scores(edges, member.last_order_at, member.paid_orders, member.net_spend)
    if scores is None:
        return None
    r, f, m = scores
    return {"r": r, "f": f, "m": m, "segment": rfm_segment(r, f, m, playbook.rfm.segments), "as_of": edges.as_of}


def _points(member: MemberRecord, ledger: list[LedgerEntry] | None, playbook: ShopPlaybook) -> dict[str, Any]:
    """``ledger`` is None when none of the member's points can expire within the lead (then none expire soon)."""
    soon = 0
    if member.as_of is not None and ledger is not None:
        soon = points.expiring_within(ledger, member.as_of, member.as_of + expiry_lead(playbook))
    return {"balance": member.points_balance, "expiring_soon": soon, "next_expiry_at": member.points_next_expiry_at}


def member_status(
    member: MemberRecord, playbook: ShopPlaybook, ledger: list[LedgerEntry] | None, edges: RfmEdges | None
) -> dict[str, Any]:
    tier = None
    if member.tier is not None:
        definition = playbook.tier(member.tier)
        name = definition.name if definition else member.tier
        tier = {"code": member.tier, "name": name, "since": member.tier_since}
    # Tiers qualify on the rolling window, so the next rung is measured on its figures too.
    upcoming = next_tier(playbook, member.tier, member.qualifying_net_spend, member.qualifying_orders)
    average = money(member.net_spend / member.paid_orders) if member.paid_orders > 0 else None
    return {
        "shop_id": member.shop_id,
        "member_id": member.member_id,
        "joined_at": member.joined_at,
        "tier": tier,
        "metrics": {
            "net_spend": money(member.net_spend),
            "paid_orders": member.paid_orders,
            "average_order_value": average,
            "first_order_at": member.first_order_at,
            "last_order_at": member.last_order_at,
        },
        "next_tier": None
        if upcoming is None
        else {
            "code": upcoming.code,
            "spend_needed": money(upcoming.spend_needed),
            "orders_needed": upcoming.orders_needed,
        },
        "qualifying": {
            "window_days": playbook.tier_policy.qualifying_window_days,
            "net_spend": money(member.qualifying_net_spend),
            "paid_orders": member.qualifying_orders,
        },
        "lifecycle": {"stage": member.stage, "since": member.stage_since, "win_backs": member.win_backs},
        "points": _points(member, ledger, playbook),
        "score": {"value": member.score, "band": member.score_band, "parts": member.score_parts},
        "rfm": _rfm(member, edges, playbook),
        "tags": member.tags,
        "as_of": member.as_of,
        "updated_at": member.updated_at,
    }
