"""The request body limit (``API_MAX_BODY_BYTES``), enforced while the body streams in.

A declared ``Content-Length`` over the limit is answered 413 before the app runs. A body
without one (chunked) is counted as it is received: the chunk that crosses the limit
raises ``PayloadTooLargeError`` to whoever reads it, which answers 413, so no more than
the limit is ever handed to the app.
"""

from __future__ import annotations

from starlette import status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import PayloadTooLargeError, error_response, payload_too_large_message


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses malformed framing before the app sees it
    return None


class BodyLimitMiddleware:
    """Answers 413 ``payload_too_large`` to a body larger than ``limit`` bytes (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.limit:
            response = error_response(
                status.HTTP_413_CONTENT_TOO_LARGE, "payload_too_large", payload_too_large_message(self.limit)
            )
            await response(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLargeError(self.limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except PayloadTooLargeError:
            # Read outside a route (whose handlers answer it); answer here unless a response began.
            if started:
                raise
            response = error_response(
                status.HTTP_413_CONTENT_TOO_LARGE, "payload_too_large", payload_too_large_message(self.limit)
            )
            await response(scope, receive, send)
