"""Entry point: ``python -m services.engagement``. The service's own parts on the worker runtime.

Its own: decoding, the batch transaction and dead letters (``batch_handler``), the
background scheduler, and the parked-event and quarantine gauges. Signals, the relay of
``member.actions``, the consume loop's commits and rewinds, retries, watchers and the
health server are the worker runtime's (``shared.worker_runtime``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import uvloop
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement import engagement_metrics as metrics
from services.engagement.batch_handler import EngagementBatchHandler
from services.engagement.dead_letters import DeadLetterPublisher
from services.engagement.processor import BatchProcessor
from shared.db.engine import create_engine
from shared.db.schema import pending_events
from shared.kafka_io import create_consumer
from shared.observability import configure_logging
from shared.playbook_file import read_layers
from shared.playbook_refresh import PlaybookRefresher
from shared.process_heap import settle_heap
from shared.settings import Settings
from shared.store import quarantine
from shared.store.member_cache import MemberCache
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler
from shared.worker_runtime.runtime import Loop, RelayRoute, WorkerRuntime
from shared.worker_runtime.watchers import every


def _observe_published(occurred: Sequence[datetime]) -> None:
    now = datetime.now(UTC)
    for at in occurred:
        metrics.EVENT_TO_ACTION_SECONDS.observe(max(0.0, (now - at).total_seconds()))


def _member_cache(settings: Settings) -> MemberCache | None:
    return MemberCache(settings.engagement_member_cache_size) if settings.engagement_member_cache_size > 0 else None


def _backlogs(engine: AsyncEngine) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        """Parked events and quarantined members, for their gauges."""
        async with engine.connect() as connection:
            parked = await connection.scalar(select(func.count()).select_from(pending_events))
            metrics.PARKED_BACKLOG.set(parked or 0)
            metrics.QUARANTINED_MEMBERS.set(await quarantine.count_quarantined(connection))

    return check


def _scheduler_run(scheduler: Scheduler) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        """One run as of the wall clock; a failed run is reported by the runtime and retried at the next interval."""
        started = time.monotonic()
        try:
            report = await scheduler.run(datetime.now(UTC), wait_for_locked_s=0)
        except Exception:
            metrics.SCHEDULER_RUNS.labels("error").inc()
            raise
        finally:
            metrics.SCHEDULER_RUN_SECONDS.observe(time.monotonic() - started)
        metrics.SCHEDULER_RUNS.labels("ok").inc()
        metrics.SCHEDULER_MEMBERS.inc(report.members)
        metrics.SCHEDULER_FAILED_MEMBERS.inc(report.failed_members)
        metrics.SCHEDULER_LATE_SKIPPED.inc(report.late_skipped)
        for rule, count in report.by_rule.items():
            metrics.ACTIONS.labels(rule).inc(count)
        for outcome, count in report.decisions.items():
            metrics.INCENTIVE_DECISIONS.labels(outcome).inc(count)
        metrics.COUPONS_EXPIRED.inc(report.coupons_expired)
        metrics.CAMPAIGN_WAVES.labels("started").inc(report.waves_started)
        metrics.CAMPAIGN_WAVES.labels("done").inc(report.waves_run)
        metrics.CAMPAIGN_WAVES.labels("cancelled").inc(report.waves_cancelled)
        metrics.CAMPAIGN_WAVE_MEMBERS.inc(report.wave_members)

    return run


async def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level)
    layers = read_layers(settings.playbook_path)
    playbook = layers.playbook()  # one object for every decision; the refresher installs stored versions in it
    topics = settings.topics
    engine = create_engine(settings)
    refresher = PlaybookRefresher(
        engine, playbook, layers, service="engagement", interval_s=settings.playbook_refresh_seconds
    )
    runtime = WorkerRuntime(
        settings,
        "engagement",
        engine=engine,
        consumer=create_consumer(settings, *topics.inputs, group_id=settings.engagement_group_id, name="engagement"),
        outputs=[topics.dlq, topics.actions],
        relay=RelayRoute("actions", topics.actions, on_published=_observe_published),
        port=settings.engagement_metrics_port,
        stalled=metrics.STALLED_PARTITIONS,
        backlog=metrics.OUTBOX_BACKLOG,
        playbook=refresher,
    )
    dead_letters = DeadLetterPublisher(
        engine,
        runtime.producer("engagement"),  # dead letters only: the relay has a producer of its own
        topics.dlq,
        max_bytes=settings.dlq_max_record_bytes,
        timeout_s=settings.dlq_send_timeout_s,
    )
    processor = BatchProcessor(
        SqlUnitOfWork.factory(engine, _member_cache(settings)),
        playbook,
        settings.max_record_bytes,
        settings.engagement_lanes,
    )
    refresher.on_change(processor.playbook_changed)
    handler = EngagementBatchHandler(
        processor,
        dead_letters,
        on_committed=runtime.relay.wake,
        stop=runtime.stop,
        retry=runtime.retry,
    )
    consume = runtime.batch_loop(
        handle=handler.handle,
        settle=handler.settle,
        max_records=settings.engagement_batch_max_records,
        timeout_ms=settings.engagement_batch_timeout_ms,
    )
    runtime.watchers.add("backlogs", _backlogs(engine))
    timers: dict[str, Loop] = {}
    if settings.scheduler_interval_s > 0:
        scheduler = _scheduler_run(
            Scheduler(
                SqlUnitOfWork.factory(engine),
                playbook,
                settings.scheduler_batch_size,
                settings.campaign_batch_size,
                settings.campaign_lanes,
            )
        )

        async def schedule(stop: asyncio.Event) -> None:
            await every("engagement.scheduler", settings.scheduler_interval_s, scheduler, stop)

        timers["scheduler"] = schedule
    return await runtime.run(consume, timers=timers, about={"group": settings.engagement_group_id})


if __name__ == "__main__":
    settle_heap()
    raise SystemExit(uvloop.run(main()))
