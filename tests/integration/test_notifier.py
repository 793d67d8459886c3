"""The notifier against the real Kafka and PostgreSQL: policy, idempotency, outcomes, channels."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier import delivery_store
from services.notifier import notifier_metrics as metrics
from services.notifier.channels import ConfigurationError, build_channels
from services.notifier.outcomes import notification_id
from services.notifier.worker import NotifierWorker
from shared.contract.actions import Action
from shared.db.engine import create_engine
from shared.db.schema import deliveries, members, notifications
from shared.kafka_io import create_consumer, create_producer, member_key
from shared.outbox import OutboxRelay
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.builders import action_message, insert_rows, member_row
from tests.support import (
    committed_offsets,
    end_offsets,
    eventually,
    read_to_end,
    wait_until_committed,
    wait_until_outbox_empty,
)

pytestmark = pytest.mark.integration

SHOP = "shop-1"
NOON_SHANGHAI = datetime(2024, 5, 1, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai
WAIT_S = 30.0


# --- helpers -------------------------------------------------------------------------------------------


async def produce(settings: Settings, *values: dict[str, Any] | bytes) -> None:
    producer = create_producer(settings, name="test-actions")
    await producer.start()
    try:
        for value in values:
            if isinstance(value, bytes):
                await producer.send_and_wait(settings.topics.actions, key=b"garbage", value=value)
            else:
                key = member_key(value["shop_id"], value["member_id"])
                await producer.send_and_wait(settings.topics.actions, key=key, value=json.dumps(value).encode())
    finally:
        await producer.stop()


async def outcome_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(select(notifications).order_by(notifications.c.seq))
        return [dict(row._mapping) for row in result]


async def delivery_rows(engine: AsyncEngine) -> dict[tuple[str, str], dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(select(deliveries))
        return {(row.action_id, row.channel): dict(row._mapping) for row in result}


async def settled(engine: AsyncEngine, settings: Settings, count: int) -> list[dict[str, Any]]:
    """The outcomes once the notifier is done with everything on the actions topic: exactly ``count``.

    Done means its consumer group has committed past every action produced so far (each one
    was claimed, decided and stored) and no delivery is still under way: none ``sending``,
    none ``deferred`` and already due (the quiet hours of these tests ended long ago).
    """
    await wait_until_committed(settings.notifier_group_id, await end_offsets([settings.topics.actions]))

    async def nothing_under_way() -> bool:
        async with engine.connect() as connection:
            unfinished = await connection.scalar(
                select(func.count())
                .select_from(deliveries)
                .where(
                    or_(
                        deliveries.c.status.in_(["pending", "sending"]),
                        and_(deliveries.c.status == "deferred", deliveries.c.due_at <= func.now()),
                    )
                )
            )
        return unfinished == 0

    await eventually(nothing_under_way, timeout_s=WAIT_S, interval_s=0.1)
    rows = await outcome_rows(engine)
    assert len(rows) == count, statuses(rows)
    return rows


def statuses(rows: list[dict[str, Any]]) -> dict[str, list[tuple[str, str | None]]]:
    """action_id -> [(status, reason), ...] in recording order."""
    result: dict[str, list[tuple[str, str | None]]] = {}
    for row in rows:
        result.setdefault(row["action_id"], []).append((row["status"], row["reason"]))
    return result


async def published_outcomes(engine: AsyncEngine, settings: Settings) -> list[dict[str, Any]]:
    """Every outcome on the notifications topic, once the relay has published every stored one."""
    await wait_until_outbox_empty(engine)
    return await read_to_end(settings.topics.notifications)


@asynccontextmanager
async def running_notifier(settings: Settings) -> AsyncIterator[NotifierWorker]:
    """The notifier's loops and relay in this event loop, wired as __main__ wires them."""
    engine = create_engine(settings)
    producer = create_producer(settings, name="notifier")
    consumer = create_consumer(settings, settings.topics.actions, group_id=settings.notifier_group_id, name="notifier")
    channels = build_channels(settings)
    relay = OutboxRelay(engine, producer, "notifications", settings.topics.notifications)
    worker = NotifierWorker(
        settings, load_playbook(settings.playbook_path), engine, consumer, channels, on_outcomes=relay.wake
    )
    await producer.start()
    await consumer.start()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(worker.run(stop)),
        asyncio.create_task(worker.run_deferred(stop)),
        asyncio.create_task(relay.run(stop)),
    ]
    try:
        yield worker
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        for channel in channels.values():
            await channel.aclose()
        await engine.dispose()
        errors = [result for result in results if isinstance(result, BaseException)]
        assert not errors, errors


