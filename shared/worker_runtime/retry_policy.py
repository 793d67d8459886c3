"""The one retry policy for transient failures, built on tenacity.

Every retry of the workers goes through it, with the same backoff (from 0.2 s, doubling,
with jitter, at most 10 s between attempts), the same log line (``<operation>_retry``,
with the error's type, never its message) and the same metric
(``retries_total{operation, error}``). Its pauses end when the worker is asked to stop,
so a worker stops promptly even in the middle of an outage.

* ``call`` retries what is worth retrying, by default ``is_transient`` (connection
  trouble, lost races: the input is not at fault) and raises anything else at once. It
  raises the last error when the worker stops or after ``give_up_after_s``.
* ``keep_trying`` is for loops that must outlive any failure (the consume loop, the
  relay): it retries every exception until the call succeeds and returns None once the
  worker stops, after reporting the last failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_delay, stop_never
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from shared.db.error_triage import describe, is_transient
from shared.observability import error_type, is_outage, report_failure
from shared.worker_runtime.stopping import pause

T = TypeVar("T")

RETRIES = Counter(
    "retries_total", "Failed attempts retried after a backoff, by operation and error type", ["operation", "error"]
)


class _StopEvent(stop_base):
    """Stops retrying once the worker's stop event is set."""

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._event.is_set()


def _any_exception(error: BaseException) -> bool:
    return True


def _failure(state: RetryCallState) -> BaseException:
    error = state.outcome.exception() if state.outcome is not None else None
    if error is None:  # tenacity calls these hooks after a failed attempt only
        raise AssertionError("no failed attempt to report")
    return error


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_s: float = 0.2
    max_s: float = 10.0

    async def call(
        self,
        operation: str,
        fn: Callable[[], Awaitable[T]],
        *,
        stop: asyncio.Event | None = None,
        retry_on: Callable[[BaseException], bool] = is_transient,
        give_up_after_s: float | None = None,
    ) -> T:
        """``await fn()``, retried while it fails with what ``retry_on`` accepts."""
        condition: stop_base = stop_never if stop is None else _StopEvent(stop)
        if give_up_after_s is not None:
            condition = condition | stop_after_delay(give_up_after_s)
        async for attempt in self._retrying(operation, stop, retry_on, condition, None):
            with attempt:
                return await fn()
        raise AssertionError("unreachable: giving up raises the last error")

    async def keep_trying(self, operation: str, fn: Callable[[], Awaitable[T]], *, stop: asyncio.Event) -> T | None:
        """``await fn()``, retried after any exception; None when ``stop`` was set meanwhile."""

        def stopped(state: RetryCallState) -> None:
            report_failure(operation, _failure(state), level="warning", attempts=state.attempt_number, stopping=True)

        async for attempt in self._retrying(operation, stop, _any_exception, _StopEvent(stop), stopped):
            with attempt:
                return await fn()
        return None

    def _retrying(
        self,
        operation: str,
        stop: asyncio.Event | None,
        retry_on: Callable[[BaseException], bool],
        condition: stop_base,
        on_give_up: Callable[[RetryCallState], None] | None,
    ) -> AsyncRetrying:
        def sleep(seconds: float) -> Awaitable[None]:
            return asyncio.sleep(seconds) if stop is None else pause(stop, seconds)

        def before_sleep(state: RetryCallState) -> None:
            error = _failure(state)
            RETRIES.labels(operation, error_type(error)).inc()
            fields: dict[str, Any] = {"attempt": state.attempt_number, "retry_in_s": round(state.upcoming_sleep, 2)}
            log = structlog.get_logger(__name__)  # bound when called, after configure_logging
            if is_outage(error):
                log.warning(f"{operation}_retry", error=describe(error), **fields)
            else:
                log.error(f"{operation}_retry", error=describe(error), exc_info=error, **fields)

        return AsyncRetrying(
            # Only exceptions: a cancelled task (CancelledError) or an exit is never retried.
            retry=retry_if_exception(lambda error: isinstance(error, Exception) and retry_on(error)),
            wait=wait_exponential_jitter(multiplier=self.initial_s, max=self.max_s, jitter=self.initial_s),
            stop=condition,
            sleep=sleep,
            before_sleep=before_sleep,
            retry_error_callback=on_give_up,
            reraise=True,
        )


RETRY = RetryPolicy()
"""The policy every worker uses."""
