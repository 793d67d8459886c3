"""Outgoing messages: actions on ``member.actions`` and outcomes on ``member.notifications``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Category = Literal["care", "incentive"]
NotificationStatus = Literal["sent", "suppressed", "deferred", "failed"]


class EventTrigger(BaseModel):
    event_id: str
    event_type: str


class ScheduleTrigger(BaseModel):
    schedule: str
    due_at: datetime


class Message(BaseModel):
    template: str
    variables: dict[str, Any]


class Incentive(BaseModel):
    """What the member is given; ``points`` for point grants, the rest for coupons and samples."""

    model_config = ConfigDict(extra="allow")

    kind: str
    value: Decimal | None = None
    min_spend: Decimal | None = None
    code: str | None = None
    expires_at: datetime | None = None


class Action(BaseModel):
    """A care or incentive action decided for one member (contract section 4)."""

    model_config = ConfigDict(extra="forbid")

    action_id: str
    shop_id: str
    member_id: str
    rule: str
    category: Category
    trigger: EventTrigger | ScheduleTrigger
    occurred_at: datetime
    created_at: datetime
    message: Message
    incentive: Incentive | None = None


class NotificationOutcome(BaseModel):
    """What the notifier did with one action on one channel (contract section 5)."""

    notification_id: str
    action_id: str
    shop_id: str
    member_id: str
    channel: str
    status: NotificationStatus
    reason: str | None
    at: datetime


class DeadLetter(BaseModel):
    """A record that could not be accepted, with the original bytes (contract section 2)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    error: str
    received_at: datetime
