"""The relay's claim costs what it claims, not what the outbox holds, whatever plan PostgreSQL cached."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.outbox import _CLAIM

pytestmark = pytest.mark.integration

ROWS = 20_000
CLAIM = 1_000


def _positional(sql: str) -> str:
    """The claim with ``$n`` parameters, for a server-side PREPARE."""
    for number, name in enumerate(("stream", "after", "limit"), start=1):
        sql = re.sub(rf":{name}\b", f"${number}", sql)
    return sql


def _blocks(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


async def test_a_claim_planned_while_the_outbox_was_empty_stays_cheap_once_it_has_grown(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        # Statistics of a nearly empty outbox, as autovacuum takes them at start-up ...
        await connection.execute(
            text("INSERT INTO outbox (stream, key, payload, event_time) VALUES ('actions', 'k', '{}', now())")
        )
        await connection.execute(text("ANALYZE outbox"))
        # ... and a generic plan cached against them.
        await connection.execute(text("SET plan_cache_mode = force_generic_plan"))
        await connection.execute(text(f"PREPARE claim(text, bigint, int) AS {_positional(_CLAIM.text)}"))
        await connection.execute(text(f"EXECUTE claim('actions', 0, {CLAIM})"))
        await connection.execute(
            text(
                "INSERT INTO outbox (stream, key, payload, event_time) "
                "SELECT 'actions', 'shop-1:m-' || i, repeat('x', 200), :at FROM generate_series(1, :rows) AS i"
            ),
            {"at": datetime(2026, 1, 1, tzinfo=UTC), "rows": ROWS},
        )
        explained = await connection.scalar(
            text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim('actions', 0, {CLAIM})")
        )
        await connection.rollback()
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    assert plan["Actual Rows"] == CLAIM
    # Locating and deleting 1,000 rows touches a few thousand buffers; a plan that
    # re-runs the locking subquery per outbox row touches millions.
    assert _blocks(plan) < 10 * CLAIM, _blocks(plan)
