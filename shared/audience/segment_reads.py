"""Saved segments as stored: a shop's list, and one segment at its current or an earlier version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, exists, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import segment_versions, segments
from shared.domain.segments import SavedSegment


class SegmentVersionNotFoundError(LookupError):
    """The segment exists but has no such version."""


def _columns() -> tuple[Any, ...]:
    return (
        segments.c.segment_id,
        segment_versions.c.name,
        segment_versions.c.description,
        segment_versions.c.definition,
        segment_versions.c.version,
        segments.c.version.label("latest_version"),
        segments.c.created_at,
        segments.c.updated_at,
        segments.c.archived_at,
    )


def _saved(row: Row[Any]) -> SavedSegment:
    return SavedSegment(
        segment_id=row.segment_id,
        name=row.name,
        description=row.description,
        definition=row.definition,
        version=row.version,
        latest_version=row.latest_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        archived_at=row.archived_at,
    )


def _joined(version: Any) -> Any:
    return segments.join(
        segment_versions,
        and_(
            segment_versions.c.shop_id == segments.c.shop_id,
            segment_versions.c.segment_id == segments.c.segment_id,
            segment_versions.c.version == version,
        ),
    )


async def get_segment(
    connection: AsyncConnection, shop_id: str, segment_id: str, version: int | None = None
) -> SavedSegment | None:
    """The segment at ``version`` (its current one when None); None when the shop has no such segment.

    Raises ``SegmentVersionNotFoundError`` when the segment exists without that version.
    """
    shown = segments.c.version if version is None else literal(version)
    statement = (
        select(*_columns())
        .select_from(_joined(shown))
        .where(segments.c.shop_id == shop_id, segments.c.segment_id == segment_id)
    )
    row = (await connection.execute(statement)).one_or_none()
    if row is not None:
        return _saved(row)
    if version is not None:
        known = await connection.scalar(
            select(exists().where(segments.c.shop_id == shop_id, segments.c.segment_id == segment_id))
        )
        if known:
            raise SegmentVersionNotFoundError(shop_id, segment_id, version)
    return None


async def list_segments(
    connection: AsyncConnection,
    shop_id: str,
    *,
    include_archived: bool,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[SavedSegment]:
    """Up to ``limit`` segments at their current versions, oldest first, after the (created_at, id) ``after``."""
    statement = select(*_columns()).select_from(_joined(segments.c.version)).where(segments.c.shop_id == shop_id)
    if not include_archived:
        statement = statement.where(segments.c.archived_at.is_(None))
    if after is not None:
        statement = statement.where(tuple_(segments.c.created_at, segments.c.segment_id) > tuple_(*after))
    statement = statement.order_by(segments.c.created_at, segments.c.segment_id).limit(limit)
    return [_saved(row) for row in (await connection.execute(statement)).all()]
