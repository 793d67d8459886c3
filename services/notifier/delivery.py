"""Delivering ``sending`` rows through their channels and recording what happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier import delivery_store
from services.notifier import notifier_metrics as metrics
from services.notifier.channels import Channel, DeliveryError
from services.notifier.outcomes import make_outcome, notification_id
from shared.contract.actions import Action
from shared.observability import report_failure
from shared.worker_runtime.retry_policy import RETRY, RetryPolicy

log = structlog.get_logger(__name__)

RECORD_RETRY_S = 30.0  # well inside the time after which a ``sending`` row counts as interrupted


class Dispatcher:
    """Delivers concurrently (bounded) and records results in one transaction per call."""

    def __init__(
        self,
        engine: AsyncEngine,
        channels: dict[str, Channel],
        *,
        concurrency: int = 32,
        on_outcomes: Callable[[], None] | None = None,
        retry: RetryPolicy = RETRY,
    ) -> None:
        self._engine = engine
        self._channels = channels
        self._limit = asyncio.Semaphore(concurrency)
        self._on_outcomes = on_outcomes
        self._retry = retry

    async def deliver(self, items: Sequence[tuple[Action, str]]) -> None:
        """Delivers each (action, channel) once and stores sent/failed with the outcome rows.

        Storing is retried through an outage of up to ``RECORD_RETRY_S`` (it is idempotent:
        only rows still ``sending`` are updated). If it still fails the rows stay ``sending``
        and are later given up as ``interrupted``: never delivered a second time.
        """
        if not items:
            return
        results = await asyncio.gather(*(self._deliver_one(action, channel) for action, channel in items))
        await self._retry.call(
            "notifier.record_results", lambda: self._record(items, results), give_up_after_s=RECORD_RETRY_S
        )

    async def _record(
        self, items: Sequence[tuple[Action, str]], results: Sequence[delivery_store.DeliveryResult]
    ) -> None:
        at = datetime.now(UTC)
        by_key = {(action.action_id, channel): action for action, channel in items}
        async with self._engine.begin() as connection:
            updated = await delivery_store.record_results(connection, results)
            outcomes = [
                make_outcome(
                    action_id=result.action_id,
                    shop_id=by_key[(result.action_id, result.channel)].shop_id,
                    member_id=by_key[(result.action_id, result.channel)].member_id,
                    channel=result.channel,
                    status="sent" if result.status == "sent" else "failed",
                    reason=result.reason,
                    at=at,
                )
                for result in results
                if (result.action_id, result.channel) in updated
            ]
            written = await delivery_store.insert_outcomes(connection, outcomes)
        self.recorded(written)

    def recorded(self, written: Sequence[tuple[str, str]]) -> None:
        """Counts committed outcomes and wakes the relay."""
        for channel, status in written:
            metrics.NOTIFICATIONS.labels(channel=channel, status=status).inc()
        if written and self._on_outcomes is not None:
            self._on_outcomes()

    async def _deliver_one(self, action: Action, channel_name: str) -> delivery_store.DeliveryResult:
        channel = self._channels.get(channel_name)
        async with self._limit:
            started = time.perf_counter()
            try:
                if channel is None:
                    raise DeliveryError("channel_disabled", 0)
                attempts = await channel.deliver(action, notification_id(action.action_id, channel_name, "sent"))
                status, reason = "sent", None
            except DeliveryError as exc:
                status, reason, attempts = "failed", exc.reason, exc.attempts
            except Exception as error:  # recorded as failed/channel_error
                report_failure("notifier.channel", error, channel=channel_name, action_id=action.action_id)
                status, reason, attempts = "failed", "channel_error", 1
            metrics.DELIVERY_SECONDS.labels(channel=channel_name).observe(time.perf_counter() - started)
        if status == "failed":
            log.warning("notifier.delivery_failed", channel=channel_name, action_id=action.action_id, reason=reason)
        return delivery_store.DeliveryResult(action.action_id, channel_name, status, reason, attempts)
