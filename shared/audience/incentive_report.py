"""The incentives report's figures, counted inside PostgreSQL in one set-based statement.

One statement gathers every rule of a shop at once: the cohort of decisions (rule
decisions, ``campaign_id`` null, business time ``at`` in [start, end)), the coupons they
issued, other members' orders that named them (shared codes), the orders that redeemed
them, and each member's first treated and first holdout decision with whether a paid
order followed it within the rule's attribution window. Nothing is loaded per rule or
per member; the ratios and intervals are worked out afterwards from these counts
(``shared.domain.incentive_report``). The definitions are in docs/incentives.md, "The
incentives report".

Each rule's window comes in as bound arrays (rule names and intervals, unnested into a
table), with the default for rules the playbook does not list. The statement runs on the
engine's connections, planned for the bounds at hand, rather than on the API's read pool
and its generic plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import DateTime

from shared.domain.incentive_report import Group, RuleFigures, report_document
from shared.domain.playbook import DEFAULT_ATTRIBUTION_WINDOW, ShopPlaybook

# `decided` drives the result: every rule with at least one decision in the cohort, whatever its outcome.
_REPORT = text(
    """
WITH windows (rule, attribution_window) AS (
    SELECT * FROM unnest(CAST(:rules AS text[]), CAST(:windows AS interval[]))
),
cohort AS (
    SELECT decision_id, member_id, rule, outcome, at, action_id, order_id, code, kind, value
    FROM decisions
    WHERE shop_id = :shop_id AND campaign_id IS NULL
      AND at >= coalesce(CAST(:start AS timestamptz), '-infinity') AND at < :end
),
decided AS (
    SELECT rule,
           count(*) FILTER (WHERE outcome = 'emitted') AS issued,
           coalesce(sum(value) FILTER (WHERE outcome = 'emitted'), 0) AS issued_value,
           coalesce(sum(value) FILTER (WHERE outcome = 'emitted' AND kind = 'points'), 0) AS points_value
    FROM cohort
    GROUP BY rule
),
cohort_coupons AS (
    -- an emitted decision names the coupon it gave, found by the wallet's key
    SELECT c.rule, c.code, c.member_id, c.issued_at, c.status, c.value, c.order_id
    FROM (SELECT DISTINCT rule, code FROM cohort WHERE outcome = 'emitted' AND code IS NOT NULL) e
    JOIN coupons c ON c.shop_id = :shop_id AND c.code = e.code AND c.rule = e.rule
),
coupon_figures AS (
    SELECT rule,
           count(*) AS coupons,
           count(*) FILTER (WHERE status = 'redeemed') AS redeemed,
           coalesce(sum(value) FILTER (WHERE status = 'redeemed'), 0) AS redeemed_value
    FROM cohort_coupons
    GROUP BY rule
),
shares AS (
    SELECT cc.rule, count(*) AS coupons_shared
    FROM cohort_coupons cc
    JOIN unredeemed_codes s
      ON s.shop_id = :shop_id AND s.code = cc.code AND s.member_id <> cc.member_id AND s.at >= cc.issued_at
    GROUP BY cc.rule
),
attributed AS (
    SELECT r.rule, count(*) AS attributed_orders, coalesce(sum(o.paid_amount), 0) AS attributed_revenue
    FROM (SELECT DISTINCT rule, order_id FROM cohort_coupons WHERE status = 'redeemed' AND order_id IS NOT NULL) r
    LEFT JOIN orders o ON o.shop_id = :shop_id AND o.order_id = r.order_id
    GROUP BY r.rule
),
units AS (
    SELECT DISTINCT ON (rule, outcome, member_id) rule, outcome, member_id, at, order_id
    FROM cohort
    WHERE outcome IN ('emitted', 'holdout')
    ORDER BY rule, outcome, member_id, at, decision_id
),
conversions AS (
    SELECT u.rule,
           count(*) FILTER (WHERE u.outcome = 'emitted') AS treated_members,
           count(*) FILTER (WHERE u.outcome = 'emitted' AND u.converted) AS treated_converted,
           count(*) FILTER (WHERE u.outcome = 'holdout') AS holdout_members,
           count(*) FILTER (WHERE u.outcome = 'holdout' AND u.converted) AS holdout_converted
    FROM (
        SELECT units.rule, units.outcome, EXISTS (
            SELECT FROM orders o
            WHERE o.shop_id = :shop_id AND o.member_id = units.member_id
              AND o.paid_at > units.at
              AND o.paid_at <= units.at + coalesce(w.attribution_window, CAST(:default_window AS interval))
              AND o.order_id IS DISTINCT FROM units.order_id
        ) AS converted
        FROM units LEFT JOIN windows w ON w.rule = units.rule
    ) u
    GROUP BY u.rule
)
SELECT d.rule, d.issued, d.issued_value, d.points_value,
       coalesce(c.coupons, 0) AS coupons,
       coalesce(c.redeemed, 0) AS redeemed,
       coalesce(c.redeemed_value, 0) AS redeemed_value,
       coalesce(s.coupons_shared, 0) AS coupons_shared,
       coalesce(a.attributed_orders, 0) AS attributed_orders,
       coalesce(a.attributed_revenue, 0) AS attributed_revenue,
       coalesce(v.treated_members, 0) AS treated_members,
       coalesce(v.treated_converted, 0) AS treated_converted,
       coalesce(v.holdout_members, 0) AS holdout_members,
       coalesce(v.holdout_converted, 0) AS holdout_converted
