"""Setting and removing a member's manual tags: the domain says which ids may be set, the store keeps them."""

from __future__ import annotations

from datetime import datetime

from shared.domain.tags import manual_tag_problem
from shared.store.unit_of_work import Key, UnitsOfWork


class ManualTagRefusedError(Exception):
    """``invalid_tag`` or ``member_not_found``, with a message for the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _check(tag: str) -> None:
    problem = manual_tag_problem(tag)
    if problem is not None:
        raise ManualTagRefusedError("invalid_tag", problem)


async def set_manual_tag(units: UnitsOfWork, key: Key, tag: str, expires_at: datetime | None) -> datetime:
    """Sets the tag, or moves its expiry (None: never expires); returns when it was set."""
    _check(tag)
    async with units() as uow:
        created = await uow.set_manual_tag(key, tag, expires_at)
        if created is None:
            raise ManualTagRefusedError("member_not_found", f"No member {key[1]!r} in shop {key[0]!r}")
        await uow.commit()
        return created


async def remove_manual_tag(units: UnitsOfWork, key: Key, tag: str) -> None:
    """Removes the tag; removing a tag the member does not carry changes nothing."""
    _check(tag)
    async with units() as uow:
        if not await uow.remove_manual_tag(key, tag):
            raise ManualTagRefusedError("member_not_found", f"No member {key[1]!r} in shop {key[0]!r}")
        await uow.commit()
