"""Tag routes: the built-in catalogue, a shop's tags with their member counts, and manual tags.

Computed tags are read from ``members.tags``; manual tags, which carry an expiry, from
their own table, counted only while unexpired at the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette import status

from services.api import repository
from services.api.auth import Authenticated, FullAccess
from services.api.dependencies import Playbooks, State, Units
from services.api.errors import ApiError, unprocessable
from services.api.responses import json_response
from services.api.routes import FORBIDDEN, TOO_LARGE, UNAUTHORIZED, MemberId, ShopId, error_doc, invalid_doc
from services.api.routing import ApiRoute
from services.api.schemas import ManualTag, ManualTagRequest, ShopTagList, TagCatalogue
from shared.domain import tags
from shared.domain.playbook import ShopPlaybook
from shared.usecases.manual_tagging import ManualTagRefusedError, remove_manual_tag, set_manual_tag

TagId = Annotated[
    str, Path(description="A tag id of the manual group.", min_length=1, max_length=200, examples=["manual.vip_event"])
]

tags_router = APIRouter(
    tags=["tags"],
    dependencies=[Authenticated],
    responses={**UNAUTHORIZED, **TOO_LARGE, **invalid_doc()},
    route_class=ApiRoute,
)


def _items(playbook: ShopPlaybook) -> list[dict[str, str]]:
    return [{"id": tag.id, "group": tag.group, "description": tag.description} for tag in tags.catalogue(playbook)]


@tags_router.get("/v1/tags", response_model=TagCatalogue, summary="The tag catalogue")
async def tag_catalogue(playbook: Playbooks) -> Response:
    """Every built-in tag with its group and description (tiers and score bands of the default playbook).

    ``purchase.category_<category>``, ``external.`` and ``manual.`` tags are open families:
    a shop's list (``/v1/shops/{shop_id}/tags``) names those its members carry.
    """
    return json_response({"items": _items(playbook.default), "next_cursor": None})


@tags_router.get("/v1/shops/{shop_id}/tags", response_model=ShopTagList, summary="A shop's tags")
async def shop_tags(shop_id: ShopId, state: State) -> Response:
    """The catalogue for the shop's playbook, each tag with how many members carry it now, then every
    other tag the shop's members carry (categories, external and manual tags), by id."""
    counts = await repository.count_shop_tags(state.read_pool(), shop_id)
    items = [{**item, "members": counts.pop(item["id"], 0)} for item in _items(state.playbook.for_shop(shop_id))]
    items += [
        {"id": tag, "group": tag.partition(".")[0], "description": tags.describe(tag), "members": members}
        for tag, members in sorted(counts.items())
    ]
    return json_response({"items": items, "next_cursor": None})


_MANUAL_ERRORS = {
    **FORBIDDEN,
    status.HTTP_404_NOT_FOUND: error_doc("`member_not_found`: the shop has no such member."),
    **invalid_doc("invalid_json", "invalid_tag", "time_out_of_range"),
}


def _refused(refused: ManualTagRefusedError) -> ApiError:
    if refused.code == "member_not_found":
        return ApiError(status.HTTP_404_NOT_FOUND, refused.code, str(refused))
    return unprocessable(refused.code, str(refused))


@tags_router.put(
    "/v1/shops/{shop_id}/members/{member_id}/tags/{tag}",
    response_model=ManualTag,
    summary="Set a manual tag",
    dependencies=[FullAccess],
    responses=_MANUAL_ERRORS,
)
async def put_manual_tag(
    shop_id: ShopId,
    member_id: MemberId,
    tag: TagId,
    units: Units,
    body: ManualTagRequest | None = None,
) -> ManualTag:
    """Sets ``manual.<name>`` on the member, or moves its expiry; setting it again replaces the expiry."""
    expires_at = body.expires_at if body is not None else None
    # An expiry is meant to lie ahead, so the business-time window (at most a day ahead) does not apply.
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise unprocessable("time_out_of_range", "body.expires_at must lie in the future")
    try:
        set_at = await set_manual_tag(units, (shop_id, member_id), tag, expires_at)
    except ManualTagRefusedError as refused:
        raise _refused(refused) from None
    return ManualTag(shop_id=shop_id, member_id=member_id, tag=tag, expires_at=expires_at, set_at=set_at)


@tags_router.delete(
    "/v1/shops/{shop_id}/members/{member_id}/tags/{tag}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a manual tag",
    dependencies=[FullAccess],
    responses=_MANUAL_ERRORS,
)
async def delete_manual_tag(shop_id: ShopId, member_id: MemberId, tag: TagId, units: Units) -> Response:
    """Removes ``manual.<name>`` from the member; removing a tag it does not carry is not an error."""
    try:
        await remove_manual_tag(units, (shop_id, member_id), tag)
    except ManualTagRefusedError as refused:
        raise _refused(refused) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
