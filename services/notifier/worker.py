"""The notifier's loops: consume actions, deliver deferred ones when due, give up interrupted ones.

Per consumed batch, one transaction claims each (action, channel) in ``deliveries``
(the idempotency key), decides it by the contact policy and writes the suppressed and
deferred outcomes; Kafka offsets are committed after it. Only then are the ``sending``
rows delivered. A crash in between leaves them ``sending``: they are later marked
``failed``/``interrupted`` rather than delivered again (at most once).

No action can stall the loop: a record that is not a valid action (or whose time lies
outside the business-time window) is skipped, and a batch that fails for any reason but
an outage is split until the one action behind the failure stands alone and is skipped,
logged and counted; after an outage the worker runtime's consume loop reads the batch
again from its first records, with backoff (``shared.worker_runtime.batch_loop``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier import delivery_store, planner
from services.notifier import notifier_metrics as metrics
from services.notifier.channels import Channel
from services.notifier.delivery import Dispatcher
from services.notifier.outcomes import make_outcome
from shared.contract.actions import Action, NotificationOutcome, NotificationStatus
from shared.db.error_triage import describe, is_transient
from shared.domain.playbook import Playbook
from shared.kafka_io import TopicGuard
from shared.observability import report_failure
from shared.progress import PartitionProgress
from shared.settings import Settings
from shared.worker_runtime.batch_loop import BatchLoop
from shared.worker_runtime.retry_policy import RETRY, RetryPolicy
from shared.worker_runtime.watchers import every

log = structlog.get_logger(__name__)

BATCH_MAX_RECORDS = 500
BATCH_TIMEOUT_MS = 200
DUE_BATCH = 500


class NotifierWorker:
    def __init__(
        self,
        settings: Settings,
        playbook: Playbook,
        engine: AsyncEngine,
        consumer: AIOKafkaConsumer,
        channels: dict[str, Channel],
        *,
        on_outcomes: Callable[[], None] | None = None,
        progress: PartitionProgress | None = None,
        topics: TopicGuard | None = None,
        retry: RetryPolicy = RETRY,
    ) -> None:
        self._settings = settings
        self._playbook = playbook
        self._engine = engine
        self._consumer = consumer
        self._channels = channels
        self._dispatcher = Dispatcher(engine, channels, on_outcomes=on_outcomes, retry=retry)
        self.progress = progress or PartitionProgress(settings.stall_after_s)
        self.loop = BatchLoop(
            consumer,
            handle=self._handle_isolating,
            settle=self._deliver,
            service="notifier",
            max_records=BATCH_MAX_RECORDS,
            timeout_ms=BATCH_TIMEOUT_MS,
            progress=self.progress,
            topics=topics,
            retry=retry,
            prepare=self.recover_interrupted,
        )

    @property
    def ready(self) -> bool:
        """The consume loop runs: deliveries a dead process left ``sending`` were given up first."""
        return self.loop.running

    @property
    def stale_after_s(self) -> float:
        """How long a row may stay ``sending`` before its process is presumed dead.

        Longer than any delivery can take (every attempt timing out plus the longest
        backoffs), so a live process, e.g. the old one in a rolling deploy, is never
        robbed of a delivery it is still making.
        """
        s = self._settings
        return s.webhook_max_attempts * (s.webhook_timeout_s + s.webhook_backoff_max_s) + 60.0

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until ``stop`` is set; the batch in hand is finished first."""
        await self.loop.run(stop)

    async def _handle_isolating(self, records: Sequence[Any]) -> list[tuple[Action, str]]:
        """``handle``, splitting the batch around an action that fails for any reason but an outage."""
        try:
            return await self.handle(records)
        except Exception as error:
            if is_transient(error):
                raise
            if len(records) == 1:
                record = records[0]
                metrics.FAILED_ACTIONS.inc()
                log.error("notifier.action_skipped", **_where(record), error=describe(error))
                return []
            middle = len(records) // 2
            first = await self._handle_isolating(records[:middle])
            return first + await self._handle_isolating(records[middle:])

    async def handle(self, records: Sequence[Any]) -> list[tuple[Action, str]]:
        """Decides one batch in one transaction; returns the (action, channel) pairs to deliver now."""
        actions = planner.business_order(self._parse(records))
        channels = list(self._channels)
        at = datetime.now(UTC)
        async with self._engine.begin() as connection:
            new = await delivery_store.insert_deliveries(connection, [(a, c) for a in actions for c in channels])
            fresh = [a for a in actions if any((a.action_id, c) in new for c in channels)]
            incentives = [a for a in fresh if a.category == "incentive"]
            contacts = await delivery_store.load_contacts(connection, [(a.shop_id, a.member_id) for a in incentives])
            counts = await delivery_store.count_recent_incentives(
                connection, planner.window_queries(fresh, self._playbook), [a.action_id for a in fresh]
            )
            decisions = planner.plan(fresh, self._playbook, contacts, counts)
            changes: list[delivery_store.StatusChange] = []
            outcomes: list[NotificationOutcome] = []
            sending: list[tuple[Action, str]] = []
            for action, decision in zip(fresh, decisions, strict=True):
                for channel in channels:
                    if (action.action_id, channel) not in new:
                        continue
                    if decision.kind == "send":
                        changes.append(delivery_store.StatusChange(action.action_id, channel, delivery_store.SENDING))
                        sending.append((action, channel))
                        continue
                    status: NotificationStatus = "suppressed" if decision.kind == "suppress" else "deferred"
                    changes.append(
                        delivery_store.StatusChange(action.action_id, channel, status, decision.reason, decision.due_at)
                    )
                    outcomes.append(_outcome(action, channel, status, decision.reason, at))
            await delivery_store.change_statuses(connection, delivery_store.PENDING, changes)
            written = await delivery_store.insert_outcomes(connection, outcomes)
        self._dispatcher.recorded(written)
        return sending

    def _parse(self, records: Sequence[Any]) -> list[Action]:
        """Valid actions of the batch; anything else is logged, counted and skipped (never stalls)."""
        actions: list[Action] = []
        for record in records:
            metrics.ACTIONS_CONSUMED.inc()
            action, reason = self._action_of(record)
            if action is not None:
                actions.append(action)
                continue
            metrics.INVALID_ACTIONS.inc()
            log.warning("notifier.invalid_action", **_where(record), reason=reason)
        return actions

    def _action_of(self, record: Any) -> tuple[Action | None, str]:
        """The record's action, or why it is not one (never quoting what it holds)."""
        if record.value is None:
            return None, "empty"
        if len(record.value) > self._settings.max_record_bytes:
            return None, f"larger than {self._settings.max_record_bytes} bytes"
        try:
            action = Action.model_validate_json(record.value)
        except ValidationError as error:
            kinds = sorted({detail["type"] for detail in error.errors(include_input=False, include_url=False)})
            return None, f"not an action ({', '.join(kinds)})"
        if "\\u0000" in action.model_dump_json():
            return None, "NUL character, which PostgreSQL text cannot store"
        bounds = self._playbook.for_shop(action.shop_id).business_time
        if not bounds.contains(action.occurred_at, datetime.now(UTC)):
            return None, f"occurred_at {bounds.describe()}"
        return action, ""

    async def _deliver(self, items: Sequence[tuple[Action, str]]) -> None:
        """Delivers and records; when recording fails for good the rows stay ``sending`` and are
        later given up as ``interrupted`` (never delivered twice), so the failure is reported, not raised."""
        try:
            await self._dispatcher.deliver(items)
        except Exception as error:
            report_failure("notifier.record", error, deliveries=len(items))

    async def run_deferred(self, stop: asyncio.Event) -> None:
        """Every notifier_deferred_poll_ms, delivers deferred rows that came due; sweeps interrupted ones."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.stale_after_s / 2

        async def round_() -> None:
            nonlocal next_sweep
            while await self.deliver_due() >= DUE_BATCH and not stop.is_set():
                pass
            if loop.time() >= next_sweep:
                next_sweep = loop.time() + self.stale_after_s / 2
                await self.recover_interrupted()

        await every("notifier.deferred", self._settings.notifier_deferred_poll_ms / 1000, round_, stop)

    async def deliver_due(self) -> int:
        """Claims due deferred rows, re-checks consent, delivers; returns how many were claimed.

        Consent is checked again at delivery: a member who withdrew it while the
        message waited for the morning does not get it (``suppressed``/``no_consent``).
        """
        at = datetime.now(UTC)
        async with self._engine.begin() as connection:
            claimed = await delivery_store.claim_due(connection, DUE_BATCH)
            changes: list[delivery_store.StatusChange] = []
            outcomes: list[NotificationOutcome] = []
            sending: list[tuple[Action, str]] = []
            for item in claimed:
                if item.action.category == "incentive" and item.consent is not True:
                    changes.append(
                        delivery_store.StatusChange(item.action.action_id, item.channel, "suppressed", "no_consent")
                    )
                    outcomes.append(_outcome(item.action, item.channel, "suppressed", "no_consent", at))
                else:
                    changes.append(
                        delivery_store.StatusChange(item.action.action_id, item.channel, delivery_store.SENDING)
                    )
                    sending.append((item.action, item.channel))
            await delivery_store.change_statuses(connection, "deferred", changes)
            written = await delivery_store.insert_outcomes(connection, outcomes)
        self._dispatcher.recorded(written)
        await self._deliver(sending)
        return len(claimed)

    async def recover_interrupted(self) -> int:
        """Gives up deliveries left ``sending`` by a dead process (see ``stale_after_s``)."""
        at = datetime.now(UTC)
        async with self._engine.begin() as connection:
            rows = await delivery_store.fail_interrupted(connection, self.stale_after_s)
            written = await delivery_store.insert_outcomes(
                connection,
                [
                    make_outcome(
                        action_id=row.action_id,
                        shop_id=row.shop_id,
                        member_id=row.member_id,
                        channel=row.channel,
                        status="failed",
                        reason="interrupted",
                        at=at,
                    )
                    for row in rows
                ],
            )
        self._dispatcher.recorded(written)
        if rows:
            log.warning("notifier.interrupted_deliveries_failed", count=len(rows))
        return len(rows)


def _outcome(
    action: Action, channel: str, status: NotificationStatus, reason: str | None, at: datetime
) -> NotificationOutcome:
    return make_outcome(
        action_id=action.action_id,
        shop_id=action.shop_id,
        member_id=action.member_id,
        channel=channel,
        status=status,
        reason=reason,
        at=at,
    )


def _where(record: ConsumerRecord[bytes, bytes]) -> dict[str, object]:
    """Where a record is, for a log line: its topic, partition and offset."""
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}
