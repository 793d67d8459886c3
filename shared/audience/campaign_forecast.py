"""The campaign forecast's counts, gathered inside PostgreSQL: no member is loaded into the service.

- ``audience_by_stage``: the audience (the plan's definition compiled by ``segment_query``,
  evaluated as of ``now``) counted per lifecycle stage, with the members reachable now:
  marketing consent, and fewer than the contact policy's ``frequency_cap`` incentive
  deliveries (not suppressed or failed) in the rolling window ending now, as the notifier
  counts them.
- ``history_by_stage``: the shop's emitted decisions of the last year of the given incentive
  kinds (rules' and campaigns'; a decision without an incentive is the kind ``message``), whose
  attribution window has closed by ``now``, per kind and the member's current stage: how many
  were followed by a paid order within the window (the order that triggered a rule's decision
  does not count) and those orders' paid amounts.
- ``average_paid_order``: the mean paid amount of the shop's orders paid in the last year.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Interval, Text, and_, any_, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import DateTime

from shared.audience.segment_query import Audience
from shared.db.schema import deliveries, members
from shared.domain.campaign_forecast import MESSAGE, KindHistory, StageAudience
from shared.domain.campaigns import Duration
from shared.domain.playbook import ContactPolicy

# The delivery statuses the notifier's frequency cap counts: a suppressed or failed message does not.
COUNTED_STATUSES = ("sent", "sending", "deferred")
LOOKBACK = timedelta(days=365)
_TIME = DateTime(timezone=True)


@dataclass(frozen=True, slots=True)
class History:
    """The history per (kind, stage), and the paid amounts of the orders that converted it."""

    cells: tuple[KindHistory, ...]
    revenue: Decimal


async def audience_by_stage(
    connection: AsyncConnection, audience: Audience, policy: ContactPolicy, now: datetime
) -> list[StageAudience]:
    """The audience's members and reachable members per stage, in one statement."""
    recent = (
        select(func.count(func.distinct(deliveries.c.action_id)))
        .where(
            deliveries.c.shop_id == members.c.shop_id,
            deliveries.c.member_id == members.c.member_id,
            deliveries.c.category == "incentive",
            deliveries.c.occurred_at > literal(now - timedelta(hours=policy.frequency_window_hours), _TIME),
            deliveries.c.occurred_at <= literal(now, _TIME),
            deliveries.c.status == any_(literal(list(COUNTED_STATUSES), ARRAY(Text()))),
        )
        .scalar_subquery()
    )
    reachable = and_(members.c.marketing_consent.is_(True), recent < policy.frequency_cap)
    statement = (
        select(members.c.stage, func.count(), func.count().filter(reachable))
        .where(audience.where())
        .group_by(members.c.stage)
    )
    rows = await connection.execute(statement)
    return sorted(
        (StageAudience(stage, int(count), int(reached)) for stage, count, reached in rows),
        key=lambda group: (group.stage is None, group.stage or ""),
    )


_HISTORY = text(
    """
WITH history AS (
    SELECT d.member_id, d.at, d.order_id, coalesce(d.kind, :message) AS kind
    FROM decisions d
    WHERE d.shop_id = :shop_id AND d.outcome = 'emitted'
      AND coalesce(d.kind, :message) = ANY(:kinds)
      AND d.at >= :since AND d.at < :now
      AND d.at + make_interval(months => :months) + :fixed <= :now
),
scored AS (
    SELECT h.kind, m.stage, o.orders, o.revenue
    FROM history h
    LEFT JOIN members m ON m.shop_id = :shop_id AND m.member_id = h.member_id
    CROSS JOIN LATERAL (
        SELECT count(*) AS orders, coalesce(sum(o.paid_amount), 0) AS revenue
        FROM orders o
        WHERE o.shop_id = :shop_id AND o.member_id = h.member_id AND o.paid_at IS NOT NULL
          AND o.paid_at > h.at AND o.paid_at <= h.at + make_interval(months => :months) + :fixed
          AND o.order_id IS DISTINCT FROM h.order_id
    ) o
)
SELECT kind, stage, count(*) AS decisions, count(*) FILTER (WHERE orders > 0) AS converted,
       coalesce(sum(revenue), 0) AS revenue
FROM scored
GROUP BY kind, stage
"""
).bindparams(
    bindparam("kinds", type_=ARRAY(Text())),
    bindparam("since", type_=_TIME),
    bindparam("now", type_=_TIME),
    bindparam("fixed", type_=Interval()),
)


async def history_by_stage(
    connection: AsyncConnection, shop_id: str, kinds: Sequence[str], window: Duration, now: datetime
) -> History:
    """The shop's past emitted decisions of ``kinds`` per kind and stage (see the module's docstring)."""
    rows = await connection.execute(
        _HISTORY,
        {
            "shop_id": shop_id,
            "message": MESSAGE,
            "kinds": list(kinds),
            "since": now - LOOKBACK,
            "now": now,
            "months": window.months,
            "fixed": window.fixed,
        },
    )
    cells, revenue = [], Decimal(0)
    for row in rows.mappings():
        cells.append(KindHistory(row["kind"], row["stage"], int(row["decisions"]), int(row["converted"])))
        revenue += Decimal(row["revenue"])
    return History(tuple(cells), revenue)


async def average_paid_order(connection: AsyncConnection, shop_id: str, now: datetime) -> Decimal | None:
    """The mean paid amount of the shop's orders paid in the year before ``now``; None without any."""
    average = await connection.scalar(
        text(
            "SELECT avg(paid_amount) FROM orders WHERE shop_id = :shop_id AND paid_at IS NOT NULL "
            "AND paid_at > :since AND paid_at <= :now"
        ).bindparams(bindparam("since", type_=_TIME), bindparam("now", type_=_TIME)),
        {"shop_id": shop_id, "since": now - LOOKBACK, "now": now},
    )
    return None if average is None else Decimal(average)
