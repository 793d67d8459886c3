"""Notification outcomes and their stable ids."""

from __future__ import annotations

import uuid
from datetime import datetime

from shared.contract.actions import NotificationOutcome, NotificationStatus

NOTIFICATION_NAMESPACE = uuid.UUID("0d3b8f5e-2c71-4c1e-9a9e-6e4f2b7d5a31")


def notification_id(action_id: str, channel: str, status: str) -> str:
    """Stable per (action, channel, status): a re-recorded outcome is the same notification."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{action_id}|{channel}|{status}"))


def make_outcome(
    *,
    action_id: str,
    shop_id: str,
    member_id: str,
    channel: str,
    status: NotificationStatus,
    reason: str | None,
    at: datetime,
) -> NotificationOutcome:
    return NotificationOutcome(
        notification_id=notification_id(action_id, channel, status),
        action_id=action_id,
        shop_id=shop_id,
        member_id=member_id,
        channel=channel,
        status=status,
        reason=reason,
        at=at,
    )
