"""Members set aside because their stored state cannot be processed, until an operator releases them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.store.bulk_sql import UNNEST_KEYS, Key, key_arrays


async def quarantine(connection: AsyncConnection, rows: Sequence[tuple[Key, str, str]]) -> None:
    """Quarantines members as ((shop, member), reason, detail) and takes them off the schedule.

    Their events are dead-lettered until an operator releases them (which puts them back
    on the schedule); a member already quarantined keeps its first reason.
    """
    if not rows:
        return
    params = {
        "a": [key[0] for key, _, _ in rows],
        "b": [key[1] for key, _, _ in rows],
        "reason": [reason for _, reason, _ in rows],
        "detail": [detail for _, _, detail in rows],
    }
    await connection.execute(
        text(
            "INSERT INTO quarantined_members (shop_id, member_id, reason, detail) "
            "SELECT * FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:reason AS text[]), "
            "CAST(:detail AS text[])) ORDER BY 1, 2 ON CONFLICT DO NOTHING"
        ),
        params,
    )
    await connection.execute(
        text(
            f"UPDATE members m SET next_due_at = NULL FROM {UNNEST_KEYS} AS k(shop_id, member_id) "
            "WHERE m.shop_id = k.shop_id AND m.member_id = k.member_id"
        ),
        key_arrays([key for key, _, _ in rows]),
    )


async def count_quarantined_events(connection: AsyncConnection, counts: dict[Key, int]) -> None:
    """Counts events that reached quarantined members (they went to the dead-letter topic)."""
    if not counts:
        return
    keys = sorted(counts)
    await connection.execute(
        text(
            "UPDATE quarantined_members q SET events = q.events + k.n, last_event_at = now() "
            "FROM unnest(CAST(:a AS text[]), CAST(:b AS text[]), CAST(:n AS int[])) AS k(shop_id, member_id, n) "
            "WHERE q.shop_id = k.shop_id AND q.member_id = k.member_id"
        ),
        {"a": [k[0] for k in keys], "b": [k[1] for k in keys], "n": [counts[k] for k in keys]},
    )


async def count_quarantined(connection: AsyncConnection) -> int:
    return int(await connection.scalar(text("SELECT count(*) FROM quarantined_members")) or 0)


async def release(connection: AsyncConnection, key: Key) -> dict[str, Any] | None:
    """Deletes the member's quarantine row and makes the member due now; the released row, or None.

    The member row is locked first, in the order the event path takes its locks (members,
    then the quarantine), so a concurrent batch cannot deadlock with it.
    """
    params = {"shop_id": key[0], "member_id": key[1]}
    await connection.execute(
        text("SELECT 1 FROM members WHERE shop_id = :shop_id AND member_id = :member_id FOR UPDATE"), params
    )
    released = (
        await connection.execute(
            text(
                "DELETE FROM quarantined_members WHERE shop_id = :shop_id AND member_id = :member_id "
                "RETURNING shop_id, member_id, reason, detail, events, quarantined_at, last_event_at"
            ),
            params,
        )
    ).one_or_none()
    if released is None:
        return None
    await connection.execute(
        text("UPDATE members SET next_due_at = now() WHERE shop_id = :shop_id AND member_id = :member_id"), params
    )
    return dict(released._mapping)
