"""What deciding incentives needs beyond the members themselves: budget spend and other members' coupons.

Both the event path and the scheduler call this once per transaction, after the members are
locked: it locks and loads the budgets of the shops in the batch that budget a rule (so
spending is serialised per budget, and shops without budgets pay nothing), and looks up the
coupons the batch's payments name, whoever's wallet holds them (so a payment redeems its own
coupon and a code passed on to another member is recognised as shared), with one query per
batch at most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from shared.domain.decisions import MemberContext
from shared.domain.incentives import budgeted_rules
from shared.domain.model import Coupon
from shared.domain.playbook import ShopPlaybook
from shared.store.unit_of_work import Key, UnitOfWork

# The longest budget period is a calendar month: any decision at or after ``earliest`` falls in a
# period starting at most this long before it (a day more for the shop's time zone).
_LONGEST_PERIOD = timedelta(days=32)


async def attach_incentive_inputs(
    uow: UnitOfWork,
    contexts: Mapping[Key, MemberContext],
    playbooks: Callable[[str], ShopPlaybook],
    earliest: datetime | None,
    codes: Iterable[tuple[Key, str]] = (),
) -> None:
    """Gives every context the batch's budget book and the shop's coupons its payments name.

    ``earliest`` is the earliest business time the batch may decide at; ``codes`` are the
    (member, code) pairs of the batch's payments.
    """
    shops = sorted({key[0] for key in contexts})
    scopes = [(shop, rule) for shop in shops for rule in budgeted_rules(playbooks(shop))]
    if scopes and earliest is not None:
        book = await uow.lock_budgets(scopes, (earliest - _LONGEST_PERIOD).date())
        for context in contexts.values():
            context.budgets = book
    wanted = sorted({(key[0], code) for key, code in codes if key in contexts})
    found = await uow.find_coupons(wanted) if wanted else {}
    by_shop: dict[str, dict[str, Coupon]] = {}
    for (shop, code), coupon in found.items():
        by_shop.setdefault(shop, {})[code] = coupon
    for key, context in contexts.items():  # also where nothing was found: coupons the batch issues join it
        context.shop_coupons = by_shop.setdefault(key[0], {})
