"""The FastAPI application factory; nothing here connects to anything at import time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.auth import token_digests
from services.api.database import open_pool
from services.api.dependencies import ApiState
from services.api.errors import install_error_handlers
from services.api.limits import BodyLimitMiddleware
from services.api.readiness import KafkaProbe
from services.api.routes import admin_router, members_router, operations
from shared.db.engine import create_engine
from shared.domain.playbook import Playbook
from shared.settings import Settings

log = structlog.get_logger("services.api")

# Module-level because prometheus_client's default registry refuses duplicate names;
# labelled by route template, never by raw path, so member ids stay out of metrics.
HTTP_REQUESTS = Counter("api_http_requests_total", "HTTP requests served by the API.", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "api_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class ConfigurationError(RuntimeError):
    """The API cannot run with the configuration it was given."""


class MetricsMiddleware:
    """Counts requests by route template and status and times them (pure ASGI, no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
            label = template if isinstance(template, str) else "unmatched"
            HTTP_REQUESTS.labels(scope["method"], label, str(status_code)).inc()
            HTTP_LATENCY.labels(scope["method"], label).observe(time.perf_counter() - started)


def create_app(settings: Settings, playbook: Playbook) -> FastAPI:
    """The API for ``settings``; raises ConfigurationError when no API token is configured."""
    tokens = [token.get_secret_value() for token in settings.api_tokens if token.get_secret_value()]
    if not tokens:
        raise ConfigurationError(
            "API_TOKENS is empty: set it to one or more comma-separated bearer tokens before starting the API"
        )
    if settings.environment != "development" and settings.weak_secrets():
        raise ConfigurationError(
            f"weak secrets outside development (APP_ENV={settings.environment}): " + ", ".join(settings.weak_secrets())
        )
    readers = [token.get_secret_value() for token in settings.api_read_tokens if token.get_secret_value()]
    state = ApiState(
        settings=settings,
        playbook=playbook,
        token_digests=token_digests(tokens),
        read_token_digests=token_digests(readers),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Open the connection pools and the Kafka client for the app's lifetime, and close them after."""
        state.engine = create_engine(settings)
        state.reads = await open_pool(settings)
        state.kafka = KafkaProbe(settings)
        if not await state.kafka.ready():
            log.warning("api.kafka_unreachable_at_startup")
        log.info("api.started")
        try:
            yield
        finally:
            await state.kafka.close()
            await state.reads.close()
            await state.engine.dispose()
            state.kafka = None
            state.reads = None
            state.engine = None
            log.info("api.stopped")

    app = FastAPI(
        title="Member engagement API",
        version="1",
        summary="Member status, actions, notification outcomes and points; redemptions, scheduler runs, quarantine.",
        lifespan=lifespan,
    )
    app.state.api = state
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware)  # outermost of ours: counts the 413s and 500s the others send
    app.include_router(operations)
    app.include_router(members_router)
    app.include_router(admin_router)
    return app
