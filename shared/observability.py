"""Logging, handled failures, and the small HTTP side-door (health, readiness, metrics) every worker exposes."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any, TextIO

import structlog
import uvicorn
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from sqlalchemy.exc import DBAPIError

from shared.db.error_triage import describe, is_transient

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


HANDLED_ERRORS = Counter(
    "handled_errors_total",
    "Exceptions handled without being raised further (logged as <operation>_failed), by operation and type",
    ["operation", "error"],
)


def error_type(error: BaseException) -> str:
    """The name of the error's type; for a database error, of the driver's error behind it."""
    if isinstance(error, DBAPIError):
        return type(getattr(error.orig, "__cause__", None) or error.orig).__name__
    return type(error).__name__


def is_outage(error: BaseException) -> bool:
    """What an outage looks like: transient database trouble (``is_transient``), timeouts, lost
    connections, and the Kafka errors the client itself calls retriable. Anything else may be a bug."""
    if is_transient(error) or isinstance(error, (KafkaConnectionError, KafkaTimeoutError)):
        return True
    return isinstance(error, KafkaError) and bool(error.retriable)


def report_failure(
    operation: str, error: BaseException, *, level: str = "error", stack: bool | None = None, **fields: Any
) -> None:
    """The one way to handle an exception without raising it: a log line and a metric.

    Logs ``<operation>_failed`` (a dotted name, e.g. ``notifier.offset_commit_failed``) with
    the error's type and SQLSTATE but never its message, which may quote a member's data,
    and counts it in ``handled_errors_total{operation, error}``. Unless ``stack`` says otherwise,
    an error that does not look like an outage is logged with its stack frames too (still
    without its message): it may be a bug.
    """
    HANDLED_ERRORS.labels(operation, error_type(error)).inc()
    if stack if stack is not None else not is_outage(error):
        fields["exc_info"] = error
    log = structlog.get_logger(__name__)  # bound when called, after configure_logging
    getattr(log, level)(f"{operation}_failed", error=describe(error), **fields)


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