@pytest.fixture
def notifier_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={"notifier_log_path": tmp_path / "notifier.jsonl", "notifier_deferred_poll_ms": 100}
    )


@dataclass
class Record:
    """Just what the worker reads of a Kafka record."""

    value: bytes
    topic: str = "t"
    partition: int = 0
    offset: int = 0


def log_lines(settings: Settings) -> list[dict[str, Any]]:
    assert settings.notifier_log_path is not None
    if not settings.notifier_log_path.exists():
        return []
    return [json.loads(line) for line in settings.notifier_log_path.read_text().splitlines()]


# --- log channel and policy ---------------------------------------------------------------------------


async def test_care_is_sent_on_the_log_channel_and_published(engine: AsyncEngine, notifier_settings: Settings) -> None:
    care = action_message(category="care", member="unknown-member", occurred_at=datetime(2024, 5, 1, 15, 0, tzinfo=UTC))
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, care)
        rows = await settled(engine, notifier_settings, 1)
        published = await published_outcomes(engine, notifier_settings)

    # Care goes out even at 23:00 local time, to a member without a consent record.
    assert statuses(rows) == {care["action_id"]: [("sent", None)]}
    row = rows[0]
    assert row["channel"] == "log"
    assert row["notification_id"] == notification_id(care["action_id"], "log", "sent")
    assert row["payload"]["status"] == "sent"
    assert set(row["payload"]) == {
        "notification_id",
        "action_id",
        "shop_id",
        "member_id",
        "channel",
        "status",
        "reason",
        "at",
    }
    assert published == [row["payload"]]
    delivery = (await delivery_rows(engine))[(care["action_id"], "log")]
    assert (delivery["status"], delivery["attempts"]) == ("sent", 1)

    lines = log_lines(notifier_settings)
    assert lines == [
        {
            "notification_id": row["notification_id"],
            "action_id": care["action_id"],
            "shop_id": SHOP,
            "member_id": "unknown-member",
            "rule": "payment_confirmation",
            "template": "payment_confirmation",
            "channel": "log",
        }
    ]
    assert "13800000000" not in notifier_settings.notifier_log_path.read_text()  # type: ignore[union-attr]


async def test_incentives_respect_consent_and_the_frequency_cap(
    engine: AsyncEngine, notifier_settings: Settings
) -> None:
    await insert_rows(engine, (members, member_row("no-consent", marketing_consent=False)))
    await insert_rows(engine, (members, member_row("capped", marketing_consent=True)))
    no_consent = action_message(category="incentive", member="no-consent")
    unknown = action_message(category="incentive", member="not-in-members")
    # Five incentives for one member at 12:00-15:00 local, then one 25.5 hours after the first:
    # the fourth is over the cap (3 per rolling 24 h of business time), the last one is not.
    capped = [
        action_message(category="incentive", member="capped", occurred_at=NOON_SHANGHAI + timedelta(hours=hours))
        for hours in (0, 1, 2, 3)
    ]
    later = action_message(category="incentive", member="capped", occurred_at=NOON_SHANGHAI + timedelta(hours=25.5))
    # Produced in reverse business order before the notifier starts, so they arrive as one
    # batch: it is sorted by business time before counting.
    await produce(notifier_settings, no_consent, unknown, *reversed(capped))
    async with running_notifier(notifier_settings):
        await settled(engine, notifier_settings, 6)
        await produce(notifier_settings, later)
        rows = await settled(engine, notifier_settings, 7)

    by_action = statuses(rows)
    assert by_action[no_consent["action_id"]] == [("suppressed", "no_consent")]
    assert by_action[unknown["action_id"]] == [("suppressed", "no_consent")]
    assert [by_action[action["action_id"]] for action in capped] == [
        [("sent", None)],
        [("sent", None)],
        [("sent", None)],
        [("suppressed", "frequency_cap")],
    ]
    assert by_action[later["action_id"]] == [("sent", None)]
    sent_lines = {line["action_id"] for line in log_lines(notifier_settings)}
    assert sent_lines == {action["action_id"] for action in [*capped[:3], later]}


