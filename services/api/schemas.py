"""Response bodies, declared so that the OpenAPI document at /docs describes them.

Money travels as decimal strings with two places ("129.00") so no client rounds it
through a float; datetimes are RFC 3339 with an offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.contract.actions import Action, NotificationOutcome

MONEY_PATTERN = r"^-?\d+\.\d{2}$"


class ErrorDetail(BaseModel):
    code: str = Field(examples=["member_not_found"])
    message: str = Field(examples=["No member 'm-1' in shop 'shop-1'"])


class ErrorResponse(BaseModel):
    """The body of every non-2xx response."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool] = Field(examples=[{"database": True, "kafka": True}])


class Tier(BaseModel):
    code: str = Field(examples=["advanced"])
    name: str = Field(description="From the shop's playbook; the code when the ladder no longer has it.")
    since: datetime | None


class Metrics(BaseModel):
    net_spend: str = Field(pattern=MONEY_PATTERN, examples=["129.00"])
    paid_orders: int
    average_order_value: str | None = Field(
        pattern=MONEY_PATTERN, examples=["64.50"], description="net_spend / paid_orders; null with no paid orders."
    )
    first_order_at: datetime | None
    last_order_at: datetime | None


class NextTierStatus(BaseModel):
    """The next rung: reaching either the spend or the order count is enough."""

    code: str = Field(examples=["vip"])
    spend_needed: str = Field(pattern=MONEY_PATTERN, examples=["50.00"])
    orders_needed: int


class MemberStatus(BaseModel):
    shop_id: str
    member_id: str
    joined_at: datetime | None
    tier: Tier | None
    metrics: Metrics
    next_tier: NextTierStatus | None = Field(description="Null at the top of the ladder.")
    updated_at: datetime


class ActionPage(BaseModel):
    """Actions newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[Action]
    next_cursor: str | None


class NotificationPage(BaseModel):
    """Notification outcomes newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[NotificationOutcome]
    next_cursor: str | None
