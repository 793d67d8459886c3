"""Claims on members whose time-based rules have come due: what the scheduler works through."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.model import Member
from shared.store.bulk_sql import Key
from shared.store.member_rows import MEMBER_FIELDS, member_from_row


async def claim_due_members(connection: AsyncConnection, as_of: datetime, limit: int) -> dict[Key, Member]:
    """Locks up to ``limit`` members with something due by ``as_of``, skipping rows others hold.

    Two scheduler runs, or a run and the event path, never wait for each other here:
    a member locked elsewhere is left for a later pass.
    """
    rows = await connection.execute(
        text(
            f"SELECT {', '.join(MEMBER_FIELDS)} FROM members WHERE next_due_at <= :as_of "
            "ORDER BY next_due_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"as_of": as_of, "limit": limit},
    )
    return {(member.shop_id, member.member_id): member for member in map(member_from_row, rows)}


async def count_due(connection: AsyncConnection, as_of: datetime) -> int:
    """Members with something due by ``as_of``, locked or not."""
    return int(
        await connection.scalar(text("SELECT count(*) FROM members WHERE next_due_at <= :as_of"), {"as_of": as_of}) or 0
    )
