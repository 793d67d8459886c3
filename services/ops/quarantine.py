"""``quarantine list`` and ``quarantine release``: members whose stored state could not be processed.

The list is the API's (``shared.audience.quarantine_reads``), read a page at a time to its
end; a release goes through the API's use case (``shared.usecases.quarantine_release``),
which puts the member back on the schedule. Events dead-lettered meanwhile are not
replayed by a release: the command says how to replay them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from services.ops import dependencies
from services.ops.output import counted, print_grids, print_json, say
from services.ops.running import CommandError, Stop, run
from services.ops.tables import quarantine_grid
from shared.audience.quarantine_reads import QuarantineKey, list_quarantined, quarantine_item
from shared.settings import Settings
from shared.usecases.quarantine_release import release_member

quarantine_app = typer.Typer(help="Quarantined members: list them, release one.", no_args_is_help=True)

Json = Annotated[bool, typer.Option("--json", help="Print JSON (the API's items) instead of a table.")]
PAGE = 500
# The dead letter of the event that got a member quarantined is written about when it was: a replay
# starting this much earlier has it too (replaying more is harmless: applied events are no-ops).
REPLAY_MARGIN = timedelta(minutes=10)


async def _list(settings: Settings, shop: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async with dependencies.database(settings) as engine, engine.connect() as connection:
        driver = await dependencies.driver(connection)
        after: QuarantineKey | None = None
        while True:
            page, after = await list_quarantined(driver, limit=PAGE, after=after, shop_id=shop)
            items += page
            if after is None:
                return items


@quarantine_app.command("list")
def list_command(
    shop: Annotated[str | None, typer.Option("--shop", help="Only this shop's members.")] = None,
    json_output: Json = False,
) -> None:
    """Quarantined members, oldest quarantine first: why, and how many events reached them since."""
    settings = dependencies.load_settings()

    async def work(stop: Stop) -> list[dict[str, Any]]:
        return await _list(settings, shop)

    items = run(work)
    if json_output:
        print_json({"items": items})
        return
    print_grids([quarantine_grid(items)])
    say(counted(len(items), "quarantined member") + (f" in shop {shop}." if shop else "."))


async def _release(settings: Settings, shop: str, member: str) -> dict[str, Any]:
    async with dependencies.database(settings) as engine:
        released = await release_member(dependencies.units(engine), (shop, member))
    if released is None:
        raise CommandError(f"member {member!r} of shop {shop!r} is not in quarantine")
    return released


@quarantine_app.command("release")
def release_command(
    shop: Annotated[str, typer.Argument(help="The shop's id.")],
    member: Annotated[str, typer.Argument(help="The member's id.")],
    json_output: Json = False,
) -> None:
    """Take a member out of quarantine, once its stored state is repaired, and make it due now.

    Its events dead-lettered meanwhile must be published again: 'engagement-ops replay' on the
    dead-letter topic, from a little before it was quarantined, with --key shop:member.
    """
    settings = dependencies.load_settings()

    async def work(stop: Stop) -> dict[str, Any]:
        return await _release(settings, shop, member)

    released = run(work)
    since = (released["quarantined_at"] - REPLAY_MARGIN).isoformat()
    item = quarantine_item(released)  # as the list shows it
    if json_output:
        print_json(item)
        return
    print_grids([quarantine_grid([item], "Released")])
    say(
        f"Released. To publish its dead-lettered events again: engagement-ops replay {settings.topics.dlq} "
        f"--since {since} --key {shop}:{member}"
    )
