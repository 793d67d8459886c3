"""Releasing a quarantined member: it goes back on the schedule and takes events again."""

from __future__ import annotations

from typing import Any

from shared.store.unit_of_work import Key, UnitsOfWork


async def release_member(units: UnitsOfWork, key: Key) -> dict[str, Any] | None:
    """The released quarantine row (its columns), or None when the member was not quarantined."""
    async with units() as uow:
        released = await uow.release_quarantined(key)
        await uow.commit()
        return released
