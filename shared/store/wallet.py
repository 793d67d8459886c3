"""The coupon wallet: coupons issued, redeemed and expired, and the codes members shared with others."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import coupons, unredeemed_codes
from shared.domain.model import Coupon, CouponChange, UnredeemedCode
from shared.store.bulk_sql import UNNEST_KEYS, Key, insert_rows, json_rows, key_arrays

_COLUMNS = [
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
]
# A coupon is issued under its action's id, so the same fact issued again is the same coupon.
_INSERT = text(f"{insert_rows(coupons, _COLUMNS)} ON CONFLICT (shop_id, code) DO NOTHING")
_CHANGE = text(
    "UPDATE coupons c SET status = u.r->>2, order_id = u.r->>3, redeemed_at = CAST(u.r->>4 AS timestamptz) "
    "FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS u(r) WHERE c.shop_id = u.r->>0 AND c.code = u.r->>1"
)
_UNREDEEMED_COLUMNS = ["shop_id", "code", "order_id", "member_id", "at"]
_UNREDEEMED = text(f"{insert_rows(unredeemed_codes, _UNREDEEMED_COLUMNS)} ON CONFLICT DO NOTHING")


async def insert_coupons(connection: AsyncConnection, rows: Sequence[Coupon]) -> None:
    values = [[getattr(coupon, name) for name in _COLUMNS] for coupon in rows]
    if values:
        await connection.execute(_INSERT, json_rows(values))


async def change_coupons(connection: AsyncConnection, rows: Sequence[tuple[str, CouponChange]]) -> None:
    """Redemptions and expiries as (shop, change), applied after the batch's new coupons are in."""
    values = [[shop, c.code, c.status, c.order_id, c.redeemed_at] for shop, c in rows]
    if values:
        await connection.execute(_CHANGE, json_rows(values))


async def insert_unredeemed(connection: AsyncConnection, rows: Sequence[tuple[str, UnredeemedCode]]) -> None:
    values = [[shop, s.code, s.order_id, s.member_id, s.at] for shop, s in rows]
    if values:
        await connection.execute(_UNREDEEMED, json_rows(values))


async def find_coupons(connection: AsyncConnection, keys: Sequence[Key]) -> dict[Key, Coupon]:
    """Coupons by (shop, code); codes no wallet holds are left out."""
    if not keys:
        return {}
    columns = ", ".join(f"c.{name}" for name in _COLUMNS)
    rows = await connection.execute(
        text(f"SELECT {columns} FROM coupons c JOIN {UNNEST_KEYS} AS k(shop_id, code) USING (shop_id, code)"),
        key_arrays(keys),
    )
    found = {}
    for row in rows:
        coupon = Coupon(**dict(zip(_COLUMNS, row, strict=True)))
        found[(coupon.shop_id, coupon.code)] = coupon
    return found
