"""The API's one middleware: request metrics, the body limit and the catch-all for crashes, in one layer.

Each of the three wraps ``send`` (and the limit ``receive``); done in one pure ASGI layer
(no buffering), a request pays for one wrapper instead of three. From the outside in:

1. metrics: every request is counted by method, route template and status and timed,
   the 413 and 500 answers below included (labels carry route templates, never ids);
2. the body limit (``API_MAX_BODY_BYTES``): a declared ``Content-Length`` over it is
   answered 413 before the app runs; a body without one (chunked) is counted as it is
   received, and the chunk that crosses the limit raises ``PayloadTooLargeError`` to
   whoever reads it, which answers 413, so no more than the limit reaches the app;
3. the catch-all: an exception the app lets escape is answered with the generic 500 and
   swallowed. Starlette's own handler re-raises after responding, and the server then
   logs the full exception text, SQL parameters and all; stopping it here keeps member
   ids out of the logs (``errors.log_unexpected`` logs the type and stack frames only).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette import status
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import (
    PayloadTooLargeError,
    error_response,
    internal_error,
    log_unexpected,
    payload_too_large_message,
)

# Module-level because prometheus_client's default registry refuses duplicate names;
# labelled by route template, never by raw path, so member ids stay out of metrics.
HTTP_REQUESTS = Counter("api_http_requests_total", "HTTP requests served by the API.", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "api_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses malformed framing before the app sees it
    return None


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    return template if isinstance(template, str) else "unmatched"


class EdgeMiddleware:
    """Metrics, the body limit and the catch-all (see the module's docstring), as one pure ASGI layer."""

    def __init__(self, app: ASGIApp, body_limit: int) -> None:
        self.app = app
        self.body_limit = body_limit
        # The labelled children, looked up once per label set rather than through ``labels()`` per request.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def _observe(self, method: str, route: str, status_code: int, seconds: float) -> None:
        key = (method, route, status_code)
        series = self._series.get(key)
        if series is None:
            series = HTTP_REQUESTS.labels(method, route, str(status_code)), HTTP_LATENCY.labels(method, route)
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def _too_large(self) -> ASGIApp:
        return error_response(
            status.HTTP_413_CONTENT_TOO_LARGE, "payload_too_large", payload_too_large_message(self.body_limit)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        responding = False
        received = 0
        limit = self.body_limit

        async def watching_send(message: Message) -> None:
            nonlocal status_code, responding
            if message["type"] == "http.response.start":
                status_code = message["status"]
                responding = True
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(limit)
            return message

        try:
            declared = _declared_length(scope)
            if declared is not None and declared > limit:
                await self._too_large()(scope, receive, watching_send)
                return
            try:
                await self.app(scope, counting_receive, watching_send)
            except PayloadTooLargeError:
                # Read outside a route (whose handlers answer it); answer here unless a response began.
                if responding:
                    raise
                await self._too_large()(scope, receive, watching_send)
        except Exception as exc:
            log_unexpected(scope, exc)
            if not responding:
                await internal_error()(scope, receive, watching_send)
        finally:
            self._observe(scope["method"], _route_label(scope), status_code, time.perf_counter() - started)
