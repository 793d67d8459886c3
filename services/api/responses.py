"""JSON answers serialised by orjson: from plain values to bytes in one C call.

The bytes are what the documented models give (``services.api.schemas``, which the
OpenAPI document describes): compact separators, UTF-8 without escapes, datetimes in
RFC 3339 with ``Z`` for UTC, keys in the order the documents are built in. A route that
returns such a response skips FastAPI's validation and serialisation of its
``response_model``, which cost more than the rest of a member status request.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

_OPTIONS = orjson.OPT_UTC_Z  # "2025-03-06T10:00:00Z", as pydantic writes UTC datetimes


def json_response(document: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(document, option=_OPTIONS), status_code=status_code, media_type="application/json")
