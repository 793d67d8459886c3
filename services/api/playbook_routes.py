"""Playbook routes: a shop's effective playbook, its stored versions, and storing a new one.

A shop's playbook is the playbook file's defaults, the file's ``shops.<shop>`` entry, then
the shop's newest stored overrides document. ``PUT`` stores a whole new document as the
next version, through ``shared.usecases.playbook_versions``; every running service
installs it within about ``PLAYBOOK_REFRESH_SECONDS`` (``shared.playbook_refresh``).
Reads compose the stored document over the file as the services do, so they show what is
in force as soon as it is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from starlette import status

from services.api import repository
from services.api.auth import Authenticated, CallerIdentity, FullAccess
from services.api.dependencies import Engine, State
from services.api.errors import ApiError, unprocessable
from services.api.responses import json_response
from services.api.routes import (
    FORBIDDEN,
    TOO_LARGE,
    UNAUTHORIZED,
    Cursor,
    Limit,
    Responses,
    ShopId,
    decode_cursor,
    error_doc,
    invalid_doc,
)
from services.api.routing import ApiRoute
from services.api.schemas import PlaybookVersionPage, ShopPlaybookVersion
from shared.playbook_file import playbook_document
from shared.usecases.playbook_versions import (
    InvalidPlaybookError,
    PlaybookVersionNotFoundError,
    StoredPlaybookInvalidError,
    VersionedPlaybook,
    playbook_versions,
    read_playbook,
    save_playbook,
)

OVERRIDES_EXAMPLE = {
    "rules": {
        "first_purchase_gift": {"holdout_percent": 50, "budget": {"amount": "50.00", "period": "P1M"}},
        "payment_confirmation": {"enabled": False},
    }
}

Version = Annotated[
    int | None,
    Query(
        ge=0,
        le=2_147_483_647,
        description="A stored version to show instead of the one in force; 0 shows the playbook file alone.",
    ),
]
Overrides = Annotated[
    dict[str, Any],
    Body(
        description="The shop's whole overrides document, in the shape of a `shops.<shop>` entry of the playbook "
        "file; it replaces the document of the previous version.",
        examples=[OVERRIDES_EXAMPLE],
    ),
]

_STORED_INVALID: Responses = {
    status.HTTP_409_CONFLICT: error_doc(
        "`stored_playbook_invalid`: the stored version no longer validates over the playbook file "
        "(the file changed since); services keep the shop's previous playbook meanwhile."
    )
}

playbook_router = APIRouter(
    prefix="/v1/shops/{shop_id}/playbook",
    tags=["playbook"],
    dependencies=[Authenticated],
    responses={**UNAUTHORIZED, **TOO_LARGE, **invalid_doc()},
    route_class=ApiRoute,
)


def _document(shown: VersionedPlaybook) -> dict[str, Any]:
    stored = shown.stored
    return {
        "version": shown.version,
        "playbook": playbook_document(shown.playbook),
        "overrides": stored.overrides if stored is not None else {},
        "created_at": stored.created_at if stored is not None else None,
        "created_by": stored.created_by if stored is not None else None,
    }


@playbook_router.get(
    "",
    response_model=ShopPlaybookVersion,
    summary="The shop's playbook",
    responses={
        status.HTTP_404_NOT_FOUND: error_doc("`playbook_version_not_found`: the shop has no such stored version."),
        **_STORED_INVALID,
    },
)
async def shop_playbook(shop_id: ShopId, engine: Engine, state: State, version: Version = None) -> Response:
    """The effective playbook at the stored version in force (0 when the shop has none), or at ``version``."""
    try:
        shown = await read_playbook(engine, state.layers, shop_id, version)
    except PlaybookVersionNotFoundError:
        raise ApiError(
            status.HTTP_404_NOT_FOUND,
            "playbook_version_not_found",
            f"Shop {shop_id!r} has no playbook version {version}",
        ) from None
    except StoredPlaybookInvalidError as invalid:
        raise ApiError(status.HTTP_409_CONFLICT, "stored_playbook_invalid", str(invalid)) from None
    return json_response(_document(shown))


@playbook_router.put(
    "",
    response_model=ShopPlaybookVersion,
    summary="Store a new version",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **invalid_doc("invalid_json", "invalid_playbook")},
)
async def store_playbook(
    shop_id: ShopId, overrides: Overrides, engine: Engine, state: State, created_by: CallerIdentity
) -> Response:
    """Validates the overrides and stores them as the shop's next version (the first is 1).

    Unknown keys and rules are refused like bad values, naming the path. Every running
    service has the new version in force within about ``PLAYBOOK_REFRESH_SECONDS``.
    """
    try:
        saved = await save_playbook(engine, state.layers, shop_id, overrides, created_by)
    except InvalidPlaybookError as error:
        raise unprocessable("invalid_playbook", str(error)) from None
    if state.refresher is not None:
        state.refresher.wake()  # this process's own decisions take it at once
    return json_response(_document(saved))


@playbook_router.get(
    "/versions",
    response_model=PlaybookVersionPage,
    summary="The shop's stored versions",
    responses=invalid_doc("invalid_cursor"),
)
async def versions(shop_id: ShopId, engine: Engine, state: State, cursor: Cursor = None, limit: Limit = 50) -> Response:
    """Every stored version with who stored it and when, newest first; `?version=N` of the playbook shows one."""
    before = decode_cursor(
        repository.decode_playbook_version_cursor, cursor, state.playbook.for_shop(shop_id).business_time
    )
    found = await playbook_versions(engine, shop_id, before=before, limit=limit + 1)
    page = found[:limit]
    next_cursor = repository.encode_playbook_version_cursor(page[-1].version) if len(found) > limit else None
    items = [{"version": v.version, "created_at": v.created_at, "created_by": v.created_by} for v in page]
    return json_response({"items": items, "next_cursor": next_cursor})
