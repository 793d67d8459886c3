"""The decision log: one row for every incentive decision, whatever its outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import decisions
from shared.domain.model import Decision
from shared.store.bulk_sql import insert_rows, json_rows

_COLUMNS = [
    "decision_id",
    "shop_id",
    "member_id",
    "rule",
    "campaign_id",
    "outcome",
    "reason",
    "at",
    "action_id",
    "order_id",
    "kind",
    "value",
    "points",
    "playbook_version",
    "detail",
    "decided_at",
]
# The decision's id is its action's, so a fact decided again is the decision already kept.
_INSERT = text(f"{insert_rows(decisions, _COLUMNS)} ON CONFLICT (decision_id) DO NOTHING")


async def insert_decisions(connection: AsyncConnection, rows: Sequence[Decision], decided_at: datetime) -> None:
    values = [
        [
            d.decision_id,
            d.shop_id,
            d.member_id,
            d.rule,
            d.campaign_id,
            d.outcome,
            d.reason,
            d.at,
            d.action_id,
            d.order_id,
            d.kind,
            d.value,
            d.points,
            d.playbook_version,
            dict(d.detail),
            decided_at,
        ]
        for d in rows
    ]
    if values:
        await connection.execute(_INSERT, json_rows(values))
