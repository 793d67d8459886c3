"""``python -m services.scheduler [--as-of RFC3339]``: runs what is due and prints the report as JSON.

For operators and backfills; the engagement service runs the same scheduler in the
background on the wall clock, and ``POST /v1/admin/scheduler/run`` does it over HTTP.
The run decides under each shop's newest stored playbook version, read once at its start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from shared.db.engine import create_engine
from shared.domain.business_time import BusinessTimeBounds
from shared.domain.playbook import Playbook
from shared.observability import configure_logging
from shared.playbook_file import PlaybookLayers, read_layers
from shared.playbook_refresh import PlaybookRefresher
from shared.process_heap import settle_heap
from shared.settings import Settings
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from error
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.scheduler", description=__doc__)
    parser.add_argument(
        "--as-of",
        type=_instant,
        default=None,
        help="business time to run up to (default: now); inside the playbook's business_time window",
    )
    parser.add_argument("--batch-size", type=_positive, default=None, help="members per transaction")
    return parser


def _outside(playbook: Playbook, as_of: datetime) -> BusinessTimeBounds | None:
    """The first business-time window (the default's, then each shop's) that ``as_of`` lies outside."""
    now = datetime.now(UTC)
    return next((window for window in playbook.business_time_windows() if not window.contains(as_of, now)), None)


async def _run(
    settings: Settings, layers: PlaybookLayers, as_of: datetime, batch_size: int | None
) -> dict[str, object] | BusinessTimeBounds:
    """The run's report; or, when a stored version's window leaves ``as_of`` out, that window (nothing ran)."""
    engine = create_engine(settings)
    try:
        playbook = layers.playbook()
        refresher = PlaybookRefresher(
            engine, playbook, layers, service="scheduler", interval_s=settings.playbook_refresh_seconds
        )
        await refresher.refresh()  # a one-off run: the stored versions as they are now
        window = _outside(playbook, as_of)
        if window is not None:
            return window
        scheduler = Scheduler(
            SqlUnitOfWork.factory(engine),
            playbook,
            batch_size or settings.scheduler_batch_size,
            settings.campaign_batch_size,
            settings.campaign_lanes,
        )
        return (await scheduler.run(as_of)).as_dict()
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, sys.stderr)  # stdout carries the report alone
    layers = read_layers(settings.playbook_path)
    as_of = arguments.as_of or datetime.now(UTC)
    window = _outside(layers.playbook(), as_of)  # the file's windows, before anything connects
    if window is not None:
        # A run that far away would move every member there; argparse prints usage and exits with 2.
        parser.error(f"argument --as-of: {window.describe()}")
    settle_heap()  # a pass over many due members allocates enough for full collections to cost
    report = asyncio.run(_run(settings, layers, as_of, arguments.batch_size))
    if isinstance(report, BusinessTimeBounds):
        parser.error(f"argument --as-of: {report.describe()}")
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if report["failed_members"] else 0


if __name__ == "__main__":
    sys.exit(main())
