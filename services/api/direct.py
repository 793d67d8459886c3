"""Calling a read route's endpoint straight from the request when its parameters are plainly valid.

FastAPI resolves a route's parameters and dependencies anew for every request; for the
API's read routes that costs as much as the route's own SQL statement. Their parameters
are simple: path ids (text with length bounds), ``limit`` (an integer in bounds, with a
default), ``cursor`` (optional text), and the app state. When every value of a request is
one the framework would take as it is (an id within its bounds, a limit written as plain
decimal digits within its bounds, each query parameter given at most once), the endpoint
is called with those values directly. Anything else goes through the framework, which
binds it or answers the ``invalid_request`` it always did, so the answers are the same
either way (``tests/integration/test_api_direct.py`` compares them request by request).

A route is bound directly only if all of its parameters are of those kinds and its only
dependencies are the token checks (already done by ``services.api.routing.ApiRoute``)
and the app state; any other route always goes through the framework, and so does every
request while the app has dependency overrides. The binding reads the route's own
declaration: the API's routers are included without dependencies of their own
(``services.api.app``), which a direct call would not run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from annotated_types import Ge, Le, MaxLen, MinLen
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.params import Path, Query

from services.api.auth import require_full_token, require_token
from services.api.dependencies import get_state, state_of

# Decimal digits as a number is usually written; "007", "+7", " 7" or "7.0" go to the framework.
_PLAIN_INTEGER = re.compile(r"[1-9][0-9]{0,17}|0")


@dataclass(frozen=True, slots=True)
class _Text:
    name: str
    shortest: int
    longest: int | None


@dataclass(frozen=True, slots=True)
class _Integer:
    name: str
    least: int | None
    most: int | None
    default: int


@dataclass(frozen=True, slots=True)
class Binding:
    """How to take a route's arguments from a request; ``arguments`` is None when the framework must bind them."""

    path: tuple[_Text, ...]
    integers: tuple[_Integer, ...]
    optional_texts: tuple[str, ...]
    state: str | None

    def arguments(self, request: Request) -> dict[str, Any] | None:
        arguments: dict[str, Any] = {}
        path_params: Mapping[str, Any] = request.path_params
        for text in self.path:
            value = path_params.get(text.name)
            if not isinstance(value, str) or len(value) < text.shortest:
                return None
            if text.longest is not None and len(value) > text.longest:
                return None
            arguments[text.name] = value
        if self.integers or self.optional_texts:
            query = request.query_params
            for integer in self.integers:
                given = query.getlist(integer.name)
                if not given:
                    arguments[integer.name] = integer.default
                    continue
                if len(given) > 1 or _PLAIN_INTEGER.fullmatch(given[0]) is None:
                    return None
                number = int(given[0])
                if (integer.least is not None and number < integer.least) or (
                    integer.most is not None and number > integer.most
                ):
                    return None
                arguments[integer.name] = number
            for name in self.optional_texts:
                given = query.getlist(name)
                if len(given) > 1:
                    return None
                arguments[name] = given[0] if given else None
        if self.state is not None:
            arguments[self.state] = state_of(request)
        return arguments


def _length_bounds(metadata: list[Any]) -> tuple[int, int | None] | None:
    """(shortest, longest) from a text parameter's constraints, or None when it has any other constraint."""
    shortest, longest = 0, None
    for item in metadata:
        if isinstance(item, MinLen):
            shortest = item.min_length
        elif isinstance(item, MaxLen):
            longest = item.max_length
        else:
            return None
    return shortest, longest


def _integer_bounds(metadata: list[Any]) -> tuple[int | None, int | None] | None:
    """(least, most) from an integer parameter's constraints, or None when it has any other constraint."""
    least = most = None
    for item in metadata:
        if isinstance(item, Ge) and isinstance(item.ge, int):
            least = item.ge
        elif isinstance(item, Le) and isinstance(item.le, int):
            most = item.le
        else:
            return None
    return least, most


def _plain(field: Any) -> bool:
    """A parameter read under its own name (FastAPI sets that as its alias), with no other alias."""
    info = field.field_info
    return bool(field.alias == field.name and info.alias in (None, field.name) and info.validation_alias is None)


def binding_for(dependant: Dependant, checked: Callable[..., Any] | None) -> Binding | None:
    """The direct binding of a route, or None when any of its parameters or dependencies needs the framework."""
    if dependant.header_params or dependant.cookie_params or dependant.body_params:
        return None
    special = (
        dependant.request_param_name,
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(name is not None for name in special):
        return None
    state = None
    for dependency in dependant.dependencies:
        if dependency.name is None and dependency.call in (require_token, require_full_token) and checked is not None:
            continue  # checked by the route class before the endpoint is reached
        if dependency.call is get_state and dependency.name is not None and state is None:
            state = dependency.name
            continue
        return None
    path = []
    for field in dependant.path_params:
        info = field.field_info
        lengths = _length_bounds(info.metadata)
        if not isinstance(info, Path) or info.annotation is not str or lengths is None or not _plain(field):
            return None
        path.append(_Text(field.name, *lengths))
    integers = []
    optional_texts = []
    for field in dependant.query_params:
        info = field.field_info
        if not isinstance(info, Query) or not _plain(field):
            return None
        if info.annotation is int and isinstance(info.default, int) and not isinstance(info.default, bool):
            bounds = _integer_bounds(info.metadata)
            if bounds is None:
                return None
            integers.append(_Integer(field.name, *bounds, info.default))
        elif info.annotation == str | None and info.default is None and not info.metadata:
            optional_texts.append(field.name)
        else:
            return None
    return Binding(tuple(path), tuple(integers), tuple(optional_texts), state)
