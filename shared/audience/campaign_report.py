"""The campaign report's counts, gathered inside PostgreSQL in two set-based statements.

One statement counts every group (each strategy, and the holdout) from the campaign's
decisions: its distinct members, each member's first wave, whether a paid order followed it
within the attribution window and the revenue of those orders, what the notifier made of the
group's actions (``deliveries``, by action id), and the group's redeemed coupons and points.
The other counts each wave's reached members. Nothing is loaded per member; the ratios and
intervals are worked out from the counts (``shared.domain.campaign_report``).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Interval, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.campaign_report import GroupFigures, WaveFigures
from shared.domain.campaigns import HOLDOUT, Duration

_GROUPS = text(
    """
WITH reached AS (
    SELECT member_id, coalesce(strategy, :holdout) AS grp, outcome, at, action_id, code, kind, value
    FROM decisions
    WHERE shop_id = :shop_id AND campaign_id = :campaign_id AND outcome IN ('emitted', 'holdout')
),
units AS (
    SELECT grp, member_id, min(at) AS first_at FROM reached GROUP BY grp, member_id
),
-- Only the members with a qualifying order are aggregated twice: most members never convert.
conversions AS (
    SELECT u.grp, count(DISTINCT u.member_id) AS converted, sum(o.paid_amount) AS revenue
    FROM units u
    JOIN orders o
      ON o.shop_id = :shop_id AND o.member_id = u.member_id AND o.paid_at IS NOT NULL
     AND o.paid_at > u.first_at AND o.paid_at <= u.first_at + make_interval(months => :months) + :fixed
    GROUP BY u.grp
),
groups AS (
    SELECT grp, count(*) AS members FROM units GROUP BY grp
),
sent AS (
    SELECT r.grp,
           count(*) FILTER (WHERE d.sent) AS sent,
           count(*) FILTER (WHERE d.suppressed AND NOT d.sent) AS suppressed
    FROM reached r
    JOIN (
        SELECT action_id, bool_or(status = 'sent') AS sent, bool_or(status = 'suppressed') AS suppressed
        FROM deliveries WHERE shop_id = :shop_id AND action_id IN (SELECT action_id FROM reached)
        GROUP BY action_id
    ) d USING (action_id)
    WHERE r.outcome = 'emitted'
    GROUP BY r.grp
),
-- The campaign's redeemed coupons are few and found by their own index; points are on the decisions.
redeemed AS (
    SELECT r.grp, count(*) AS coupons_redeemed, sum(c.value) AS redeemed_value
    FROM coupons c JOIN reached r ON r.code = c.code AND r.outcome = 'emitted'
    WHERE c.shop_id = :shop_id AND c.campaign_id = :campaign_id AND c.status = 'redeemed'
    GROUP BY r.grp
),
points AS (
    SELECT grp, sum(value) AS points_value FROM reached WHERE outcome = 'emitted' AND kind = 'points' GROUP BY grp
),
money AS (
    SELECT g.grp, coalesce(d.coupons_redeemed, 0) AS coupons_redeemed,
           coalesce(d.redeemed_value, 0) AS redeemed_value, coalesce(p.points_value, 0) AS points_value
    FROM groups g LEFT JOIN redeemed d USING (grp) LEFT JOIN points p USING (grp)
)
SELECT g.grp, g.members, coalesce(v.converted, 0), coalesce(v.revenue, 0),
       coalesce(s.sent, 0), coalesce(s.suppressed, 0),
       coalesce(m.coupons_redeemed, 0), coalesce(m.redeemed_value, 0), coalesce(m.points_value, 0)
FROM groups g LEFT JOIN conversions v USING (grp) LEFT JOIN sent s USING (grp) LEFT JOIN money m USING (grp)
"""
).bindparams(bindparam("fixed", type_=Interval()))

_WAVES = text(
    "SELECT w.wave, w.at, count(DISTINCT d.member_id) FILTER (WHERE d.outcome = 'emitted') "
    "FROM campaign_waves w LEFT JOIN decisions d "
    "ON d.shop_id = w.shop_id AND d.campaign_id = w.campaign_id AND d.wave = w.wave "
    "WHERE w.shop_id = :shop_id AND w.campaign_id = :campaign_id GROUP BY w.wave, w.at ORDER BY w.wave"
)


async def campaign_figures(
    connection: AsyncConnection, shop_id: str, campaign_id: str, window: Duration
) -> tuple[dict[str, GroupFigures], list[WaveFigures]]:
    """Each group's figures (strategy code, or ``holdout``) and each wave's, of one campaign."""
    parameters = {"shop_id": shop_id, "campaign_id": campaign_id}
    rows = await connection.execute(
        _GROUPS, {**parameters, "holdout": HOLDOUT, "months": window.months, "fixed": window.fixed}
    )
    groups = {
        row[0]: GroupFigures(
            members=row[1],
            converted=row[2],
            revenue=Decimal(row[3]),
            sent=row[4],
            suppressed=row[5],
            coupons_redeemed=row[6],
            redeemed_value=Decimal(row[7]),
            points_value=Decimal(row[8]),
        )
        for row in rows
    }
    waves = [WaveFigures(wave, at, members) for wave, at, members in await connection.execute(_WAVES, parameters)]
    return groups, waves