async def test_incentive_in_quiet_hours_is_deferred_then_sent(engine: AsyncEngine, notifier_settings: Settings) -> None:
    await insert_rows(
        engine, (members, member_row("night-owl", marketing_consent=True))
    )  # no time zone: the shop's Asia/Shanghai
    night = action_message(
        category="incentive", member="night-owl", occurred_at=datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
    )
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, night)
        rows = await settled(engine, notifier_settings, 2)
        published = await published_outcomes(engine, notifier_settings)

    assert statuses(rows) == {night["action_id"]: [("deferred", "quiet_hours"), ("sent", None)]}
    assert [item["status"] for item in published] == ["deferred", "sent"]
    delivery = (await delivery_rows(engine))[(night["action_id"], "log")]
    assert delivery["status"] == "sent"
    assert delivery["due_at"] == datetime(2024, 5, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert len(log_lines(notifier_settings)) == 1


async def test_member_timezone_decides_quiet_hours(engine: AsyncEngine, notifier_settings: Settings) -> None:
    # 14:00 UTC is 22:00 in Shanghai (quiet) but 15:00 in London.
    await insert_rows(engine, (members, member_row("londoner", marketing_consent=True, timezone="Europe/London")))
    action = action_message(
        category="incentive", member="londoner", occurred_at=datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
    )
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, action)
        rows = await settled(engine, notifier_settings, 1)
    assert statuses(rows) == {action["action_id"]: [("sent", None)]}


async def test_the_same_action_twice_and_a_replay_deliver_once(
    engine: AsyncEngine, notifier_settings: Settings
) -> None:
    await insert_rows(engine, (members, member_row("twice", marketing_consent=True)))
    care = action_message(category="care", member="twice")
    night = action_message(category="incentive", member="twice", occurred_at=datetime(2024, 5, 1, 15, 0, tzinfo=UTC))
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, care, care, night)
        await settled(engine, notifier_settings, 3)
        await produce(notifier_settings, care, night)
        # Read and committed past the second copies: still the same three outcomes.
        await settled(engine, notifier_settings, 3)
    # A restart under a new consumer group re-reads the whole topic: nothing new happens.
    replay = notifier_settings.model_copy(update={"notifier_group_id": f"replay-{uuid.uuid4().hex[:8]}"})
    assert await committed_offsets(replay.notifier_group_id) == {}
    async with running_notifier(replay):
        rows = await settled(engine, replay, 3)

    assert statuses(rows) == {
        care["action_id"]: [("sent", None)],
        night["action_id"]: [("deferred", "quiet_hours"), ("sent", None)],
    }
    assert len(await delivery_rows(engine)) == 2
    assert sorted(line["action_id"] for line in log_lines(notifier_settings)) == sorted(
        [care["action_id"], night["action_id"]]
    )


async def test_invalid_records_are_skipped_and_counted(engine: AsyncEngine, notifier_settings: Settings) -> None:
    before = metrics.INVALID_ACTIONS._value.get()
    bad_category = action_message(category="care")
    bad_category["category"] = "spam"
    nul = action_message(category="care", member="nul\u0000member")  # PostgreSQL text cannot hold it
    care = action_message(category="care")
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, b"not json", b'{"action_id": "x"}', bad_category, nul, care)
        rows = await settled(engine, notifier_settings, 1)
    assert statuses(rows) == {care["action_id"]: [("sent", None)]}
    assert metrics.INVALID_ACTIONS._value.get() - before == 4


async def test_an_action_at_a_time_outside_the_business_window_is_skipped_and_the_next_sent(
    engine: AsyncEngine, notifier_settings: Settings
) -> None:
    before = metrics.INVALID_ACTIONS._value.get()
    year_one = action_message(category="incentive", member="edge")
    year_one["occurred_at"] = "0001-01-01T00:00:00+08:00"  # its UTC equivalent overflows a datetime
    far_future = action_message(category="incentive", member="edge")
    far_future["occurred_at"] = "9999-12-31T23:00:00-05:00"
    care = action_message(category="care", member="edge")
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, year_one, far_future, care)
        rows = await settled(engine, notifier_settings, 1)
    assert statuses(rows) == {care["action_id"]: [("sent", None)]}
    assert metrics.INVALID_ACTIONS._value.get() - before == 2


