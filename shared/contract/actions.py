"""Outgoing messages: actions on ``member.actions`` and outcomes on ``member.notifications``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.model import Category

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


class CampaignRef(BaseModel):
    """The campaign wave and strategy an action was sent under (contract section 11)."""

    campaign_id: str
    wave: int
    strategy: str


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
    playbook_version: int | None = Field(
        default=None, description="The shop's playbook version the action was decided under (0: the file alone)."
    )
    campaign: CampaignRef | None = None


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
    """A record that could not be accepted, with the original bytes (contract sections 2 and 8).

    A record too large for the broker once wrapped (base64 adds a third) is kept whole in
    PostgreSQL instead: then ``value`` is null, ``value_prefix`` holds the first KiB,
    ``key`` is cut to its first KiB and ``stored_as`` names the stored copy.
    """

    topic: str
    partition: int
    offset: int
    key: str | None = Field(description="The record's key as text; cut to 1 KiB when the record is stored.")
    value: str | None = Field(description="The record's value in base64; null when the record is stored.")
    value_prefix: str | None = Field(
        default=None, description="Base64 of the value's first 1 KiB, when the record is stored; else null."
    )
    stored_as: str | None = Field(
        default=None,
        description="Where the whole record is kept (`dead_letters/<id>`: the id of a row in PostgreSQL), else null.",
    )
    error: str = Field(description="`<reason>: <detail>`; the detail names the field and rule, never the value.")
    received_at: datetime
