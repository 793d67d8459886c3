"""The ``webhook`` channel: a signed HTTP POST of the action, retried with backoff.

The body is the Action JSON; ``X-Signature-256: sha256=<hex>`` is the HMAC-SHA256 of
those exact bytes with the shared secret, so the receiver can verify both origin and
integrity. Connection errors, timeouts, 5xx and 429 are retried; other 4xx are final.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.notifier.channels.base import DeliveryError
from shared.contract.actions import Action


class _RetryableError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: bytes, body: bytes) -> str:
    """The X-Signature-256 header value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookChannel:
    name = "webhook"

    def __init__(
        self,
        *,
        url: str,
        secret: bytes,
        timeout_s: float,
        max_attempts: int,
        backoff_initial_s: float,
        backoff_max_s: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._max_attempts = max(1, max_attempts)
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def deliver(self, action: Action, notification_id: str) -> int:
        body = action.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            "X-Signature-256": sign(self._secret, body),
            "X-Notification-Id": notification_id,
            "X-Action-Id": action.action_id,
        }
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential(multiplier=self._backoff_initial_s, max=self._backoff_max_s),
            retry=retry_if_exception_type(_RetryableError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await self._post(body, headers, attempts)
        except _RetryableError as exc:
            raise DeliveryError(exc.reason, attempts) from exc
        return attempts

    async def _post(self, body: bytes, headers: dict[str, str], attempts: int) -> None:
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise _RetryableError("timeout") from exc
        except httpx.TransportError as exc:
            raise _RetryableError("connection_error") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status == 429:
            raise _RetryableError(f"http_{status}")
        raise DeliveryError(f"http_{status}", attempts)

    async def aclose(self) -> None:
        await self._client.aclose()
