"""Campaign routes: creating a campaign, forecasting a plan, reading one or a page of them, and cancelling one.

The body is validated by the domain (``shared.domain.campaigns.parse_plan``), which names the
bad field, so every refusal of the plan is 422 ``invalid_campaign`` with its path; wave times
must then lie in the shop's business-time window (``time_out_of_range``). Writes go through
``shared.usecases.campaigns``. The waves themselves are run by the scheduler (docs/campaigns.md).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from starlette import status

from services.api import repository
from services.api.auth import Authenticated, CallerIdentity, FullAccess
from services.api.dependencies import Engine, Playbooks
from services.api.errors import ApiError, unprocessable
from services.api.responses import json_response
from services.api.routes import (
    FORBIDDEN,
    TOO_LARGE,
    UNAUTHORIZED,
    Cursor,
    Limit,
    Responses,
    ShopId,
    check_time,
    decode_cursor,
    error_doc,
    invalid_doc,
)
from services.api.routing import ApiRoute
from services.api.schemas import Campaign, CampaignForecast, CampaignPage, CampaignReport
from shared.domain.campaign_report import CSV_COLUMNS, report_rows
from shared.domain.campaigns import PLANNING_HORIZON, CampaignPlan, InvalidCampaignError, parse_plan
from shared.domain.playbook import ShopPlaybook
from shared.domain.segments import Vocabulary
from shared.usecases.campaigns import (
    CampaignKey,
    CampaignNotCancellableError,
    CampaignNotFoundError,
    CampaignRecord,
    campaign_report,
    cancel_campaign,
    create_campaign,
    forecast_campaign,
    list_campaigns,
    read_campaign,
)

CAMPAIGN_EXAMPLE = {
    "name": "Win back quiet VIPs",
    "segment_id": "seg_5f0c6e2a9b1d4c3e8f7a6b5c",
    "strategies": [
        {
            "code": "ten_off",
            "weight": 1,
            "template": "winback_coupon",
            "incentive": {"kind": "coupon", "value": "10.00", "min_spend": "50.00", "valid_for": "P30D"},
        },
        {"code": "points", "weight": 1, "template": "winback_points", "incentive": {"kind": "points", "points": 200}},
    ],
    "holdout_percent": 10,
    "waves": [
        {"at": "2026-03-02T09:00:00+01:00", "audience": "all"},
        {"at": "2026-03-09T09:00:00+01:00", "audience": "not_converted"},
    ],
    "attribution_window": "P14D",
    "budget": "500.00",
}

CampaignBody = Annotated[
    dict[str, Any],
    Body(
        description="The plan (docs/campaigns.md, The campaign resource): name, exactly one of segment_id and "
        "definition, strategies, holdout_percent (0 to 50), waves in time order, attribution_window, budget.",
        examples=[CAMPAIGN_EXAMPLE],
    ),
]
CampaignId = Annotated[
    str,
    Path(
        description="The campaign's id, as its creation answered it.",
        min_length=1,
        max_length=200,
        examples=["6f1c2a4e-8b9d-4c3e-a1f0-5b6c7d8e9f00"],
    ),
]
StatusFilter = Annotated[
    Literal["scheduled", "running", "completed", "cancelled"] | None,
    Query(alias="status", description="Only the campaigns with this status; every campaign when omitted."),
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_NOT_FOUND: Responses = {status.HTTP_404_NOT_FOUND: error_doc("`campaign_not_found`: the shop has no such campaign.")}

campaigns_router = APIRouter(
    prefix="/v1/shops/{shop_id}/campaigns",
    tags=["campaigns"],
    dependencies=[Authenticated],
    responses={**UNAUTHORIZED, **TOO_LARGE, **invalid_doc()},
    route_class=ApiRoute,
)


def _not_found(shop_id: str, campaign_id: str) -> ApiError:
    return ApiError(status.HTTP_404_NOT_FOUND, "campaign_not_found", f"No campaign {campaign_id!r} in shop {shop_id!r}")


def _invalid(error: InvalidCampaignError) -> ApiError:
    return unprocessable("invalid_campaign", f"body.{error.path}: {error.problem}")


def _oversized_integer(document: Any) -> str | None:
    """Where the first integer outside the signed 64-bit range is, or None.

    JSON bodies may carry integers of any length, but a plan is stored and answered as JSON
    that holds 64-bit integers only (``variables`` are free-form, so they are checked here).
    """
    pending: list[tuple[Any, str]] = [(document, "")]
    while pending:
        value, location = pending.pop()
        if isinstance(value, Decimal) or (
            isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX
        ):
            return location
        if isinstance(value, dict):
            pending.extend((item, f"{location}.{key}" if location else str(key)) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((item, f"{location}[{index}]") for index, item in enumerate(value))
    return None


def _campaign(record: CampaignRecord) -> dict[str, Any]:
    """The campaign document: its stored plan, its waves as they stand, and who created it when."""
    plan = record.plan
    return {
        "campaign_id": record.campaign_id,
        "name": record.name,
        "status": record.status,
        "segment_id": record.segment_id,
        "segment_version": record.segment_version,
        "definition": plan["definition"],
        "strategies": plan["strategies"],
        "holdout_percent": plan["holdout_percent"],
        "attribution_window": plan["attribution_window"],
        "budget": plan.get("budget"),
        "waves": [
            {
                "wave": wave.wave,
                "at": wave.at,
                "audience": wave.audience,
                "status": wave.status,
                "members": wave.members,
                "ran_at": wave.ran_at,
            }
            for wave in record.waves
        ],
        "created_at": record.created_at,
        "created_by": record.created_by,
        "cancelled_at": record.cancelled_at,
    }


def _plan(body: dict[str, Any], shop: ShopPlaybook) -> CampaignPlan:
    """The validated plan, or the 422 creating it would answer (``invalid_campaign``, ``time_out_of_range``)."""
    try:
        plan = parse_plan(body, Vocabulary.of(shop))
    except InvalidCampaignError as error:
        raise _invalid(error) from None
    oversized = _oversized_integer(body)
    if oversized is not None:
        raise _invalid(InvalidCampaignError(oversized, "must be a number from -2^63 to 2^63 - 1"))
    # Waves are planned ahead (a Double 11 in September): up to a year past the wall clock, or the
    # shop's own window when that reaches further.
    window = shop.business_time
    planning = dataclasses.replace(window, max_ahead=max(window.max_ahead, PLANNING_HORIZON))
    for index, wave in enumerate(plan.waves):
        check_time(f"body.waves[{index}].at", wave.at, [planning])
    return plan


@campaigns_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Campaign,
    summary="Create a campaign",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **invalid_doc("invalid_json", "invalid_campaign", "time_out_of_range")},
)
async def create(
    shop_id: ShopId, body: CampaignBody, engine: Engine, playbook: Playbooks, created_by: CallerIdentity
) -> Response:
    """Stores the plan as a new `scheduled` campaign with a `pending` wave per `waves` item.

    A `segment_id` must name a saved segment of the shop that is not archived: its current
    definition and version are copied in, so later versions of the segment do not change the
    campaign. A wave time already past is accepted: the wave runs at the scheduler's next run.
    """
    shop = playbook.for_shop(shop_id)
    plan = _plan(body, shop)
    try:
        created = await create_campaign(engine, shop_id, shop, plan, created_by)
    except InvalidCampaignError as error:
        raise _invalid(error) from None
    return json_response(_campaign(created), status_code=status.HTTP_201_CREATED)


@campaigns_router.post(
    "/forecast",
    response_model=CampaignForecast,
    summary="Forecast a campaign",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **invalid_doc("invalid_json", "invalid_campaign", "time_out_of_range")},
)
async def forecast(shop_id: ShopId, body: CampaignBody, engine: Engine, playbook: Playbooks) -> Response:
    """What the plan may yield if run now, from this shop's own history of similar incentives.

    The body is a campaign's, validated as creating it would be. Nothing is written, but like
    every POST it needs a full token (a segment's preview is the same). The audience is counted
    now, per lifecycle stage, with who is reachable now (consent, frequency cap); conversions,
    revenue and cost are estimated from the shop's past decisions of the same incentive kinds.
    The model: docs/campaigns.md, "The forecast".
    """
    shop = playbook.for_shop(shop_id)
    plan = _plan(body, shop)
    try:
        document = await forecast_campaign(engine, shop_id, shop, plan)
    except InvalidCampaignError as error:
        raise _invalid(error) from None
    return json_response(document)


@campaigns_router.get(
    "", response_model=CampaignPage, summary="The shop's campaigns", responses=invalid_doc("invalid_cursor")
)
async def campaigns(
    shop_id: ShopId,
    engine: Engine,
    playbook: Playbooks,
    cursor: Cursor = None,
    limit: Limit = 50,
    campaign_status: StatusFilter = None,
) -> Response:
    """The shop's campaigns, newest first; a cursor goes on from its campaign whatever the filter."""
    after = decode_cursor(repository.decode_campaign_cursor, cursor, playbook.for_shop(shop_id).business_time)
    found = await list_campaigns(engine, shop_id, status=campaign_status, after=after, limit=limit + 1)
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]
        next_cursor = repository.encode_campaign_cursor(CampaignKey(last.created_at, last.campaign_id))
    return json_response({"items": [_campaign(record) for record in page], "next_cursor": next_cursor})


