"""Campaigns as stored: a new campaign with its waves, one or a page of them, and cancelling one.

A campaign's ``status`` is read through ``effective_status``, worked out from its waves, so it is right
whichever process moves them: ``cancelled`` once cancelled, ``completed`` when no wave is
pending or running, ``running`` once a wave has started, else ``scheduled``. A cancel takes the
campaign's row lock and then the pending waves' row locks, so a wave the scheduler has already
moved to ``running`` is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.schema import campaign_waves, campaigns

__all__ = [
    "CampaignKey",
    "CampaignRecord",
    "WaveRecord",
    "cancel_campaign",
    "get_campaign",
    "insert_campaign",
    "list_campaigns",
]

STATUSES = ("scheduled", "running", "completed", "cancelled")


@dataclass(frozen=True, slots=True)
class WaveRecord:
    wave: int
    at: datetime
    audience: str
    status: str
    members: int
    ran_at: datetime | None


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """A campaign row with its waves; ``plan`` is the stored plan document (``plan_document``)."""

    campaign_id: str
    name: str
    status: str
    plan: dict[str, Any]
    segment_id: str | None
    segment_version: int | None
    created_at: datetime
    created_by: str
    cancelled_at: datetime | None
    waves: tuple[WaveRecord, ...]


@dataclass(frozen=True, slots=True)
class CampaignKey:
    """Position in a shop's campaigns, newest first: the last one's (created_at, campaign_id)."""

    created_at: datetime
    campaign_id: str


def _waves_where(*statuses: str) -> Any:
    return exists().where(
        campaign_waves.c.shop_id == campaigns.c.shop_id,
        campaign_waves.c.campaign_id == campaigns.c.campaign_id,
        campaign_waves.c.status.in_(statuses),
    )


# The campaign's status from its waves: the stored column decides only ``cancelled``.
effective_status: Any = case(
    (campaigns.c.status == "cancelled", "cancelled"),
    (~_waves_where("pending", "running"), "completed"),
    (_waves_where("running", "done"), "running"),
    else_="scheduled",
).label("effective_status")


async def insert_campaign(
    connection: AsyncConnection,
    shop_id: str,
    campaign_id: str,
    plan: dict[str, Any],
    segment_version: int | None,
    waves: Sequence[tuple[int, datetime, str]],
    created_at: datetime,
    created_by: str,
) -> None:
    """The campaign row (``scheduled``) and one ``pending`` row per wave (number, at, audience)."""
    await connection.execute(
        insert(campaigns).values(
            shop_id=shop_id,
            campaign_id=campaign_id,
            name=plan["name"],
            status="scheduled",
            plan=plan,
            segment_id=plan.get("segment_id"),
            segment_version=segment_version,
            created_at=created_at,
            created_by=created_by,
        )
    )
    await connection.execute(
        insert(campaign_waves),
        [
            {"shop_id": shop_id, "campaign_id": campaign_id, "wave": number, "at": at, "audience": audience}
            for number, at, audience in waves
        ],
    )


def _select() -> Any:
    return select(
        campaigns.c.campaign_id,
        campaigns.c.name,
        effective_status,
        campaigns.c.plan,
        campaigns.c.segment_id,
        campaigns.c.segment_version,
        campaigns.c.created_at,
        campaigns.c.created_by,
        campaigns.c.cancelled_at,
    )


async def _waves(connection: AsyncConnection, shop_id: str, ids: Sequence[str]) -> dict[str, list[WaveRecord]]:
    """The waves of the campaigns named, in wave order, in one query."""
    found: dict[str, list[WaveRecord]] = {campaign_id: [] for campaign_id in ids}
    if not ids:
        return found
    rows = await connection.execute(
        select(
            campaign_waves.c.campaign_id,
            campaign_waves.c.wave,
            campaign_waves.c.at,
            campaign_waves.c.audience,
            campaign_waves.c.status,
            campaign_waves.c.members,
            campaign_waves.c.ran_at,
        )
        .where(campaign_waves.c.shop_id == shop_id, campaign_waves.c.campaign_id.in_(ids))
        .order_by(campaign_waves.c.campaign_id, campaign_waves.c.wave)
    )
    for row in rows:
        found[row.campaign_id].append(WaveRecord(row.wave, row.at, row.audience, row.status, row.members, row.ran_at))
    return found


async def _records(connection: AsyncConnection, shop_id: str, rows: Sequence[Any]) -> list[CampaignRecord]:
    waves = await _waves(connection, shop_id, [row.campaign_id for row in rows])
    return [
        CampaignRecord(
            campaign_id=row.campaign_id,
            name=row.name,
            status=row.effective_status,
            plan=row.plan,
            segment_id=row.segment_id,
            segment_version=row.segment_version,
            created_at=row.created_at,
            created_by=row.created_by,
            cancelled_at=row.cancelled_at,
            waves=tuple(waves[row.campaign_id]),
        )
        for row in rows
    ]


async def get_campaign(connection: AsyncConnection, shop_id: str, campaign_id: str) -> CampaignRecord | None:
    """The campaign with its waves; None when the shop has no such campaign."""
    row = (
        await connection.execute(
            _select().where(campaigns.c.shop_id == shop_id, campaigns.c.campaign_id == campaign_id)
        )
    ).one_or_none()
    if row is None:
        return None
    return (await _records(connection, shop_id, [row]))[0]


async def list_campaigns(
    connection: AsyncConnection, shop_id: str, *, status: str | None, after: CampaignKey | None, limit: int
) -> list[CampaignRecord]:
    """Up to ``limit`` campaigns, newest first (ties by campaign_id, descending), after ``after``."""
    statement = _select().where(campaigns.c.shop_id == shop_id)
    if status is not None:
        statement = statement.where(effective_status == status)
    if after is not None:
        statement = statement.where(
            tuple_(campaigns.c.created_at, campaigns.c.campaign_id) < tuple_(after.created_at, after.campaign_id)
        )
    statement = statement.order_by(campaigns.c.created_at.desc(), campaigns.c.campaign_id.desc()).limit(limit)
    rows = (await connection.execute(statement)).all()
    return await _records(connection, shop_id, rows)


async def cancel_campaign(connection: AsyncConnection, shop_id: str, campaign_id: str, now: datetime) -> str | None:
    """Cancels the campaign and its pending waves, unless it is cancelled or completed already.

    Returns the status it had (``scheduled`` or ``running`` when this call cancelled it), or None
    when the shop has no such campaign. Waves running or done stay as they are.
    """
    key = and_(campaigns.c.shop_id == shop_id, campaigns.c.campaign_id == campaign_id)
    locked = await connection.scalar(select(campaigns.c.campaign_id).where(key).with_for_update())
    if locked is None:
        return None
    status = str(await connection.scalar(select(effective_status).where(key)))
    if status in ("cancelled", "completed"):
        return status
    await connection.execute(update(campaigns).where(key).values(status="cancelled", cancelled_at=now))
    await connection.execute(
        update(campaign_waves)
        .where(
            campaign_waves.c.shop_id == shop_id,
            campaign_waves.c.campaign_id == campaign_id,
            campaign_waves.c.status == "pending",
        )
        .values(status="cancelled")
    )
    return status
