"""Bearer-token authentication against the tokens configured in ``API_TOKENS``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.dependencies import State
from services.api.errors import forbidden, unauthorized

# auto_error=False so a missing header gets our error shape; the scheme still shows in OpenAPI.
bearer_scheme = HTTPBearer(auto_error=False, description="A token from the API_TOKENS setting.")


def digest(token: str) -> bytes:
    """Tokens are compared as SHA-256 digests: equal lengths, so the comparison leaks nothing."""
    return hashlib.sha256(token.encode("utf-8")).digest()


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


async def require_token(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Reject the request unless it carries a configured bearer token (full or read-only)."""
    token = _presented(credentials)
    full, read_only = is_accepted(token, state.token_digests), is_accepted(token, state.read_token_digests)
    if not (full or read_only):
        raise unauthorized("Invalid bearer token")


async def require_full_token(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Routes that change state (redemptions, scheduler runs) need a token from API_TOKENS."""
    token = _presented(credentials)
    full, read_only = is_accepted(token, state.token_digests), is_accepted(token, state.read_token_digests)
    if full:
        return
    if read_only:
        raise forbidden("This token may only read; this route needs a token from API_TOKENS")
    raise unauthorized("Invalid bearer token")


Authenticated = Depends(require_token)
FullAccess = Depends(require_full_token)
