"""Manual tags (``manual.<name>``): set and removed through the API, kept apart from the computed ones.

They live in their own table with an optional expiry, so that setting one never
rewrites the member row the event path owns, and an expired tag simply stops counting
(every read compares ``expires_at`` with the time it asks about).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.store.bulk_sql import Key

_SET = text(
    "INSERT INTO member_manual_tags (shop_id, member_id, tag, expires_at) "
    "SELECT shop_id, member_id, :tag, :expires_at FROM members WHERE shop_id = :shop_id AND member_id = :member_id "
    "ON CONFLICT (shop_id, member_id, tag) DO UPDATE SET expires_at = EXCLUDED.expires_at, created_at = now() "
    "RETURNING created_at"
)
_REMOVE = text(
    "WITH gone AS (DELETE FROM member_manual_tags WHERE shop_id = :shop_id AND member_id = :member_id AND tag = :tag) "
    "SELECT EXISTS (SELECT FROM members WHERE shop_id = :shop_id AND member_id = :member_id)"
)


async def set_manual_tag(
    connection: AsyncConnection, key: Key, tag: str, expires_at: datetime | None
) -> datetime | None:
    """Sets the tag (or its new expiry); when it was set, or None when the member is unknown."""
    params = {"shop_id": key[0], "member_id": key[1], "tag": tag, "expires_at": expires_at}
    created: datetime | None = (await connection.execute(_SET, params)).scalar_one_or_none()
    return created


async def remove_manual_tag(connection: AsyncConnection, key: Key, tag: str) -> bool:
    """Removes the tag if the member carries it; whether the member is known."""
    params = {"shop_id": key[0], "member_id": key[1], "tag": tag}
    return bool((await connection.execute(_REMOVE, params)).scalar_one())
