"""Bearer-token authentication against the tokens configured in ``API_TOKENS``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.dependencies import ApiState, state_of
from services.api.errors import forbidden, unauthorized

# auto_error=False so a missing header gets our error shape; the scheme still shows in OpenAPI.
bearer_scheme = HTTPBearer(auto_error=False, description="A token from the API_TOKENS setting.")

# The scope of the token a request carried (FULL or READ), kept in the request's ASGI scope
# once checked: the API's routes check the token before anything else (services.api.routing),
# and the route's own dependency then finds it checked rather than hashing it again.
CHECKED_SCOPE = "api.token_scope"
FULL, READ = "full", "read"


def digest(token: str) -> bytes:
    """Tokens are compared as SHA-256 digests: equal lengths, so the comparison leaks nothing."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_identity(token: str) -> str:
    """Who a stored change was made by: ``token:`` and the first 12 hex digits of the token's SHA-256.

    Enough to tell the configured tokens apart in a record, never enough to use or recover one.
    """
    return "token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def token_digests(tokens: Iterable[str]) -> tuple[bytes, ...]:
    return tuple(digest(token) for token in tokens)


def is_accepted(candidate: str, accepted: Iterable[bytes]) -> bool:
    """Constant time per configured token, and every token is always checked."""
    presented = digest(candidate)
    matched = False
    for known in accepted:
        matched |= hmac.compare_digest(presented, known)
    return matched


def _presented(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("Missing bearer token")
    return credentials.credentials


def token_scope(state: ApiState, credentials: HTTPAuthorizationCredentials | None) -> str:
    """FULL for a token from API_TOKENS, READ for one from API_READ_TOKENS; 401 for any other."""
    token = _presented(credentials)
    full, read_only = is_accepted(token, state.token_digests), is_accepted(token, state.read_token_digests)
    if full:
        return FULL
    if read_only:
        return READ
    raise unauthorized("Invalid bearer token")


def _checked_scope(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    checked = request.scope.get(CHECKED_SCOPE)
    if checked in (FULL, READ):
        return str(checked)
    scope = token_scope(state_of(request), credentials)
    request.scope[CHECKED_SCOPE] = scope
    return scope


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Reject the request unless it carries a configured bearer token (full or read-only)."""
    _checked_scope(request, credentials)


async def require_full_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Routes that change state (redemptions, scheduler runs) need a token from API_TOKENS."""
    if _checked_scope(request, credentials) != FULL:
        raise forbidden("This token may only read; this route needs a token from API_TOKENS")


async def caller_identity(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The ``token_identity`` of the request's (already checked) token."""
    return token_identity(_presented(credentials))


Authenticated = Depends(require_token)
FullAccess = Depends(require_full_token)
CallerIdentity = Annotated[str, Depends(caller_identity)]
