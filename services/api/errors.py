"""One JSON error shape for every failure, so clients need a single error parser.

Every error body is ``{"error": {"code": ..., "message": ...}}``: our own errors, the
framework's (unknown route, wrong method), request validation, and crashes, which
answer a generic 500 and are logged without request data.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette import status
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import Scope

log = structlog.get_logger("services.api")

_CODES_BY_STATUS = {
    status.HTTP_400_BAD_REQUEST: "bad_request",
    status.HTTP_401_UNAUTHORIZED: "unauthorized",
    status.HTTP_403_FORBIDDEN: "forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_413_CONTENT_TOO_LARGE: "payload_too_large",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "invalid_request",
    status.HTTP_503_SERVICE_UNAVAILABLE: "unavailable",
}


class ApiError(Exception):
    """An expected failure with a stable machine-readable code for clients to branch on."""

    def __init__(self, status_code: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def unauthorized(message: str) -> ApiError:
    """401 with the challenge header RFC 6750 asks for."""
    return ApiError(status.HTTP_401_UNAUTHORIZED, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(status.HTTP_403_FORBIDDEN, "forbidden", message)


def unprocessable(code: str, message: str) -> ApiError:
    """422 with a code naming the problem (``invalid_text``, ``invalid_json``, ``time_out_of_range``, ...)."""
    return ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, code, message)


class PayloadTooLargeError(StarletteHTTPException):
    """The request body grew past ``API_MAX_BODY_BYTES`` while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, payload_too_large_message(limit))


def payload_too_large_message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes (API_MAX_BODY_BYTES)"


def error_response(status_code: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    # A message never carries request text that cannot be encoded (lone surrogates), however it was built.
    printable = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": {"code": code, "message": printable}}, status_code=status_code, headers=headers)


def _describe_validation(errors: Sequence[Any]) -> str:
    """``query.limit: Input should be ...``; locations and messages only, never the rejected input."""
    parts = []
    for error in errors:
        location = ".".join(str(item) for item in error.get("loc", ()))
        parts.append(f"{location}: {error.get('msg', 'invalid value')}" if location else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        # The API's routes parse bodies themselves (services.api.routing); this keeps any other route consistent.
        return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_json", "The request body is not JSON")
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_request", _describe_validation(errors))


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    # Exception messages can quote SQL parameters (member ids), so only the type and the
    # stack frames are logged, and the client learns nothing about internals.
    route = scope.get("route")
    template = getattr(route, "path", None) if isinstance(route, BaseRoute) else None
    log.error(
        "api.request_failed",
        route=template if isinstance(template, str) else "unmatched",
        method=scope.get("method"),
        error_type=type(exc).__name__,
        stack="".join(traceback.format_tb(exc.__traceback__)),
    )


def internal_error() -> JSONResponse:
    return error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Backstop for errors raised outside the catch-all of ``services.api.middleware`` (Starlette re-raises these)."""
    log_unexpected(request.scope, exc)
    return internal_error()


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error response the same JSON shape.

    Exceptions they let through are answered by the catch-all of ``services.api.middleware``.
    """
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
