"""What time does to an open coupon: a reminder ``lead`` before it expires, then its expiry at ``expires_at``.

The scheduler applies this to the wallet's open coupons in batches, set-based, apart from the
members' own due items: a campaign can put a coupon in a million wallets, and none of those
members needs to be loaded for its coupon to expire. Everything runs on the due times as
business time, so a run as of the same time again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.decisions import action_id
from shared.domain.model import ActionDecision, Coupon, CouponChange, CouponStatus
from shared.domain.money import money
from shared.domain.playbook import ShopPlaybook

__all__ = ["REMINDER", "CouponPass", "reminder_lead", "run_coupon"]

REMINDER = "coupon_expiry_reminder"


def reminder_lead(playbook: ShopPlaybook) -> timedelta | None:
    """How long before its expiry a coupon is reminded of; None when the shop sends no reminders."""
    config = playbook.rule(REMINDER)
    return config.lead if config is not None else None


@dataclass(frozen=True, slots=True)
class CouponPass:
    """What a run did to one coupon: the row's change, the reminder sent, and whether one came too late."""

    change: CouponChange | None
    reminder: ActionDecision | None = None
    late: bool = False

    @property
    def expired(self) -> bool:
        return self.change is not None and self.change.status == "expired"


def run_coupon(coupon: Coupon, playbook: ShopPlaybook, as_of: datetime) -> CouponPass:
    """The reminder and expiry of an issued coupon due by ``as_of``.

    A reminder that would fall due at or before the coupon's issue is never sent; it counts as
    done at the issue. One handled later than ``schedule.max_lateness`` after it fell due is not
    sent either (``late``), like every scheduled message.
    """
    if coupon.status != "issued":
        return CouponPass(None)
    reminded_at, reminder, late = coupon.reminded_at, None, False
    lead = reminder_lead(playbook)
    if reminded_at is None and lead is not None:
        due = coupon.expires_at - lead
        if due <= coupon.issued_at:
            reminded_at = coupon.issued_at
        elif due <= as_of:
            reminded_at = due
            lateness = playbook.schedule.max_lateness
            late = lateness is not None and as_of - due > lateness
            reminder = None if late else _reminder(coupon, playbook, due)
    expired = coupon.expires_at <= as_of
    if not expired and reminded_at == coupon.reminded_at:
        return CouponPass(None)
    status: CouponStatus = "expired" if expired else "issued"
    return CouponPass(CouponChange(coupon.code, status, reminded_at=reminded_at), reminder, late)


def _reminder(coupon: Coupon, playbook: ShopPlaybook, due: datetime) -> ActionDecision:
    variables: dict[str, object] = {
        "code": coupon.code,
        "rule": coupon.rule,
        "value": money(coupon.value),
        "expires_at": coupon.expires_at.isoformat(),
    }
    if coupon.campaign_id is not None:
        variables["campaign_id"] = coupon.campaign_id
    return ActionDecision(
        action_id=action_id(coupon.shop_id, coupon.member_id, REMINDER, coupon.code),
        shop_id=coupon.shop_id,
        member_id=coupon.member_id,
        rule=REMINDER,
        category="incentive",
        trigger={"schedule": REMINDER, "due_at": due.isoformat()},
        occurred_at=due,
        template=REMINDER,
        variables=variables,
        playbook_version=playbook.version,
    )
