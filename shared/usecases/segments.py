"""Saving segments: a definition is validated against the shop's playbook, then stored as a new version.

Each call is one transaction on the engine. A definition that does not fit the language
raises ``InvalidDefinitionError`` (naming the path of the bad node) before anything is
written; a segment that is unknown or archived raises ``SegmentRefusedError``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.playbook import ShopPlaybook
from shared.domain.segments import InvalidDefinitionError, SavedSegment, Vocabulary, parse_definition
from shared.store import segment_rows

__all__ = [
    "InvalidDefinitionError",
    "SegmentRefusedError",
    "archive_segment",
    "create_segment",
    "new_segment_id",
    "revise_segment",
]

SEGMENT_ID_PREFIX = "seg_"


class SegmentRefusedError(Exception):
    """``segment_not_found`` or ``segment_archived``; the message names the segment."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_segment_id() -> str:
    """``seg_`` and 24 random hex digits: unguessable, and never derived from client input."""
    return SEGMENT_ID_PREFIX + secrets.token_hex(12)


def _not_found(shop_id: str, segment_id: str) -> SegmentRefusedError:
    return SegmentRefusedError("segment_not_found", f"No segment {segment_id!r} in shop {shop_id!r}")


async def create_segment(
    engine: AsyncEngine,
    shop_id: str,
    shop: ShopPlaybook,
    *,
    name: str,
    description: str | None,
    definition: Any,
    now: datetime | None = None,
) -> SavedSegment:
    """Saves a new segment (version 1) under a fresh id."""
    parse_definition(definition, Vocabulary.of(shop))
    async with engine.begin() as connection:
        return await segment_rows.insert_segment(
            connection, shop_id, new_segment_id(), name, description, definition, now or datetime.now(UTC)
        )


async def revise_segment(
    engine: AsyncEngine,
    shop_id: str,
    segment_id: str,
    shop: ShopPlaybook,
    *,
    name: str,
    description: str | None,
    definition: Any,
    now: datetime | None = None,
) -> SavedSegment:
    """Saves the segment's next version; earlier versions stay as they were."""
    parse_definition(definition, Vocabulary.of(shop))
    async with engine.begin() as connection:
        saved = await segment_rows.add_version(
            connection, shop_id, segment_id, name, description, definition, now or datetime.now(UTC)
        )
    if isinstance(saved, SavedSegment):
        return saved
    if saved == "not_found":
        raise _not_found(shop_id, segment_id)
    raise SegmentRefusedError(
        "segment_archived", f"Segment {segment_id!r} of shop {shop_id!r} is archived and can no longer change"
    )


async def archive_segment(engine: AsyncEngine, shop_id: str, segment_id: str, now: datetime | None = None) -> datetime:
    """Archives the segment (again: no change); its archive time. Campaigns keep their own copy of definitions."""
    async with engine.begin() as connection:
        archived_at = await segment_rows.archive_segment(connection, shop_id, segment_id, now or datetime.now(UTC))
    if archived_at is None:
        raise _not_found(shop_id, segment_id)
    return archived_at
