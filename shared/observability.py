"""Logging and the small HTTP side-door (health, readiness, metrics) every worker exposes."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, TextIO

import structlog
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
"""Named checks, e.g. ``{"database": True, "kafka": True, "topics": True, "partitions": False}``."""


def exception_without_message(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Renders ``exc_info`` as the exception's type and stack frames, leaving out its message.

    Messages of database drivers, validators and HTTP clients quote the values involved
    (SQL parameters, payload fields, URLs), which may be a member's personal data; the
    type and the frames tell an operator what failed and where.
    """
    exc_info = event.pop("exc_info", None)
    if exc_info:
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(error, BaseException):
            event["error_type"] = type(error).__name__
            event["stack"] = "".join(traceback.format_tb(error.__traceback__))
    return event


class _FormatterWithoutExceptionMessages(logging.Formatter):
    """The standard library's log lines (Kafka client, server) with the same rule for exceptions."""

    def formatException(self, ei: Any) -> str:  # noqa: N802 (the logging API's name)
        error = ei[1]
        return f"{type(error).__name__}\n" + "".join(traceback.format_tb(ei[2]))


def configure_logging(level: str = "INFO", stream: TextIO = sys.stdout) -> None:
    """JSON lines (on stdout for services) with dotted event names; never member contact data."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_FormatterWithoutExceptionMessages("%(message)s"))
    logging.basicConfig(handlers=[handler], level=level.upper(), force=True)
    for noisy in ("aiokafka", "kafka", "sqlalchemy.engine", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            exception_without_message,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )


def metrics_response() -> Response:
    return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)


def health_app(name: str, ready: ReadinessCheck) -> FastAPI:
    """/healthz, /readyz and /metrics for a worker that has no API of its own."""
    app = FastAPI(title=f"{name} health", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = await ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        return metrics_response()

    return app


class _EmbeddedServer(uvicorn.Server):
    """Leaves signal handling to the worker that embeds it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def health_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server to run beside the worker's own tasks in the same event loop."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    return _EmbeddedServer(config)
