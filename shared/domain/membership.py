"""A member's derived standing: tier with retention, lifecycle stage, qualifying figures, score.

Each is recomputed from the member's order history and business clock, never
accumulated step by step, so events consumed in any order give the same standing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.decisions import Decider, MemberContext
from shared.domain.lifecycle import stage_at
from shared.domain.playbook import ShopPlaybook
from shared.domain.score import engagement_score, score_facts
from shared.domain.tiers import (
    QualificationPoint,
    best_rank,
    qualification_timeline,
    reached_at,
    window_figures,
)


def _later(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def tier_timeline(context: MemberContext, playbook: ShopPlaybook) -> list[QualificationPoint]:
    """The member's tier timeline, computed once until ``refresh_tier`` sees the money change."""
    if context.timeline is None:
        context.timeline = qualification_timeline(playbook, context.orders.values())
    return context.timeline


def held_since(context: MemberContext, playbook: ShopPlaybook) -> datetime | None:
    """Qualifications after this instant still hold the tier: the last review minus the retention."""
    reviewed = context.member.tier_reviewed_at
    return reviewed - timedelta(days=playbook.tier_policy.retention_days) if reviewed is not None else None


def refresh_tier(decider: Decider, timeline: list[QualificationPoint] | None = None) -> None:
    """Raises the tier at once when the window figures reach a higher one.

    The tier is the best one qualified for since the last review's retention horizon,
    so a refund never lowers it here; only a review by the scheduler does. When
    history consumed late shows a tier was never reached, the tier is corrected and
    the member told.
    """
    member, playbook = decider.member, decider.playbook
    if not playbook.tiers:
        return
    if timeline is None:  # called because a payment, refund or cancellation changed the figures
        decider.context.timeline = None
    points = timeline if timeline is not None else tier_timeline(decider.context, playbook)
    after = held_since(decider.context, playbook)
    rank = best_rank(points, after)
    if member.joined_at is not None:
        rank = max(rank, 0)
    if rank < 0:
        return
    current = playbook.tier_rank(member.tier)
    since = _tier_since(decider, points, rank, after)
    if rank == current:
        if member.tier_reviewed_at is None:
            member.tier_since = since  # nothing was lowered yet: the history alone decides
        return
    previous = member.tier or playbook.tiers[0].code  # a first payment enters the base tier on its way up
    reached = playbook.tiers[rank]
    member.tier, member.tier_since = reached.code, since
    if current < 0 and rank == 0:
        return  # entering the base tier is joining, not a change
    decider.care(
        "tier_changed",
        f"{reached.code}|{(since or decider.at).isoformat()}",  # the fact: this tier, reached at this time
        {
            "from": previous,
            "to": reached.code,
            "tier_name": reached.name,
            "direction": "up" if rank > current else "down",
            "reason": "qualified" if rank > current else "correction",
        },
    )
    if rank > current:
        _reward_tier(decider, rank)


def _tier_since(
    decider: Decider, points: list[QualificationPoint], rank: int, after: datetime | None
) -> datetime | None:
    member = decider.member
    since = member.joined_at if rank == 0 else reached_at(points, rank, after)
    return _later(since, member.tier_lowered_at) or decider.at


def _reward_tier(decider: Decider, rank: int) -> None:
    """One gift per tier, the first time it is reached; tiers skipped on the way count as given."""
    member, playbook = decider.member, decider.playbook
    reached = playbook.tiers[rank]
    gift = playbook.rule("tier_upgrade_gift")
    if reached.code not in member.rewarded_tiers and gift is not None:
        spec = gift.per_tier.get(reached.code)
        if spec is not None:
            decider.emit(
                "tier_upgrade_gift", "incentive", reached.code, {"tier": reached.code, "tier_name": reached.name}, spec
            )
    for tier in playbook.tiers[: rank + 1]:
        if tier.code not in member.rewarded_tiers:
            member.rewarded_tiers.append(tier.code)


def review_tier(decider: Decider, timeline: list[QualificationPoint]) -> None:
    """The scheduler's review at ``decider.at``: lowers the tier to the best one still retained."""
    member, playbook, at = decider.member, decider.playbook, decider.at
    retention = timedelta(days=playbook.tier_policy.retention_days)
    kept = max(best_rank(timeline, at - retention, at), 0)
    current = playbook.tier_rank(member.tier)
    member.tier_reviewed_at = at
    if 0 <= kept < current:
        previous, lowered = member.tier, playbook.tiers[kept]
        member.tier, member.tier_since, member.tier_lowered_at = lowered.code, at, at
        decider.care(
            "tier_changed",
            f"{lowered.code}|{at.isoformat()}",
            {
                "from": previous,
                "to": lowered.code,
                "tier_name": lowered.name,
                "direction": "down",
                "reason": "retention",
            },
        )
    refresh_tier(decider, timeline)  # history already consumed beyond ``at`` may lift it again


def paid_times(context: MemberContext) -> list[datetime]:
    return sorted(order.paid_at for order in context.orders.values() if order.paid_at is not None)


def stage_clock(context: MemberContext) -> datetime | None:
    """Payments move the stage at once; time alone moves it only as far as the scheduler has applied."""
    member = context.member
    return _later(member.joined_at, member.last_order_at, member.schedule_marks.get("lifecycle"))


def refresh_standing(context: MemberContext, playbook: ShopPlaybook) -> None:
    """Stage, qualifying figures and score as of the member's business clock."""
    member = context.member
    clock = stage_clock(context)
    if clock is not None:
        stage = stage_at(paid_times(context), member.joined_at, clock, playbook.lifecycle)
        member.stage, member.stage_since, member.win_backs = stage.name, stage.since, stage.win_backs
    as_of = member.as_of
    if as_of is None:
        return
    window = timedelta(days=playbook.tier_policy.qualifying_window_days)
    member.qualifying_net_spend, member.qualifying_orders = window_figures(context.orders.values(), as_of, window)
    facts = score_facts(
        context.orders.values(),
        member.joined_at,
        playbook.tier_rank(member.tier),
        as_of,
        playbook.score.window_days,
    )
    score = engagement_score(facts, playbook.score, playbook.reference_order_value)
    member.score, member.score_band, member.score_parts = score.value, score.band, dict(score.parts)
