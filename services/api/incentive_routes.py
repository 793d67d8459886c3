"""The incentives report: per rule, what its incentives cost, what they brought back and their uplift.

The figures are counted inside PostgreSQL by ``shared.audience.incentive_report`` in one
statement; the ratios and the uplift's interval are worked out from them here with the
pure ``shared.domain.incentive_report``. Definitions: docs/incentives.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from services.api.auth import Authenticated
from services.api.dependencies import Engine, Playbooks
from services.api.errors import unprocessable
from services.api.responses import json_response
from services.api.routes import TOO_LARGE, UNAUTHORIZED, ShopId, check_time, invalid_doc
from services.api.routing import ApiRoute
from services.api.schemas import IncentiveReport, QueryTime
from shared.audience.incentive_report import rule_figures
from shared.domain.incentive_report import RuleFigures
from shared.domain.money import money
from shared.domain.playbook import DEFAULT_ATTRIBUTION_WINDOW

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


def _item(figures: RuleFigures) -> dict[str, Any]:
    uplift = figures.uplift
    return {
        "rule": figures.rule,
        "issued": figures.issued,
        "issued_value": money(figures.issued_value),
        "redeemed": figures.redeemed,
        "redeemed_value": money(figures.redeemed_value),
        "redemption_rate": figures.redemption_rate,
        "coupons_shared": figures.coupons_shared,
        "attributed_orders": figures.attributed_orders,
        "attributed_revenue": money(figures.attributed_revenue),
        "cost": money(figures.cost),
        "roi": figures.roi,
        "treated": {"members": figures.treated.members, "converted": figures.treated.converted},
        "holdout": {"members": figures.holdout.members, "converted": figures.holdout.converted},
        "uplift": {"rate_diff": uplift.rate_diff, "ci95": None if uplift.ci95 is None else list(uplift.ci95)},
    }


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
    windows = {name: rule.attribution_window for name, rule in shop.rules.items()}
    async with engine.connect() as connection:
        figures = await rule_figures(
            connection, shop_id, start=start, end=end, windows=windows, default_window=DEFAULT_ATTRIBUTION_WINDOW
        )
    return json_response({"from": start, "to": end, "items": [_item(rule) for rule in figures]})
