"""Per shop, the RFM quintile edges of its buyers: which shops are stale, and their recompute."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.rfm import RfmEdges


async def shops_with_members(connection: AsyncConnection) -> dict[str, datetime | None]:
    """Every shop with members, and the business time its RFM edges were computed at (None: never).

    A loose index scan over the primary key's leading ``shop_id``: one index probe per
    shop, so the cost follows the number of shops, not of members.
    """
    rows = await connection.execute(
        text(
            "WITH RECURSIVE shops AS ("
            "(SELECT shop_id FROM members ORDER BY shop_id LIMIT 1) UNION ALL "
            "SELECT (SELECT m.shop_id FROM members m WHERE m.shop_id > shops.shop_id ORDER BY m.shop_id LIMIT 1) "
            "FROM shops WHERE shops.shop_id IS NOT NULL) "
            "SELECT s.shop_id, e.as_of FROM shops s LEFT JOIN rfm_edges e USING (shop_id) WHERE s.shop_id IS NOT NULL"
        )
    )
    return {row[0]: row[1] for row in rows}


async def compute_rfm_edges(connection: AsyncConnection, shops: Sequence[str], as_of: datetime) -> int:
    """Recomputes the quintile edges of these shops' buyers as of ``as_of``, in one statement.

    Recency is days from the last paid order to ``as_of``; frequency and monetary are
    lifetime paid orders and net spend. Edges computed at a later business time are kept.
    A shop without buyers gets a row with no edges, so it is not scanned again until due.
    """
    if not shops:
        return 0
    result = await connection.execute(
        text(
            "INSERT INTO rfm_edges (shop_id, as_of, buyers, recency_days, frequency, monetary, computed_at) "
            "SELECT s.shop_id, :as_of, count(m.member_id), "
            "coalesce(percentile_cont(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP "
            "(ORDER BY extract(epoch FROM (CAST(:as_of AS timestamptz) - m.last_order_at)) / 86400), '{}'), "
            "coalesce(percentile_cont(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY m.paid_orders), '{}'), "
            "coalesce(percentile_cont(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP "
            "(ORDER BY CAST(m.net_spend AS float8)), '{}'), now() "
            "FROM unnest(CAST(:shops AS text[])) AS s(shop_id) "
            "LEFT JOIN members m ON m.shop_id = s.shop_id AND m.last_order_at <= :as_of "
            "GROUP BY s.shop_id "
            "ON CONFLICT (shop_id) DO UPDATE SET as_of = excluded.as_of, buyers = excluded.buyers, "
            "recency_days = excluded.recency_days, frequency = excluded.frequency, monetary = excluded.monetary, "
            "computed_at = excluded.computed_at WHERE rfm_edges.as_of <= excluded.as_of"
        ),
        {"as_of": as_of, "shops": list(shops)},
    )
    return int(result.rowcount or 0)


async def load_edges(connection: AsyncConnection, shop_id: str) -> RfmEdges | None:
    """The shop's RFM edges, for a segment evaluated on the write side; None before any (or with no buyers)."""
    row = (
        await connection.execute(
            text("SELECT as_of, recency_days, frequency, monetary FROM rfm_edges WHERE shop_id = :shop_id"),
            {"shop_id": shop_id},
        )
    ).one_or_none()
    if row is None or not row.recency_days:
        return None
    try:
        return RfmEdges(row.as_of, tuple(row.recency_days), tuple(row.frequency), tuple(row.monetary))
    except ValueError:  # not four ascending edges: no segment can be told
        return None
