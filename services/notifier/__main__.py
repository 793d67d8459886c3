"""``python -m services.notifier``: wiring of the consume loop, deferred loop, relay and health server."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from aiokafka import AIOKafkaConsumer

from services.notifier import metrics
from services.notifier.channels import ConfigurationError, build_channels
from services.notifier.worker import NotifierWorker
from shared.db.engine import create_engine, database_ready
from shared.db.errors import describe
from shared.kafka_io import TopicGuard, create_consumer, create_producer, kafka_ready
from shared.observability import configure_logging, health_app, health_server
from shared.outbox import OutboxRelay
from shared.playbook_file import load_playbook
from shared.settings import Settings

log = structlog.get_logger(__name__)

BACKLOG_INTERVAL_S = 5.0


async def _watch(relay: OutboxRelay, worker: NotifierWorker, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
    """Keeps the outbox backlog and stalled-partition gauges (and readiness) current."""
    while not stop.is_set():
        try:
            metrics.STALLED_PARTITIONS.set(len(await worker.progress.check(consumer)))
            metrics.OUTBOX_BACKLOG.set(await relay.backlog())
        except Exception as error:
            log.warning("notifier.watch_failed", error=describe(error))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=BACKLOG_INTERVAL_S)


async def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    channels = build_channels(settings)  # refuses to start on a half-configured channel
    playbook = load_playbook(settings.playbook_path)
    topics = settings.topics
    engine = create_engine(settings)
    producer = create_producer(settings, name="notifier")
    consumer = create_consumer(settings, topics.actions, group_id=settings.notifier_group_id, name="notifier")
    relay = OutboxRelay(
        engine,
        producer,
        "notifications",
        topics.notifications,
        batch_size=settings.relay_batch_size,
        idle_interval_s=settings.relay_idle_interval_ms / 1000,
    )
    outputs = TopicGuard(settings, [topics.notifications], name="notifier")
    worker = NotifierWorker(settings, playbook, engine, consumer, channels, on_outcomes=relay.wake, topics=outputs)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def ready() -> dict[str, bool]:
        return {
            "running": worker.ready and not stop.is_set(),
            "database": await database_ready(engine),
            "kafka": await kafka_ready(producer.client),
            "topics": not outputs.missing,
            "partitions": not worker.progress.stalled,
        }

    server = health_server(health_app("notifier", ready), settings.metrics_host, settings.notifier_metrics_port)
    server_task = asyncio.create_task(server.serve())
    await producer.start()
    await consumer.start()
    log.info("notifier.started", channels=list(channels), topic=topics.actions)
    try:
        tasks = [
            asyncio.create_task(worker.run(stop)),
            asyncio.create_task(worker.run_deferred(stop)),
            asyncio.create_task(relay.run(stop)),
            asyncio.create_task(_watch(relay, worker, consumer, stop)),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            failure = task.exception()
            if failure is not None:
                log.error("notifier.task_crashed", error=describe(failure))
                stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await relay.publish_pending()  # outcomes of the last batch leave before the producer stops
    finally:
        stop.set()
        await consumer.stop()
        await producer.stop()
        for channel in channels.values():
            await channel.aclose()
        server.should_exit = True
        await server_task
        await engine.dispose()
        log.info("notifier.stopped")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except ConfigurationError as exc:
        log.error("notifier.configuration_error", error=str(exc))
        raise SystemExit(2) from None
