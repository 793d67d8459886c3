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
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.audience import campaign_forecast, segment_query
from shared.audience.campaign_report import campaign_figures
from shared.audience.segment_reads import get_segment
from shared.domain.campaign_forecast import forecast, forecast_document, plan_kinds
from shared.domain.campaign_report import GroupFigures, report_document
from shared.domain.campaigns import HOLDOUT, CampaignPlan, InvalidCampaignError, plan_document, stored_plan
from shared.domain.money import round_money
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
    "forecast_campaign",
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
        plan, segment_version = await _resolved(connection, shop_id, shop, plan)
        waves = [(wave.number, wave.at, wave.audience) for wave in plan.waves]
        await campaign_rows.insert_campaign(
            connection, shop_id, campaign_id, plan_document(plan), segment_version, waves, created_at, created_by
        )
        created = await campaign_rows.get_campaign(connection, shop_id, campaign_id)
    assert created is not None
    return created


async def _resolved(
    connection: AsyncConnection, shop_id: str, shop: ShopPlaybook, plan: CampaignPlan
) -> tuple[CampaignPlan, int | None]:
    """The plan with its segment's current definition copied in, and the segment's version (None: a definition).

    Raises ``InvalidCampaignError`` naming ``segment_id`` for an unknown or archived segment, or
    one whose definition no longer fits the shop's playbook.
    """
    if plan.segment_id is None:
        return plan, None
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
    return dataclasses.replace(plan, definition=node, definition_document=saved.definition), saved.version


async def forecast_campaign(
    engine: AsyncEngine, shop_id: str, shop: ShopPlaybook, plan: CampaignPlan, now: datetime | None = None
) -> dict[str, Any]:
    """What the plan may yield if run now, from the shop's own history (docs/campaigns.md, "The forecast").

    Reads only: the audience is counted as of ``now``, per lifecycle stage, with who is reachable
    now; the history is the shop's past decisions of the plan's incentive kinds. Raises
    ``InvalidCampaignError`` for a ``segment_id`` that creating the campaign would refuse.
    """
    at = now or datetime.now(UTC)
    async with engine.connect() as connection:
        plan, _ = await _resolved(connection, shop_id, shop, plan)
        assert plan.definition is not None
        audience = await segment_query.prepare(connection, plan.definition, shop_id, shop, at)
        stages = await campaign_forecast.audience_by_stage(connection, audience, shop.contact, at)
        history = await campaign_forecast.history_by_stage(
            connection, shop_id, list(plan_kinds(plan)), plan.attribution_window, at
        )
        converted = sum(cell.converted for cell in history.cells)
        if converted:
            per_conversion = round_money(history.revenue / converted)
        else:
            average = await campaign_forecast.average_paid_order(connection, shop_id, at)
            per_conversion = round_money(average) if average is not None else Decimal(0)
    result = forecast(plan, stages, history.cells, per_conversion, shop.points.value_per_point)
    return forecast_document(result, per_conversion)


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
