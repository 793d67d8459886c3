"""``python -m services.scheduler [--as-of RFC3339]``: runs what is due and prints the report as JSON.

For operators and backfills; the engagement service runs the same scheduler in the
background on the wall clock, and ``POST /v1/admin/scheduler/run`` does it over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from shared.db.engine import create_engine
from shared.observability import configure_logging
from shared.playbook import load_playbook
from shared.scheduler import Scheduler
from shared.settings import Settings


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from error
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset")
    return value


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.scheduler", description=__doc__)
    parser.add_argument("--as-of", type=_instant, default=None, help="business time to run up to (default: now)")
    parser.add_argument("--batch-size", type=int, default=None, help="members per transaction")
    return parser.parse_args(argv)


async def _run(as_of: datetime, batch_size: int | None) -> dict[str, object]:
    settings = Settings()
    configure_logging(settings.log_level, sys.stderr)  # stdout carries the report alone
    engine = create_engine(settings)
    try:
        scheduler = Scheduler(
            engine, load_playbook(settings.playbook_path), batch_size or settings.scheduler_batch_size
        )
        return (await scheduler.run(as_of)).as_dict()
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    report = asyncio.run(_run(arguments.as_of or datetime.now(UTC), arguments.batch_size))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if report["failed_members"] else 0


if __name__ == "__main__":
    sys.exit(main())
