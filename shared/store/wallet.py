"""The coupon wallet: coupons issued, redeemed and expired, and the codes payments named without redeeming.

Its writes travel with the batch's actions, as parts of the one statement that logs them
(``action_log.insert_actions``): a batch pays one round trip for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import coupons, unredeemed_codes
from shared.domain.model import Coupon, CouponChange, UnredeemedCode
from shared.store.bulk_sql import UNNEST_KEYS, Key, insert_rows, json_rows, key_arrays, rows_of

COLUMNS = [
    "shop_id",
    "code",
    "member_id",
    "rule",
    "campaign_id",
    "action_id",
    "value",
    "min_spend",
    "issued_at",
    "expires_at",
    "status",
    "order_id",
    "redeemed_at",
    "playbook_version",
    "reminded_at",
]
# A coupon is issued under its action's id, so the same fact issued again is the same coupon.
INSERT_COUPONS = f"{insert_rows(coupons, COLUMNS, 'coupons')} ON CONFLICT (shop_id, code) DO NOTHING"
# Redemptions and expiries of coupons written by earlier transactions (see ``coupon_parameters``).
CHANGE_COUPONS = (
    "UPDATE coupons c SET status = u.r->>2, order_id = u.r->>3, redeemed_at = CAST(u.r->>4 AS timestamptz) "
    f"FROM {rows_of('coupon_changes')} WHERE c.shop_id = u.r->>0 AND c.code = u.r->>1"
)
_UNREDEEMED_COLUMNS = ["shop_id", "code", "order_id", "member_id", "at"]
INSERT_UNREDEEMED = f"{insert_rows(unredeemed_codes, _UNREDEEMED_COLUMNS, 'unredeemed')} ON CONFLICT DO NOTHING"


def coupon_row(coupon: Coupon) -> list[Any]:
    """The coupon's values in ``COLUMNS`` order."""
    return [getattr(coupon, name) for name in COLUMNS]


def coupon_parameters(
    issued: Sequence[Coupon],
    changes: Sequence[tuple[str, CouponChange]],
    unredeemed: Sequence[tuple[str, UnredeemedCode]],
) -> dict[str, str]:
    """The parameters of ``INSERT_COUPONS``, ``CHANGE_COUPONS`` and ``INSERT_UNREDEEMED``.

    The parts of one statement do not see each other's rows, so a change to a coupon issued
    in the same batch is applied to the new row before it is written.
    """
    new = {(coupon.shop_id, coupon.code): coupon for coupon in issued}
    later: dict[Key, CouponChange] = {}
    for shop, change in changes:
        coupon = new.get((shop, change.code))
        if coupon is None:
            later[(shop, change.code)] = change
        else:
            coupon.status, coupon.order_id, coupon.redeemed_at = change.status, change.order_id, change.redeemed_at
    return {
        **json_rows([coupon_row(coupon) for coupon in new.values()], "coupons"),
        **json_rows(
            [[shop, code, c.status, c.order_id, c.redeemed_at] for (shop, code), c in sorted(later.items())],
            "coupon_changes",
        ),
        **json_rows([[shop, u.code, u.order_id, u.member_id, u.at] for shop, u in unredeemed], "unredeemed"),
    }


# The scheduler's pass: expiries and the reminders due, with each reminder's time kept.
_PASS = text(
    "UPDATE coupons c SET status = u.r->>2, reminded_at = CAST(u.r->>3 AS timestamptz) "
    f"FROM {rows_of()} WHERE c.shop_id = u.r->>0 AND c.code = u.r->>1"
)
_DUE = text(
    f"SELECT {', '.join(f'c.{name}' for name in COLUMNS)} FROM coupons c "
    "LEFT JOIN unnest(CAST(:shops AS text[]), CAST(:leads AS interval[])) AS l(shop_id, lead) USING (shop_id) "
    "WHERE c.status = 'issued' AND c.expires_at <= CAST(:horizon AS timestamptz) AND ("
    "c.expires_at <= CAST(:as_of AS timestamptz) OR (c.reminded_at IS NULL AND c.expires_at - "
    "CASE WHEN l.shop_id IS NULL THEN CAST(:default_lead AS interval) ELSE l.lead END <= CAST(:as_of AS timestamptz))) "
    "ORDER BY c.expires_at LIMIT :limit FOR UPDATE OF c SKIP LOCKED"
)


async def claim_due_coupons(
    connection: AsyncConnection,
    as_of: datetime,
    limit: int,
    leads: Mapping[str, timedelta | None],
    default_lead: timedelta | None,
) -> list[Coupon]:
    """Locks up to ``limit`` issued coupons whose expiry or reminder is due by ``as_of`` that nobody else holds.

    ``leads`` are the reminder leads of shops whose playbook differs from the default (None: no reminders).
    """
    longest = max((lead for lead in [default_lead, *leads.values()] if lead is not None), default=timedelta(0))
    rows = await connection.execute(
        _DUE,
        {
            "shops": list(leads),
            "leads": list(leads.values()),
            "default_lead": default_lead,
            "as_of": as_of,
            "horizon": as_of + longest,
            "limit": limit,
        },
    )
    return [Coupon(**dict(zip(COLUMNS, row, strict=True))) for row in rows]


async def pass_coupons(connection: AsyncConnection, changes: Sequence[tuple[str, CouponChange]]) -> None:
    """The scheduler's changes (status and reminder time) to coupons it holds."""
    values = [[shop, c.code, c.status, c.reminded_at] for shop, c in changes]
    if values:
        await connection.execute(_PASS, json_rows(values))


async def find_coupons(connection: AsyncConnection, keys: Sequence[Key]) -> dict[Key, Coupon]:
    """Coupons by (shop, code); codes no wallet holds are left out."""
    if not keys:
        return {}
    columns = ", ".join(f"c.{name}" for name in COLUMNS)
    rows = await connection.execute(
        text(f"SELECT {columns} FROM coupons c JOIN {UNNEST_KEYS} AS k(shop_id, code) USING (shop_id, code)"),
        key_arrays(keys),
    )
    found = {}
    for row in rows:
        coupon = Coupon(**dict(zip(COLUMNS, row, strict=True)))
        found[(coupon.shop_id, coupon.code)] = coupon
    return found
