"""Storing and reading versions of a shop's playbook overrides.

A new document is validated strictly against the playbook file's layers before anything
is written (``InvalidPlaybookError`` names the bad path), then stored as the shop's next
version. A read composes the stored document over the same layers, as every service does
when it installs the version; version 0 is the file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.playbook import ShopPlaybook
from shared.domain.playbook_versions import FILE_VERSION, PlaybookVersion, PlaybookVersionStamp
from shared.playbook_file import InvalidPlaybookError, PlaybookLayers
from shared.store import playbook_rows

__all__ = [
    "InvalidPlaybookError",
    "PlaybookVersionNotFoundError",
    "StoredPlaybookInvalidError",
    "VersionedPlaybook",
    "playbook_versions",
    "read_playbook",
    "save_playbook",
]


class PlaybookVersionNotFoundError(Exception):
    """The shop has no such stored version."""


class StoredPlaybookInvalidError(Exception):
    """A stored version no longer validates over the playbook file (the file changed since it was stored);
    services keep the shop's previous playbook meanwhile."""

    def __init__(self, version: int, error: InvalidPlaybookError) -> None:
        super().__init__(f"version {version} no longer validates over the playbook file: {error}")
        self.error = error


@dataclass(frozen=True, slots=True)
class VersionedPlaybook:
    """A shop's composed playbook at a version, with the stored document behind it (None for version 0)."""

    playbook: ShopPlaybook
    stored: PlaybookVersion | None

    @property
    def version(self) -> int:
        return self.playbook.version


async def save_playbook(
    engine: AsyncEngine, layers: PlaybookLayers, shop_id: str, overrides: dict[str, Any], created_by: str
) -> VersionedPlaybook:
    """Stores ``overrides`` (the shop's whole override document) as its next version, once it validates."""
    layers.compose(shop_id, overrides, FILE_VERSION, strict=True)
    async with engine.begin() as connection:
        stored = await playbook_rows.add_version(connection, shop_id, overrides, created_by)
    return VersionedPlaybook(layers.compose(shop_id, stored.overrides, stored.version), stored)


async def read_playbook(
    engine: AsyncEngine, layers: PlaybookLayers, shop_id: str, version: int | None = None
) -> VersionedPlaybook:
    """The shop's playbook at ``version``, by default its newest stored one (the file alone when none is).

    Raises ``PlaybookVersionNotFoundError`` for a version the shop does not have, and
    ``StoredPlaybookInvalidError`` for one that no longer validates.
    """
    if version == FILE_VERSION:
        return VersionedPlaybook(layers.compose(shop_id, {}, FILE_VERSION), None)
    async with engine.connect() as connection:
        stored = await playbook_rows.get_version(connection, shop_id, version)
    if stored is None:
        if version is not None:
            raise PlaybookVersionNotFoundError(f"shop {shop_id!r} has no playbook version {version}")
        return VersionedPlaybook(layers.compose(shop_id, {}, FILE_VERSION), None)
    try:
        return VersionedPlaybook(layers.compose(shop_id, stored.overrides, stored.version), stored)
    except InvalidPlaybookError as error:
        raise StoredPlaybookInvalidError(stored.version, error) from None


async def playbook_versions(
    engine: AsyncEngine, shop_id: str, *, before: int | None = None, limit: int = 50
) -> list[PlaybookVersionStamp]:
    """The shop's stored versions, newest first (older than ``before`` when given)."""
    async with engine.connect() as connection:
        return await playbook_rows.list_versions(connection, shop_id, before=before, limit=limit)
