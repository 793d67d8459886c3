"""``scheduler run``: everything due up to a business time, as the background scheduler runs it.

The run is the use case's (``shared.usecases.scheduler_run.Scheduler``): due members in
batches, then coupons, then campaign waves, each batch one transaction, under the playbook
in force (the file and each shop's newest stored version). Runs are idempotent, so a run
stopped by Ctrl-C, or failed, is finished by running the same command again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from services.ops import dependencies
from services.ops.arguments import parse_instant
from services.ops.output import counted, err_console, print_grids, print_json, say
from services.ops.progress import ProgressDisplay
from services.ops.running import EXIT_FAILURE, Stop, run
from services.ops.tables import scheduler_grids
from shared.playbook_file import PlaybookLayers
from shared.settings import Settings
from shared.usecases.scheduler_run import Scheduler, SchedulerReport

scheduler_app = typer.Typer(
    help="Run what time alone brings: reminders, stage changes, tier reviews, points expiry, coupons, campaign waves.",
    no_args_is_help=True,
)

Until = Annotated[
    datetime,
    typer.Option(
        "--until",
        parser=parse_instant,
        metavar="TIME",
        help="Business time to run up to: RFC 3339 with an offset (2026-03-01T09:00:00+08:00), or 'now'. "
        "It must lie in the business-time window of every shop's playbook.",
    ),
]
BatchSize = Annotated[
    int | None,
    typer.Option("--batch-size", min=1, help="Due members per transaction (default: SCHEDULER_BATCH_SIZE)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print the run's report as JSON (the API's answer) instead.")]


def _detail(report: SchedulerReport) -> str:
    members, waves, actions = (
        counted(report.members, "member"),
        counted(report.wave_members, "wave member"),
        counted(report.actions, "action"),
    )
    return f"{members} · {waves} · {actions}"


async def _run(
    settings: Settings, layers: PlaybookLayers, until: datetime, batch_size: int | None, stop: Stop
) -> SchedulerReport:
    async with dependencies.database(settings) as engine:
        playbook = await dependencies.playbook_in_force(engine, settings, layers)
        dependencies.check_window("--until", until, playbook.business_time_windows())  # stored versions too
        scheduler = Scheduler(
            dependencies.units(engine),
            playbook,
            batch_size or settings.scheduler_batch_size,
            settings.campaign_batch_size,
            settings.campaign_lanes,
        )
        stop.on_request(scheduler.stop)
        with ProgressDisplay(err_console(), "scheduler", None, "batch") as progress:
            return await scheduler.run(until, on_batch=lambda report: progress.update(report.batches, _detail(report)))


@scheduler_app.command("run")
def run_command(until: Until, batch_size: BatchSize = None, json_output: Json = False) -> None:
    """Run the scheduler up to a business time, in batches that each commit whole.

    Ctrl-C stops after the current batch; the same command run again finishes the rest
    (runs are idempotent: what was done is not done twice). Exits with 1 when a member
    failed (it is quarantined: see 'quarantine list').
    """
    settings = dependencies.load_settings()
    layers = dependencies.load_layers(settings)
    window = dependencies.outside(until, layers.playbook().business_time_windows())  # before anything connects
    if window is not None:
        raise typer.BadParameter(window.describe(), param_hint="'--until'")
    stop = Stop()
    report = run(lambda stop: _run(settings, layers, until, batch_size, stop), stop)
    document = report.as_dict()
    if json_output:
        print_json(document)
    else:
        print_grids(scheduler_grids(document))
    if stop.requested:
        say(
            f"Interrupted after {counted(report.batches, 'batch')}, each committed whole. To finish the rest, run "
            f"the same command again: engagement-ops scheduler run --until {until.isoformat()}"
        )
        raise typer.Exit(stop.exit_code)
    if report.failed_members:
        failed = counted(report.failed_members, "member")
        say(f"Failed and quarantined: {failed}; see 'engagement-ops quarantine list'.")
        raise typer.Exit(EXIT_FAILURE)
