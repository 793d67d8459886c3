"""The route class of the API's own routes: who may call, then whether the input can be stored.

Before the framework parses anything, a request is checked in this order:

1. the bearer token (401, 403), so a caller without a valid token learns nothing else;
2. path and query parameters: no NUL character or lone surrogate (422 ``invalid_text``);
3. for a route that takes a body: sent as JSON and parsing as JSON (422 ``invalid_json``),
   with no NUL character or lone surrogate in any string or key (422 ``invalid_text``).

Then the framework validates the request against the route's declared shapes (422
``invalid_request``), reusing the body parsed here; or, for a read route whose
parameters are all plainly valid, the endpoint is called with them directly
(``services.api.direct``), with the same answer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from services.api.auth import bearer_scheme, require_full_token, require_token
from services.api.direct import Binding, binding_for
from services.api.errors import unprocessable
from services.api.inputs import (
    TEXT_RULE,
    InvalidJsonError,
    is_json_content_type,
    is_utf8_when_unquoted,
    parse_json,
    unstorable_location,
    unstorable_parameter,
)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class JsonBodyRequest(Request):
    """A request whose ``json()`` is ``parse_json`` of its body, parsed once."""

    _document: Any

    async def json(self) -> Any:
        if not hasattr(self, "_document"):
            try:
                self._document = parse_json(await self.body())
            except InvalidJsonError as error:
                raise unprocessable("invalid_json", f"The request body is not JSON: {error}") from None
        return self._document


async def _authenticate(request: Request, required: Callable[..., Coroutine[Any, Any, None]] | None) -> None:
    if required is not None:
        await required(request, await bearer_scheme(request))


async def _check_parameters(request: Request) -> None:
    raw_path = request.scope.get("raw_path")
    if isinstance(raw_path, bytes) and not is_utf8_when_unquoted(raw_path.split(b"?", 1)[0]):
        raise unprocessable("invalid_text", f"the path is not UTF-8 once unescaped: {TEXT_RULE}")
    if not is_utf8_when_unquoted(request.scope.get("query_string", b"")):
        raise unprocessable("invalid_text", f"the query string is not UTF-8 once unescaped: {TEXT_RULE}")
    where = unstorable_parameter("path parameter", request.path_params.items()) or unstorable_parameter(
        "query parameter", request.query_params.multi_items()
    )
    if where is not None:
        raise unprocessable("invalid_text", f"{where}: {TEXT_RULE}")


async def _check_body(request: JsonBodyRequest) -> None:
    if not await request.body():
        return  # a missing body is the route's validation to report (``invalid_request``)
    if not is_json_content_type(request.headers.get("content-type")):
        raise unprocessable("invalid_json", "The request body is not JSON: send it with Content-Type: application/json")
    where = unstorable_location(await request.json())
    if where is not None:
        raise unprocessable("invalid_text", f"{where}: {TEXT_RULE}")


class ApiRoute(APIRoute):
    """An API route whose handler authenticates and checks the input before the framework's own work."""

    def get_route_handler(self) -> Handler:
        framework_handler = super().get_route_handler()
        calls = {dependency.dependency for dependency in self.dependencies}
        required = (
            require_full_token if require_full_token in calls else require_token if require_token in calls else None
        )
        takes_body = self.body_field is not None
        direct = self._direct_binding(required)
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            checked = JsonBodyRequest(request.scope, request.receive)
            await _authenticate(checked, required)
            await _check_parameters(checked)
            if takes_body:
                await _check_body(checked)
            # Dependency overrides (tests) are the framework's to apply.
            if direct is not None and not checked.app.dependency_overrides:
                arguments = direct.arguments(checked)
                if arguments is not None:
                    response: Response = await endpoint(**arguments)
                    return response
            return await framework_handler(checked)

        return handler

    def _direct_binding(self, required: Callable[..., Any] | None) -> Binding | None:
        """How to call the endpoint without the framework's binding: coroutines answering a Response only."""
        if not inspect.iscoroutinefunction(self.endpoint):
            return None
        returns = inspect.signature(self.endpoint, eval_str=True).return_annotation
        if not (isinstance(returns, type) and issubclass(returns, Response)):
            return None
        return binding_for(self.dependant, required)
