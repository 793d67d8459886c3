"""The FastAPI application factory; nothing here connects to anything at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from services.api.auth import token_digests
from services.api.campaign_routes import campaigns_router
from services.api.console.pages import STATIC, console_pages, console_session
from services.api.database import open_pool
from services.api.dependencies import ApiState
from services.api.errors import install_error_handlers
from services.api.incentive_routes import incentives_router
from services.api.middleware import EdgeMiddleware
from services.api.playbook_routes import playbook_router
from services.api.readiness import KafkaProbe
from services.api.routes import admin_router, members_router, operations
from services.api.segment_routes import segments_router
from services.api.tag_routes import tags_router
from shared.db.engine import create_engine
from shared.domain.playbook import Playbook
from shared.observability import report_failure
from shared.playbook_file import PlaybookLayers, read_layers
from shared.playbook_refresh import PlaybookRefresher
from shared.settings import Settings

log = structlog.get_logger("services.api")


class ConfigurationError(RuntimeError):
    """The API cannot run with the configuration it was given."""


def create_app(settings: Settings, playbook: Playbook, layers: PlaybookLayers | None = None) -> FastAPI:
    """The API for ``settings``; raises ConfigurationError when no API token is configured.

    ``playbook`` is the one the app decides with, as loaded from the file whose ``layers``
    (read from ``PLAYBOOK_PATH`` when None) stored versions are composed over.
    """
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
        layers=layers if layers is not None else read_layers(settings.playbook_path),
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
        state.refresher = PlaybookRefresher(
            state.engine, playbook, state.layers, service="api", interval_s=settings.playbook_refresh_seconds
        )
        try:
            await state.refresher.refresh()
        except Exception as error:  # the file's playbook meanwhile; the refresher reads again every interval
            report_failure("api.playbook_load", error, level="warning")
        stop_refreshing = asyncio.Event()
        refreshing = asyncio.create_task(state.refresher.run(stop_refreshing), name="playbook")
        log.info("api.started")
        try:
            yield
        finally:
            stop_refreshing.set()
            await refreshing
            state.refresher = None
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
        summary="Member status, actions, notification outcomes and points; redemptions, scheduler runs, quarantine; "
        "saved segments; coupons, incentive decisions and the incentives report; shop playbooks.",
        lifespan=lifespan,
    )
    app.state.api = state
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware, body_limit=settings.api_max_body_bytes)
    # Included without dependencies of their own: the read routes' direct calls (services.api.direct)
    # run the dependencies each route declares, not any added here.
    app.include_router(operations)
    app.include_router(members_router)
    app.include_router(admin_router)
    app.include_router(segments_router)
    app.include_router(tags_router)
    app.include_router(incentives_router)
    app.include_router(playbook_router)
    app.include_router(campaigns_router)
    # The console's pages and files hold no data; its session route checks the token like any other.
    app.include_router(console_session)
    app.include_router(console_pages)
    app.mount("/console/static", STATIC, name="console-static")
    return app
