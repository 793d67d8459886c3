"""The campaign resource: creating a campaign from a validated plan, reading it, and cancelling it.

Each call is one transaction on the engine. A campaign made from a saved segment copies the
segment's current definition and version in when it is created, so later versions of the
segment (or its archiving) never change what the campaign targets. Running the waves is the
scheduler's part; here a campaign is only written as ``scheduled`` with ``pending`` waves.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.audience.campaign_report import campaign_figures
from shared.audience.segment_reads import get_segment
from shared.domain.campaign_report import GroupFigures, report_document
from shared.domain.campaigns import HOLDOUT, CampaignPlan, InvalidCampaignError, plan_document, stored_plan
from shared.domain.playbook import ShopPlaybook
from shared.domain.segments import InvalidDefinitionError, Vocabulary, parse_definition
from shared.store import campaign_rows
from shared.store.campaign_rows import STATUSES, CampaignKey, CampaignRecord, WaveRecord

__all__ = [
    "STATUSES",
    "CampaignKey",
    "CampaignNotCancellableError",
    "CampaignNotFoundError",
    "CampaignRecord",
    "InvalidCampaignError",
    "WaveRecord",
    "cancel_campaign",
    "create_campaign",
    "list_campaigns",
    "read_campaign",
]


class CampaignNotFoundError(LookupError):
    """The shop has no such campaign."""


class CampaignNotCancellableError(Exception):
    """The campaign is completed: every wave has run, there is nothing left to stop."""


async def create_campaign(
    engine: AsyncEngine,
    shop_id: str,
    shop: ShopPlaybook,
    plan: CampaignPlan,
    created_by: str,
    now: datetime | None = None,
) -> CampaignRecord:
    """Stores the plan as a new campaign (a fresh UUID) with a pending row per wave.

    A ``segment_id`` must name a saved segment of the shop that is not archived; its current
    definition, still valid against the shop's playbook, is copied into the plan. Raises
    ``InvalidCampaignError`` naming ``segment_id`` otherwise.
    """
    campaign_id = str(uuid.uuid4())
    created_at = now or datetime.now(UTC)
    async with engine.begin() as connection:
        segment_version = None
        if plan.segment_id is not None:
            saved = await get_segment(connection, shop_id, plan.segment_id)
            if saved is None:
                raise InvalidCampaignError("segment_id", "names no saved segment of the shop")
            if saved.archived_at is not None:
                raise InvalidCampaignError("segment_id", "names an archived segment")
            try:
                node = parse_definition(saved.definition, Vocabulary.of(shop), root="definition")
            except InvalidDefinitionError as error:
                raise InvalidCampaignError(
                    "segment_id", f"the segment's definition no longer fits the shop's playbook ({error})"
                ) from error
            plan = dataclasses.replace(plan, definition=node, definition_document=saved.definition)
            segment_version = saved.version
        waves = [(wave.number, wave.at, wave.audience) for wave in plan.waves]
        await campaign_rows.insert_campaign(
            connection, shop_id, campaign_id, plan_document(plan), segment_version, waves, created_at, created_by
        )
        created = await campaign_rows.get_campaign(connection, shop_id, campaign_id)
    assert created is not None
    return created


async def read_campaign(engine: AsyncEngine, shop_id: str, campaign_id: str) -> CampaignRecord:
    """The campaign with its waves; raises ``CampaignNotFoundError``."""
    async with engine.connect() as connection:
        found = await campaign_rows.get_campaign(connection, shop_id, campaign_id)
    if found is None:
        raise CampaignNotFoundError(shop_id, campaign_id)
    return found


async def list_campaigns(
    engine: AsyncEngine, shop_id: str, *, status: str | None, after: CampaignKey | None, limit: int
) -> list[CampaignRecord]:
    """Up to ``limit`` of the shop's campaigns, newest first, after ``after``; only ``status`` if given."""
    async with engine.connect() as connection:
        return await campaign_rows.list_campaigns(connection, shop_id, status=status, after=after, limit=limit)


async def cancel_campaign(
    engine: AsyncEngine, shop_id: str, campaign_id: str, now: datetime | None = None
) -> CampaignRecord:
    """Cancels the campaign and its pending waves in one transaction; the campaign as it then is.

    An already cancelled campaign is answered as it is (cancelling is idempotent); a completed one
    raises ``CampaignNotCancellableError``. A wave already running finishes, and one done stays done.
    """
    async with engine.begin() as connection:
        before = await campaign_rows.cancel_campaign(connection, shop_id, campaign_id, now or datetime.now(UTC))
        if before is None:
            raise CampaignNotFoundError(shop_id, campaign_id)
        if before == "completed":
            raise CampaignNotCancellableError(shop_id, campaign_id)
        found = await campaign_rows.get_campaign(connection, shop_id, campaign_id)
    assert found is not None
    return found


async def campaign_report(engine: AsyncEngine, shop_id: str, campaign_id: str) -> dict[str, Any]:
    """The report of a campaign (``report_document``); raises ``CampaignNotFoundError``."""
    async with engine.connect() as connection:
        found = await campaign_rows.get_campaign(connection, shop_id, campaign_id)
        if found is None:
            raise CampaignNotFoundError(shop_id, campaign_id)
        plan = stored_plan(found.plan)
        groups, waves = await campaign_figures(connection, shop_id, campaign_id, plan.attribution_window)
    empty = GroupFigures()
    strategies = [(strategy.code, groups.get(strategy.code, empty)) for strategy in plan.strategies]
    return report_document(strategies, groups.get(HOLDOUT, empty), waves)
