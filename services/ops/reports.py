"""``campaigns report`` and ``incentives report``: the API's reports, as tables or as its JSON.

Both documents come from the functions the API's routes call
(``shared.usecases.campaigns.campaign_report``, ``shared.audience.incentive_report.shop_report``),
so the numbers are the API's. How each figure is defined: docs/campaigns.md and
docs/incentives.md, "The report".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from services.ops import dependencies
from services.ops.arguments import parse_instant, report_period
from services.ops.output import print_grids, print_json
from services.ops.running import EXIT_USAGE, CommandError, Stop, run
from services.ops.tables import campaign_grids, incentive_grid
from shared.audience.incentive_report import shop_report
from shared.playbook_file import PlaybookLayers
from shared.settings import Settings
from shared.usecases.campaigns import CampaignNotFoundError, campaign_report

campaigns_app = typer.Typer(help="Campaigns: their reports.", no_args_is_help=True)
incentives_app = typer.Typer(help="Incentives: their report per rule.", no_args_is_help=True)

Shop = Annotated[str, typer.Argument(help="The shop's id.")]
Json = Annotated[bool, typer.Option("--json", help="Print the report's JSON document (the API's answer) instead.")]


async def _campaign(settings: Settings, shop: str, campaign_id: str) -> dict[str, Any]:
    async with dependencies.database(settings) as engine:
        try:
            return await campaign_report(engine, shop, campaign_id)
        except CampaignNotFoundError:
            raise CommandError(f"no campaign {campaign_id!r} in shop {shop!r}") from None


@campaigns_app.command("report")
def campaign_report_command(
    shop: Shop, campaign_id: Annotated[str, typer.Argument(help="The campaign's id.")], json_output: Json = False
) -> None:
    """Per strategy against the holdout: reach, delivery, conversions, revenue, cost, ROI, uplift and its
    95 % interval; then each wave."""
    settings = dependencies.load_settings()

    async def work(stop: Stop) -> dict[str, Any]:
        return await _campaign(settings, shop, campaign_id)

    document = run(work)
    if json_output:
        print_json(document)
    else:
        print_grids(campaign_grids(document, f"Campaign {campaign_id}"))


async def _incentives(
    settings: Settings, layers: PlaybookLayers, shop: str, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    async with dependencies.database(settings) as engine:
        shop_playbook = (await dependencies.playbook_in_force(engine, settings, layers)).for_shop(shop)
        for name, at in (("--from", start), ("--to", end)):
            if at is not None:
                dependencies.check_window(name, at, [shop_playbook.business_time])
        try:
            start, end = report_period(start, end, datetime.now(UTC))
        except typer.BadParameter as refused:
            raise CommandError(refused.message, EXIT_USAGE) from None
        async with engine.connect() as connection:
            return await shop_report(connection, shop, shop_playbook, start=start, end=end)


@incentives_app.command("report")
def incentive_report_command(
    shop: Shop,
    start: Annotated[
        datetime | None,
        typer.Option(
            "--from",
            parser=parse_instant,
            metavar="TIME",
            help="Decisions at or after this business time (RFC 3339 with an offset); unbounded if omitted.",
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(
            "--to",
            parser=parse_instant,
            metavar="TIME",
            help="Decisions before this business time (RFC 3339 with an offset); now if omitted.",
        ),
    ] = None,
    json_output: Json = False,
) -> None:
    """Per rule with a decision in the period: issued, redeemed, shared, attributed orders and revenue, cost,
    ROI, treated against holdout conversions, and the uplift with its 95 % interval."""
    if start is not None and end is not None:
        report_period(start, end, end)  # a period that ends before it starts is refused before connecting
    settings = dependencies.load_settings()
    layers = dependencies.load_layers(settings)

    async def work(stop: Stop) -> dict[str, Any]:
        return await _incentives(settings, layers, shop, start, end)

    document = run(work)
    if json_output:
        print_json(document)
    else:
        print_grids([incentive_grid(document)])
