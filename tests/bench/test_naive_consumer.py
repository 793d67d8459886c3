"""The bench's naive consumer does the service's state changes: on the same events it leaves the same state."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.playbook_file import load_playbook
from tests.bench import naive_consumer
from tests.bench.harness import INPUTS, Stack, encode, free_port, produce
from tests.bench.results import ROOT
from tests.support import ServiceProcess, snapshot, wait_until_processed
from tests.support import produce as produce_events
from tests.workload import workload

pytestmark = pytest.mark.integration


async def test_naive_consumer_leaves_the_state_the_engagement_service_leaves(
    engine: AsyncEngine, topic_env: dict[str, str], service_env: dict[str, str], tmp_path: Path
) -> None:
    events = workload(30, seed=5)
    # The naive consumer first gets everything but the order events of a few members, whose
    # shipments and reviews must then wait for their orders (parked), then the rest (released).
    shipped = sorted({event["memberid"] for event in events if event["type"] == "shipment.shipped"})[:4]
    late = [event for event in events if event["memberid"] in shipped and event["type"].startswith("order.")]
    early = [event for event in events if event not in late]

    await produce_events(topic_env, events)
    service = ServiceProcess(
        "services.engagement",
        {**service_env, "ENGAGEMENT_METRICS_PORT": str(free_port()), "ENGAGEMENT_BATCH_TIMEOUT_MS": "50"},
        tmp_path / "engagement.log",
    ).start()
    try:
        await wait_until_processed(engine, len(events))
    finally:
        service.stop()

    stack = Stack(uuid.uuid4().hex[:8])
    try:
        topics = await stack.topics("naive")
        inputs = [topics[setting] for setting in INPUTS]
        url = await stack.database("naive", ROOT)
        group = f"naive-{stack.run_id}"
        await produce(encode(early), topics)
        first = await naive_consumer.run(inputs, group, url, load_playbook(), len(early))
        assert (first.events, first.duplicates, first.rejected) == (len(early), 0, 0)
        assert first.parked > 0
        await produce(encode(late), topics)
        second = await naive_consumer.run(inputs, group, url, load_playbook(), len(events))
        assert (second.events, second.duplicates, second.rejected) == (len(events), len(early), 0)

        naive_engine = create_async_engine(url)
        try:
            state = await snapshot(naive_engine)
            assert state["pending_events"] == []
            assert state == await snapshot(engine)
        finally:
            await naive_engine.dispose()
    finally:
        await stack.cleanup()
