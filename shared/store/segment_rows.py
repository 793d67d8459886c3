"""Saved segments: a new segment, a new version of one, and archiving one.

``segments`` holds each segment's current version number, name and dates; every version's
name, description and definition stay in ``segment_versions``, so earlier versions remain
readable. A new version takes the segment's row lock (the ``UPDATE``), so two concurrent
revisions get consecutive numbers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import case, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import segment_versions, segments
from shared.domain.segments import SavedSegment

Refusal = Literal["not_found", "archived"]


async def insert_segment(
    connection: AsyncConnection,
    shop_id: str,
    segment_id: str,
    name: str,
    description: str | None,
    definition: Any,
    now: datetime,
) -> SavedSegment:
    """Saves a new segment as its version 1."""
    await connection.execute(
        insert(segments).values(
            shop_id=shop_id,
            segment_id=segment_id,
            name=name,
            description=description,
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    await _insert_version(connection, shop_id, segment_id, 1, name, description, definition, now)
    return SavedSegment(segment_id, name, description, definition, 1, 1, now, now, None)


async def add_version(
    connection: AsyncConnection,
    shop_id: str,
    segment_id: str,
    name: str,
    description: str | None,
    definition: Any,
    now: datetime,
) -> SavedSegment | Refusal:
    """Saves the next version of an unarchived segment; else why not (``not_found``, ``archived``)."""
    row = (
        await connection.execute(
            update(segments)
            .where(segments.c.shop_id == shop_id, segments.c.segment_id == segment_id, segments.c.archived_at.is_(None))
            .values(version=segments.c.version + 1, name=name, description=description, updated_at=now)
            .returning(segments.c.version, segments.c.created_at)
        )
    ).one_or_none()
    if row is None:
        archived = await connection.scalar(
            select(segments.c.archived_at).where(segments.c.shop_id == shop_id, segments.c.segment_id == segment_id)
        )
        return "archived" if archived is not None else "not_found"
    version, created_at = row
    await _insert_version(connection, shop_id, segment_id, version, name, description, definition, now)
    return SavedSegment(segment_id, name, description, definition, version, version, created_at, now, None)


async def archive_segment(connection: AsyncConnection, shop_id: str, segment_id: str, now: datetime) -> datetime | None:
    """Archives the segment (once: archiving again keeps the first time); its archive time, or None if unknown."""
    archived_at: datetime | None = await connection.scalar(
        update(segments)
        .where(segments.c.shop_id == shop_id, segments.c.segment_id == segment_id)
        .values(
            archived_at=case((segments.c.archived_at.is_(None), now), else_=segments.c.archived_at),
            updated_at=case((segments.c.archived_at.is_(None), now), else_=segments.c.updated_at),
        )
        .returning(segments.c.archived_at)
    )
    return archived_at


async def _insert_version(
    connection: AsyncConnection,
    shop_id: str,
    segment_id: str,
    version: int,
    name: str,
    description: str | None,
    definition: Any,
    now: datetime,
) -> None:
    await connection.execute(
        insert(segment_versions).values(
            shop_id=shop_id,
            segment_id=segment_id,
            version=version,
            name=name,
            description=description,
            definition=definition,
            created_at=now,
        )
    )