@campaigns_router.get("/{campaign_id}", response_model=Campaign, summary="A campaign", responses=_NOT_FOUND)
async def campaign(shop_id: ShopId, campaign_id: CampaignId, engine: Engine) -> Response:
    """The campaign's plan, status and waves: each wave's status, members reached and when it ran."""
    try:
        found = await read_campaign(engine, shop_id, campaign_id)
    except CampaignNotFoundError:
        raise _not_found(shop_id, campaign_id) from None
    return json_response(_campaign(found))


ReportFormat = Annotated[Literal["json", "csv"], Query(description="json, or csv (a header row) for spreadsheets.")]


@campaigns_router.get(
    "/{campaign_id}/report",
    response_model=CampaignReport,
    summary="A campaign's report",
    responses={
        **_NOT_FOUND,
        status.HTTP_200_OK: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
async def report(
    shop_id: ShopId,
    campaign_id: CampaignId,
    engine: Engine,
    format: Annotated[
        Literal["json", "csv"], Query(description="json, or csv (a header row) for spreadsheets.")
    ] = "json",
) -> Response:
    """Per strategy, for the holdout and per wave: reach, delivery, conversions, revenue, cost, ROI and uplift.

    How each figure is computed is in docs/campaigns.md, "The report".
    """
    try:
        document = await campaign_report(engine, shop_id, campaign_id)
    except CampaignNotFoundError:
        raise _not_found(shop_id, campaign_id) from None
    if format == "json":
        return json_response(document)
    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(["" if value is None else value for value in row] for row in report_rows(document))
    filename = f"campaign-{campaign_id}-report.csv"
    return Response(
        lines.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@campaigns_router.post(
    "/{campaign_id}/cancel",
    response_model=Campaign,
    summary="Cancel a campaign",
    dependencies=[FullAccess],
    responses={
        **FORBIDDEN,
        **_NOT_FOUND,
        status.HTTP_409_CONFLICT: error_doc(
            "`campaign_not_cancellable`: the campaign is completed, every wave has run."
        ),
    },
)
async def cancel(shop_id: ShopId, campaign_id: CampaignId, engine: Engine) -> Response:
    """Cancels the campaign and every wave not yet started; a wave running finishes, one done stays done.

    Cancelling a cancelled campaign again answers it as it is (200, the first `cancelled_at`).
    """
    try:
        cancelled = await cancel_campaign(engine, shop_id, campaign_id)
    except CampaignNotFoundError:
        raise _not_found(shop_id, campaign_id) from None
    except CampaignNotCancellableError:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "campaign_not_cancellable",
            f"Campaign {campaign_id!r} of shop {shop_id!r} is completed: every wave has run",
        ) from None
    return json_response(_campaign(cancelled))