FROM decided d
LEFT JOIN coupon_figures c ON c.rule = d.rule
LEFT JOIN shares s ON s.rule = d.rule
LEFT JOIN attributed a ON a.rule = d.rule
LEFT JOIN conversions v ON v.rule = d.rule
"""
).bindparams(
    bindparam("rules", type_=ARRAY(Text())),
    bindparam("windows", type_=ARRAY(Interval())),
    bindparam("start", type_=DateTime(timezone=True)),
    bindparam("end", type_=DateTime(timezone=True)),
    bindparam("default_window", type_=Interval()),
)


async def rule_figures(
    connection: AsyncConnection,
    shop_id: str,
    *,
    start: datetime | None,
    end: datetime,
    windows: Mapping[str, timedelta],
    default_window: timedelta,
) -> list[RuleFigures]:
    """The figures of every rule with a decision in [start, end) (unbounded below when start is None), by rule.

    ``windows`` gives the attribution window of each rule the shop's playbook lists;
    any other rule gets ``default_window``.
    """
    names = list(windows)
    parameters = {
        "shop_id": shop_id,
        "start": start,
        "end": end,
        "rules": names,
        "windows": [windows[name] for name in names],
        "default_window": default_window,
    }
    rows = (await connection.execute(_REPORT, parameters)).mappings().all()
    figures = [
        RuleFigures(
            rule=row["rule"],
            issued=row["issued"],
            issued_value=row["issued_value"],
            coupons=row["coupons"],
            redeemed=row["redeemed"],
            redeemed_value=row["redeemed_value"],
            coupons_shared=row["coupons_shared"],
            attributed_orders=row["attributed_orders"],
            attributed_revenue=row["attributed_revenue"],
            points_value=row["points_value"],
            treated=Group(members=row["treated_members"], converted=row["treated_converted"]),
            holdout=Group(members=row["holdout_members"], converted=row["holdout_converted"]),
        )
        for row in rows
    ]
    return sorted(figures, key=lambda figure: figure.rule)  # by code point, whatever the database's collation


async def shop_report(
    connection: AsyncConnection, shop_id: str, shop: ShopPlaybook, *, start: datetime | None, end: datetime
) -> dict[str, Any]:
    """The shop's report document over [start, end), each rule's conversions counted within the attribution
    window ``shop`` gives it (the default window for rules it does not list)."""
    windows = {name: rule.attribution_window for name, rule in shop.rules.items()}
    figures = await rule_figures(
        connection, shop_id, start=start, end=end, windows=windows, default_window=DEFAULT_ATTRIBUTION_WINDOW
    )
    return report_document(figures, start, end)