async def test_an_action_the_database_cannot_store_is_skipped_alone_and_the_batch_goes_on(
    engine: AsyncEngine, notifier_settings: Settings
) -> None:
    """An action id too long for a btree index entry fails the whole batch's insert: the batch is
    split until that action stands alone, which is skipped and counted; the others are delivered."""
    before = metrics.FAILED_ACTIONS._value.get()
    first = action_message(category="care")
    oversized = action_message(category="care", action_id=base64.b64encode(os.urandom(30_000)).decode())
    last = action_message(category="care")
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, first, oversized, last)
        rows = await settled(engine, notifier_settings, 2)
    assert statuses(rows) == {first["action_id"]: [("sent", None)], last["action_id"]: [("sent", None)]}
    assert metrics.FAILED_ACTIONS._value.get() - before == 1


async def test_a_batch_that_fails_to_store_is_read_again(
    engine: AsyncEngine, notifier_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = delivery_store.insert_deliveries
    calls = 0

    async def flaky(connection: AsyncConnection, rows: Sequence[tuple[Action, str]]) -> set[tuple[str, str]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database went away")
        return await real(connection, rows)

    monkeypatch.setattr(delivery_store, "insert_deliveries", flaky)
    care = action_message(category="care")
    await produce(notifier_settings, care)  # the fresh group's very first batch: no committed offset yet
    async with running_notifier(notifier_settings):
        rows = await settled(engine, notifier_settings, 1)
    assert calls >= 2
    assert statuses(rows) == {care["action_id"]: [("sent", None)]}


async def test_a_delivery_whose_recording_meets_an_outage_is_recorded_once_the_database_is_back(
    engine: AsyncEngine, notifier_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = delivery_store.record_results
    calls = 0

    async def flaky(
        connection: AsyncConnection, results: Sequence[delivery_store.DeliveryResult]
    ) -> set[tuple[str, str]]:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise OSError("database went away")
        return await real(connection, results)

    monkeypatch.setattr(delivery_store, "record_results", flaky)
    care = action_message(category="care")
    async with running_notifier(notifier_settings):
        await produce(notifier_settings, care)
        rows = await settled(engine, notifier_settings, 1)
    assert calls == 3
    assert statuses(rows) == {care["action_id"]: [("sent", None)]}
    assert [line["action_id"] for line in log_lines(notifier_settings)] == [care["action_id"]]


async def test_deliveries_left_sending_by_a_dead_process_fail_as_interrupted(
    engine: AsyncEngine, notifier_settings: Settings
) -> None:
    stuck = action_message(category="care", member="stuck")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                """
                INSERT INTO deliveries (action_id, channel, shop_id, member_id, rule, category, status, occurred_at,
                                        action, updated_at)
                VALUES (:id, 'log', :shop, 'stuck', 'payment_confirmation', 'care', 'sending', now(),
                        CAST(:action AS jsonb), now() - interval '1 day')
                """
            ),
            {"id": stuck["action_id"], "shop": SHOP, "action": json.dumps(stuck)},
        )
    async with running_notifier(notifier_settings):
        rows = await settled(engine, notifier_settings, 1)
        await produce(notifier_settings, stuck)  # the same action arriving again is not delivered
        await settled(engine, notifier_settings, 1)
    assert statuses(await outcome_rows(engine)) == {stuck["action_id"]: [("failed", "interrupted")]}
    assert rows[0]["payload"]["reason"] == "interrupted"
    assert log_lines(notifier_settings) == []


async def test_consent_withdrawn_while_deferred_suppresses(engine: AsyncEngine, notifier_settings: Settings) -> None:
    await insert_rows(engine, (members, member_row("changes-mind", marketing_consent=True)))
    night = action_message(
        category="incentive", member="changes-mind", occurred_at=datetime(2024, 5, 1, 15, 0, tzinfo=UTC)
    )
    worker_engine = create_engine(notifier_settings)
    channels = build_channels(notifier_settings)
    worker = NotifierWorker(notifier_settings, load_playbook(None), worker_engine, None, channels)
    try:
        assert await worker.handle([Record(json.dumps(night).encode())]) == []
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE members SET marketing_consent = false WHERE member_id = 'changes-mind'")
            )
        assert await worker.deliver_due() == 1
    finally:
        for channel in channels.values():
            await channel.aclose()
        await worker_engine.dispose()
    assert statuses(await outcome_rows(engine)) == {
        night["action_id"]: [("deferred", "quiet_hours"), ("suppressed", "no_consent")]
    }
    assert log_lines(notifier_settings) == []


# --- webhook channel ----------------------------------------------------------------------------------


SECRET = "s3cret-for-tests"


