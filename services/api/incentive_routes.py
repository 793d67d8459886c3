"""The incentives report: per rule, what its incentives cost, what they brought back and their uplift.

The figures are counted inside PostgreSQL by ``shared.audience.incentive_report`` in one
statement; the ratios and the uplift's interval are worked out from them with the pure
``shared.domain.incentive_report``, which also shapes the document (the command line's
report is the same one). Definitions: docs/incentives.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.api.auth import Authenticated
from services.api.dependencies import Engine, Playbooks
from services.api.errors import unprocessable
from services.api.responses import json_response
from services.api.routes import TOO_LARGE, UNAUTHORIZED, ShopId, check_time, invalid_doc
from services.api.routing import ApiRoute
from services.api.schemas import IncentiveReport, QueryTime
from shared.audience.incentive_report import shop_report

From = Annotated[
    QueryTime | None,
    Query(
        alias="from",
        description="Start of the decisions' business time, included (RFC 3339 with an offset); unbounded if omitted.",
        examples=["2026-03-01T00:00:00+08:00"],
    ),
]
To = Annotated[
    QueryTime | None,
    Query(
        description="End of the decisions' business time, excluded (RFC 3339 with an offset); now if omitted.",
        examples=["2026-04-01T00:00:00+08:00"],
    ),
]

incentives_router = APIRouter(
    prefix="/v1/shops/{shop_id}/incentives",
    tags=["incentives"],
    dependencies=[Authenticated],
    responses={**UNAUTHORIZED, **TOO_LARGE},
    route_class=ApiRoute,
)


@incentives_router.get(
    "/report",
    response_model=IncentiveReport,
    summary="Incentives report",
    responses=invalid_doc("time_out_of_range"),
)
async def incentives_report(
    shop_id: ShopId, engine: Engine, playbook: Playbooks, start: From = None, to: To = None
) -> Response:
    """Per rule with a decision in [``from``, ``to``): issued, redeemed, shared, attributed orders, cost, ROI,
    treated and holdout conversions and the uplift with its 95 % interval. Rules by name; campaigns aside."""
    shop = playbook.for_shop(shop_id)
    for field, at in (("query.from", start), ("query.to", to)):
        if at is not None:
            check_time(field, at, [shop.business_time])
    end = to if to is not None else datetime.now(UTC)
    if start is not None and start >= end:
        raise unprocessable("invalid_request", "query.from must be before query.to (or before now when to is omitted)")
    async with engine.connect() as connection:
        document = await shop_report(connection, shop_id, shop, start=start, end=end)
    return json_response(document)
