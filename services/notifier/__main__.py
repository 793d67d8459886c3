"""``python -m services.notifier``: the notifier's own parts on the worker runtime.

Its own: planning a batch by the contact policy, delivering on its channels and recording
the outcomes (``worker``), and the loop that delivers deferred messages when they come
due. Signals, the relay of ``member.notifications``, the consume loop's commits and
rewinds, retries, watchers and the health server are the worker runtime's
(``shared.worker_runtime``).
"""

from __future__ import annotations

import asyncio

import structlog

from services.notifier import notifier_metrics as metrics
from services.notifier.channels import ConfigurationError, build_channels
from services.notifier.worker import NotifierWorker
from shared.db.engine import create_engine
from shared.kafka_io import create_consumer
from shared.observability import configure_logging
from shared.playbook_file import read_layers
from shared.playbook_refresh import PlaybookRefresher
from shared.settings import Settings
from shared.worker_runtime.runtime import RelayRoute, WorkerRuntime

log = structlog.get_logger(__name__)


async def main() -> int:
    settings = Settings()
    configure_logging(settings.log_level)
    channels = build_channels(settings)  # refuses to start on a half-configured channel
    layers = read_layers(settings.playbook_path)
    playbook = layers.playbook()  # one object for every decision; the refresher installs stored versions in it
    topics = settings.topics
    engine = create_engine(settings)
    runtime = WorkerRuntime(
        settings,
        "notifier",
        engine=engine,
        consumer=create_consumer(settings, topics.actions, group_id=settings.notifier_group_id, name="notifier"),
        outputs=[topics.notifications],
        relay=RelayRoute("notifications", topics.notifications),
        port=settings.notifier_metrics_port,
        stalled=metrics.STALLED_PARTITIONS,
        backlog=metrics.OUTBOX_BACKLOG,
        playbook=PlaybookRefresher(
            engine, playbook, layers, service="notifier", interval_s=settings.playbook_refresh_seconds
        ),
    )
    worker = NotifierWorker(
        settings,
        playbook,
        engine,
        runtime.consumer,
        channels,
        on_outcomes=runtime.relay.wake,
        progress=runtime.progress,
        topics=runtime.outputs,
        retry=runtime.retry,
    )
    for name, channel in channels.items():
        runtime.on_close(f"channel_{name}", channel.aclose)
    return await runtime.run(
        worker.loop,
        timers={"deferred": worker.run_deferred},
        about={"group": settings.notifier_group_id, "channels": list(channels)},
    )


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except ConfigurationError as exc:
        # The refusal names the settings at fault; it never holds their values.
        log.error("notifier.configuration_error", reason=str(exc))
        raise SystemExit(2) from None
