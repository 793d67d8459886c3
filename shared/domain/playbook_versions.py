"""Stored versions of a shop's playbook overrides: what was stored, by whom and when.

A shop's playbook is composed of layers: the built-in defaults, the playbook file's
``defaults`` and its ``shops.<shop>`` entry, then the newest stored overrides document of
the shop. Each stored document is a version (1, 2, ...); version 0 is the file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

FILE_VERSION = 0  # a shop without stored versions: the playbook file alone


@dataclass(frozen=True, slots=True)
class PlaybookVersionStamp:
    """Who stored a version and when; the versions list shows these."""

    version: int
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class PlaybookVersion:
    """One stored overrides document of a shop, in the shape of the file's ``shops.<shop>`` entry."""

    shop_id: str
    version: int
    overrides: dict[str, Any]
    created_at: datetime
    created_by: str

    @property
    def stamp(self) -> PlaybookVersionStamp:
        return PlaybookVersionStamp(self.version, self.created_at, self.created_by)
