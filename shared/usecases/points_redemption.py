"""Redeeming a member's points: the domain decides, the unit of work books it under the member's lock."""

from __future__ import annotations

from datetime import datetime

from shared.domain import redemption
from shared.domain.playbook import ShopPlaybook
from shared.domain.redemption import Redemption, RedemptionRefusedError
from shared.domain.tags import refresh_tags
from shared.store.unit_of_work import Key, UnitsOfWork

__all__ = ["Redemption", "RedemptionRefusedError", "redeem_points"]


async def redeem_points(
    units: UnitsOfWork, playbook: ShopPlaybook, key: Key, idempotency_key: str, wanted: int, at: datetime
) -> Redemption:
    """Books a redemption once per idempotency key; a repeated key answers the first booking.

    Raises ``RedemptionRefusedError``: ``member_not_found``, ``idempotency_key_reused``, ``insufficient_points``.
    """
    async with units() as uow:
        context = (await uow.load_members([key], create=False)).contexts.get(key)
        if context is None:
            raise RedemptionRefusedError("member_not_found", f"No member {key[1]!r} in shop {key[0]!r}")
        booked = await uow.ledger_entry(key, redemption.entry_id(idempotency_key))
        done = redemption.redeem(context.member.points_balance, idempotency_key, wanted, at, booked)
        if not done.replayed:
            context.member.points_balance = done.balance
            context.new_ledger.append(done.entry)
            refresh_tags(context, playbook)  # the balance's tags
            uow.save([context])
            await uow.commit()
        return done