@dataclass
class Hook:
    """A tiny webhook receiver: scripted status codes per path, every request kept."""

    script: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [request for request in self.requests if request[0] == path]


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                state.requests.append((self.path, dict(self.headers.items()), body))
                codes = state.script.get(self.path, [200])
                code = codes.pop(0) if len(codes) > 1 else codes[0]
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def webhook_settings(settings: Settings, url: str, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "notifier_channels": ["log", "webhook"],
            "webhook_url": url,
            "webhook_secret": SecretStr(SECRET),
            "webhook_max_attempts": 3,
            "webhook_backoff_initial_s": 0.05,
            "webhook_backoff_max_s": 0.2,
            "webhook_timeout_s": 2.0,
            **extra,
        }
    )


async def test_webhook_is_signed_with_hmac_sha256(engine: AsyncEngine, notifier_settings: Settings, hook: Hook) -> None:
    settings = webhook_settings(notifier_settings, hook.url("/ok"))
    care = action_message(category="care")
    async with running_notifier(settings):
        await produce(settings, care)
        rows = await settled(engine, settings, 2)

    assert {(row["channel"], row["status"]) for row in rows} == {("log", "sent"), ("webhook", "sent")}
    [(_, headers, body)] = hook.hits("/ok")
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature-256"], expected)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Action-Id"] == care["action_id"]
    assert headers["X-Notification-Id"] == notification_id(care["action_id"], "webhook", "sent")
    assert json.loads(body)["action_id"] == care["action_id"]
    delivery = (await delivery_rows(engine))[(care["action_id"], "webhook")]
    assert delivery["attempts"] == 1


async def test_webhook_retries_503_then_sends(engine: AsyncEngine, notifier_settings: Settings, hook: Hook) -> None:
    hook.script["/flaky"] = [503, 503, 200]
    settings = webhook_settings(notifier_settings, hook.url("/flaky"), notifier_channels=["webhook"])
    care = action_message(category="care")
    async with running_notifier(settings):
        await produce(settings, care)
        rows = await settled(engine, settings, 1)

    assert statuses(rows) == {care["action_id"]: [("sent", None)]}
    assert len(hook.hits("/flaky")) == 3
    assert len({request[1]["X-Signature-256"] for request in hook.hits("/flaky")}) == 1  # the same signed body
    assert (await delivery_rows(engine))[(care["action_id"], "webhook")]["attempts"] == 3


async def test_webhook_failing_with_500_ends_failed(
    engine: AsyncEngine, notifier_settings: Settings, hook: Hook
) -> None:
    hook.script["/down"] = [500]
    settings = webhook_settings(notifier_settings, hook.url("/down"), notifier_channels=["webhook"])
    care = action_message(category="care")
    async with running_notifier(settings):
        await produce(settings, care)
        rows = await settled(engine, settings, 1)

    assert statuses(rows) == {care["action_id"]: [("failed", "http_500")]}
    assert len(hook.hits("/down")) == 3  # webhook_max_attempts
    assert (await delivery_rows(engine))[(care["action_id"], "webhook")]["attempts"] == 3


async def test_webhook_client_errors_fail_at_once_and_refused_connections_are_retried(
    engine: AsyncEngine, notifier_settings: Settings, hook: Hook
) -> None:
    hook.script["/gone"] = [410]
    gone = webhook_settings(notifier_settings, hook.url("/gone"), notifier_channels=["webhook"])
    first = action_message(category="care")
    async with running_notifier(gone):
        await produce(gone, first)
        await settled(engine, gone, 1)
    assert len(hook.hits("/gone")) == 1

    closed = webhook_settings(notifier_settings, "http://127.0.0.1:9/nothing-listens", notifier_channels=["webhook"])
    second = action_message(category="care")
    async with running_notifier(closed):
        await produce(closed, second)
        rows = await settled(engine, closed, 2)
    assert statuses(rows) == {
        first["action_id"]: [("failed", "http_410")],
        second["action_id"]: [("failed", "connection_error")],
    }


def test_webhook_channel_refuses_to_start_half_configured(settings: Settings) -> None:
    with pytest.raises(ConfigurationError):
        build_channels(settings.model_copy(update={"notifier_channels": ["webhook"], "webhook_url": "http://x"}))
    with pytest.raises(ConfigurationError):
        build_channels(settings.model_copy(update={"notifier_channels": ["webhook"], "webhook_secret": SecretStr("k")}))
    with pytest.raises(ConfigurationError):
        build_channels(settings.model_copy(update={"notifier_channels": ["sms"]}))
    assert list(build_channels(settings)) == ["log"]
