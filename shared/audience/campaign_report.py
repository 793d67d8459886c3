"""The campaign report's counts, gathered inside PostgreSQL in two set-based statements.

One statement counts every group (each strategy, and the holdout) from the members the
campaign reached (``campaign_members``: each one's group and first wave, kept by the waves):
its members, whether a paid order followed a member's first wave within the attribution window
and the revenue of those orders, what the notifier made of the group's actions
(``deliveries``), its redeemed coupons, and the points it was given (``campaign_sends``). The
other gives each wave's sends. The campaign's decisions are not read: a wave to a million
members leaves a million of them. Nothing is loaded per member; the ratios and intervals are
worked out from the counts (``shared.domain.campaign_report``).
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Interval, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.campaign_report import GroupFigures, WaveFigures
from shared.domain.campaign_waves import RULE
from shared.domain.campaigns import Duration

_GROUPS = text(
    """
WITH reached AS (
    SELECT member_id, grp, first_at FROM campaign_members WHERE shop_id = :shop_id AND campaign_id = :campaign_id
),
groups AS (
    SELECT grp, count(*) AS members FROM reached GROUP BY grp
),
-- Orders are matched with the members they convert: only those of converting members are aggregated.
conversions AS (
    SELECT u.grp, count(DISTINCT u.member_id) AS converted, sum(o.paid_amount) AS revenue
    FROM reached u
    JOIN orders o
      ON o.shop_id = :shop_id AND o.member_id = u.member_id AND o.paid_at IS NOT NULL
     AND o.paid_at > u.first_at AND o.paid_at <= u.first_at + make_interval(months => :months) + :fixed
    GROUP BY u.grp
),
-- What the notifier made of each of the campaign's actions, counted in its member's group.
sent AS (
    SELECT r.grp,
           count(*) FILTER (WHERE d.sent) AS sent,
           count(*) FILTER (WHERE d.suppressed AND NOT d.sent) AS suppressed
    FROM (
        SELECT action_id, member_id, bool_or(status = 'sent') AS sent, bool_or(status = 'suppressed') AS suppressed
        FROM deliveries
        WHERE shop_id = :shop_id AND rule = :rule AND action -> 'campaign' ->> 'campaign_id' = :campaign_id
        GROUP BY action_id, member_id
    ) d
    JOIN reached r USING (member_id)
    GROUP BY r.grp
),
-- The campaign's redeemed coupons are few and found by their own index.
redeemed AS (
    SELECT r.grp, count(*) AS coupons_redeemed, sum(c.value) AS redeemed_value
    FROM coupons c JOIN reached r USING (member_id)
    WHERE c.shop_id = :shop_id AND c.campaign_id = :campaign_id AND c.status = 'redeemed'
    GROUP BY r.grp
),
points AS (
    SELECT strategy AS grp, sum(points_value) AS points_value
    FROM campaign_sends WHERE shop_id = :shop_id AND campaign_id = :campaign_id GROUP BY strategy
)
SELECT g.grp, g.members, coalesce(v.converted, 0), coalesce(v.revenue, 0),
       coalesce(s.sent, 0), coalesce(s.suppressed, 0),
       coalesce(d.coupons_redeemed, 0), coalesce(d.redeemed_value, 0), coalesce(p.points_value, 0)
FROM groups g LEFT JOIN conversions v USING (grp) LEFT JOIN sent s USING (grp)
LEFT JOIN redeemed d USING (grp) LEFT JOIN points p USING (grp)
"""
).bindparams(bindparam("fixed", type_=Interval()))

_WAVES = text(
    "SELECT w.wave, w.at, (SELECT coalesce(sum(s.members), 0) FROM campaign_sends s "
    "WHERE s.shop_id = w.shop_id AND s.campaign_id = w.campaign_id AND s.wave = w.wave) "
    "FROM campaign_waves w WHERE w.shop_id = :shop_id AND w.campaign_id = :campaign_id ORDER BY w.wave"
)


async def campaign_figures(
    connection: AsyncConnection, shop_id: str, campaign_id: str, window: Duration
) -> tuple[dict[str, GroupFigures], list[WaveFigures]]:
    """Each group's figures (strategy code, or ``holdout``) and each wave's, of one campaign."""
    parameters = {"shop_id": shop_id, "campaign_id": campaign_id}
    rows = await connection.execute(
        _GROUPS, {**parameters, "rule": RULE, "months": window.months, "fixed": window.fixed}
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
    waves = [WaveFigures(wave, at, int(sent)) for wave, at, sent in await connection.execute(_WAVES, parameters)]
    return groups, waves
