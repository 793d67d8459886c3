"""Segment routes: saved audience definitions, their sizes and members, evaluated inside PostgreSQL.

Writes (create, new version, archive) go through ``shared.usecases.segments``; reads use
the segment queries of ``shared.audience`` on the engine's connections. Sizes, pages,
exports and previews reflect members' state now: time-relative fields are taken at the
wall clock of the request. An export streams from a server-side cursor, a chunk of rows
at a time, so its memory does not grow with the segment; its columns and their text are
``shared.audience.segment_export``'s, as in the operator command line's export.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from asyncpg import Record
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette import status

from services.api import repository
from services.api.auth import Authenticated, FullAccess
from services.api.database import ReadPool
from services.api.dependencies import Engine, Playbooks, State
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
    invalid_cursor,
    invalid_doc,
)
from services.api.routing import ApiRoute
from services.api.schemas import (
    Segment,
    SegmentDetail,
    SegmentMemberPage,
    SegmentPage,
    SegmentPreview,
    SegmentPreviewRequest,
    SegmentRequest,
)
from shared.audience import segment_export, segment_query
from shared.audience.segment_export import member_item
from shared.audience.segment_query import Audience
from shared.audience.segment_reads import SegmentVersionNotFoundError, get_segment, list_segments
from shared.domain.playbook import Playbook
from shared.domain.segments import (
    InvalidDefinitionError,
    Node,
    SavedSegment,
    Vocabulary,
    parse_definition,
)
from shared.usecases.segments import SegmentRefusedError, archive_segment, create_segment, revise_segment

K = TypeVar("K")

# Preview: how many member ids the sample holds (the first by member_id).
PREVIEW_SAMPLE = 20

# Export: rows per chunk read from the server-side cursor and sent.
EXPORT_CHUNK_ROWS = segment_export.CHUNK_ROWS

SegmentId = Annotated[
    str,
    Path(
        description="The segment's id, as its creation answered it.",
        min_length=1,
        max_length=200,
        examples=["seg_5f0c6e2a9b1d4c3e8f7a6b5c"],
    ),
]

_NOT_FOUND: Responses = {status.HTTP_404_NOT_FOUND: error_doc("`segment_not_found`: the shop has no such segment.")}
_ARCHIVED: Responses = {
    status.HTTP_409_CONFLICT: error_doc("`segment_archived`: the segment is archived and can no longer change.")
}

segments_router = APIRouter(
    prefix="/v1/shops/{shop_id}/segments",
    tags=["segments"],
    dependencies=[Authenticated],
    responses={**UNAUTHORIZED, **TOO_LARGE, **invalid_doc()},
    route_class=ApiRoute,
)


def _not_found(shop_id: str, segment_id: str) -> ApiError:
    return ApiError(status.HTTP_404_NOT_FOUND, "segment_not_found", f"No segment {segment_id!r} in shop {shop_id!r}")


def _refused(refused: SegmentRefusedError) -> ApiError:
    code = status.HTTP_404_NOT_FOUND if refused.code == "segment_not_found" else status.HTTP_409_CONFLICT
    return ApiError(code, refused.code, str(refused))


def _invalid_definition(error: InvalidDefinitionError) -> ApiError:
    return unprocessable("invalid_definition", str(error))


def _segment(saved: SavedSegment) -> dict[str, Any]:
    return {
        "segment_id": saved.segment_id,
        "name": saved.name,
        "description": saved.description,
        "definition": saved.definition,
        "version": saved.version,
        "latest_version": saved.latest_version,
        "created_at": saved.created_at,
        "updated_at": saved.updated_at,
        "archived_at": saved.archived_at,
    }


def _stored_definition(saved: SavedSegment) -> Node:
    """A saved definition, parsed without the shop's vocabulary: a tier renamed since matches no one."""
    return parse_definition(saved.definition)


async def _audience(connection: AsyncConnection, definition: Node, shop_id: str, playbook: Playbook) -> Audience:
    """The definition's audience now: at the wall clock, with the shop's playbook and RFM edges."""
    return await segment_query.prepare(connection, definition, shop_id, playbook.for_shop(shop_id), datetime.now(UTC))


async def _current(connection: AsyncConnection, shop_id: str, segment_id: str) -> SavedSegment:
    saved = await get_segment(connection, shop_id, segment_id)
    if saved is None:
        raise _not_found(shop_id, segment_id)
    return saved


@segments_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Segment,
    summary="Create a segment",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **invalid_doc("invalid_json", "invalid_definition")},
)
async def create(shop_id: ShopId, body: SegmentRequest, engine: Engine, playbook: Playbooks) -> Response:
    """Saves a definition as a new segment, version 1. The definition is validated against the shop's playbook."""
    try:
        saved = await create_segment(
            engine,
            shop_id,
            playbook.for_shop(shop_id),
            name=body.name,
            description=body.description,
            definition=body.definition,
        )
    except InvalidDefinitionError as error:
        raise _invalid_definition(error) from None
    return json_response(_segment(saved), status_code=status.HTTP_201_CREATED)


@segments_router.get(
    "", response_model=SegmentPage, summary="The shop's segments", responses=invalid_doc("invalid_cursor")
)
async def segments(
    shop_id: ShopId,
    engine: Engine,
    playbook: Playbooks,
    cursor: Cursor = None,
    limit: Limit = 50,
    include_archived: Annotated[bool, Query(description="List archived segments too.")] = False,
) -> Response:
    """The shop's segments at their current versions, oldest first; archived ones only on request."""
    after = decode_cursor(repository.decode_segment_cursor, cursor, playbook.for_shop(shop_id).business_time)
    key = None if after is None else (after.created_at, after.segment_id)
    async with engine.connect() as connection:
        found = await list_segments(connection, shop_id, include_archived=include_archived, after=key, limit=limit + 1)
    page = found[:limit]
    next_cursor = None
    if len(found) > limit:
        last = page[-1]
        next_cursor = repository.encode_segment_cursor(repository.SegmentKey(last.created_at, last.segment_id))
    return json_response({"items": [_segment(saved) for saved in page], "next_cursor": next_cursor})


@segments_router.post(
    "/preview",
    response_model=SegmentPreview,
    summary="Preview a definition",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **invalid_doc("invalid_json", "invalid_definition")},
)
async def preview(shop_id: ShopId, body: SegmentPreviewRequest, engine: Engine, playbook: Playbooks) -> Response:
    """The size of a definition now and its first member ids, without saving anything."""
    try:
        definition = parse_definition(body.definition, Vocabulary.of(playbook.for_shop(shop_id)))
    except InvalidDefinitionError as error:
        raise _invalid_definition(error) from None
    async with engine.connect() as connection:
        audience = await _audience(connection, definition, shop_id, playbook)
        size, sample = await segment_query.preview(connection, audience, PREVIEW_SAMPLE)
    return json_response({"size": size, "sample": sample})


@segments_router.get(
    "/{segment_id}",
    response_model=SegmentDetail,
    summary="A segment and its size",
    responses={
        status.HTTP_404_NOT_FOUND: error_doc(
            "`segment_not_found`: the shop has no such segment; `segment_version_not_found`: it has no such version."
        ),
    },
)
async def segment(
    shop_id: ShopId,
    segment_id: SegmentId,
    engine: Engine,
    playbook: Playbooks,
    version: Annotated[
        int | None, Query(ge=1, le=2_147_483_647, description="An earlier version, as it was stored.")
    ] = None,
) -> Response:
    """The segment (archived ones too) at its current version or ``version``, with ``size``: its members now."""
    async with engine.connect() as connection:
        try:
            saved = await get_segment(connection, shop_id, segment_id, version)
        except SegmentVersionNotFoundError:
            raise ApiError(
                status.HTTP_404_NOT_FOUND,
                "segment_version_not_found",
                f"Segment {segment_id!r} of shop {shop_id!r} has no version {version}",
            ) from None
        if saved is None:
            raise _not_found(shop_id, segment_id)
        audience = await _audience(connection, _stored_definition(saved), shop_id, playbook)
        size = await segment_query.count_members(connection, audience)
    return json_response({**_segment(saved), "size": size})


@segments_router.put(
    "/{segment_id}",
    response_model=Segment,
    summary="Save a new version",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **_NOT_FOUND, **_ARCHIVED, **invalid_doc("invalid_json", "invalid_definition")},
)
async def revise(
    shop_id: ShopId, segment_id: SegmentId, body: SegmentRequest, engine: Engine, playbook: Playbooks
) -> Response:
    """Saves name, description and definition as the segment's next version; earlier ones stay readable."""
    try:
        saved = await revise_segment(
            engine,
            shop_id,
            segment_id,
            playbook.for_shop(shop_id),
            name=body.name,
            description=body.description,
            definition=body.definition,
        )
    except InvalidDefinitionError as error:
        raise _invalid_definition(error) from None
    except SegmentRefusedError as refused:
        raise _refused(refused) from None
    return json_response(_segment(saved))


@segments_router.delete(
    "/{segment_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Archive a segment",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **_NOT_FOUND},
)
async def archive(shop_id: ShopId, segment_id: SegmentId, engine: Engine) -> Response:
    """Archives the segment: it stays readable, leaves the list and can no longer change. Again: 204."""
    try:
        await archive_segment(engine, shop_id, segment_id)
    except SegmentRefusedError as refused:
        raise _refused(refused) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@segments_router.get(
    "/{segment_id}/members",
    response_model=SegmentMemberPage,
    summary="The segment's members",
    responses={**_NOT_FOUND, **invalid_doc("invalid_cursor")},
)
async def segment_members(
    shop_id: ShopId,
    segment_id: SegmentId,
    engine: Engine,
    playbook: Playbooks,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """The members the current version selects now, by member_id, a page at a time."""
    after = decode_cursor(repository.decode_segment_member_cursor, cursor, playbook.for_shop(shop_id).business_time)
    if after is not None and after.segment_id != segment_id:
        raise invalid_cursor()
    async with engine.connect() as connection:
        saved = await _current(connection, shop_id, segment_id)
        audience = await _audience(connection, _stored_definition(saved), shop_id, playbook)
        rows = await segment_query.page(connection, audience, None if after is None else after.member_id, limit + 1)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        key = repository.SegmentMemberKey(segment_id, page[-1].member_id)
        next_cursor = repository.encode_segment_member_cursor(key)
    return json_response({"items": [member_item(row._mapping) for row in page], "next_cursor": next_cursor})


@segments_router.get(
    "/{segment_id}/export",
    summary="Export the segment's members",
    response_class=StreamingResponse,
    responses={
        status.HTTP_200_OK: {
            "description": "Every member the current version selects now, by member_id: CSV with a header "
            "row, or one JSON object per line (the items of the members route).",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
        **_NOT_FOUND,
    },
)
async def export(
    shop_id: ShopId,
    segment_id: SegmentId,
    engine: Engine,
    playbook: Playbooks,
    state: State,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv (with a header row) or jsonl.")] = "csv",
) -> StreamingResponse:
    """Streams every member of the segment now, read from a server-side cursor in chunks."""
    async with engine.connect() as connection:
        saved = await _current(connection, shop_id, segment_id)
        audience = await _audience(connection, _stored_definition(saved), shop_id, playbook)
    reads = state.read_pool()
    chunks = _csv(reads, audience) if format == "csv" else _jsonl(reads, audience)
    return StreamingResponse(
        chunks,
        media_type=segment_export.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{saved.segment_id}.{format}"'},
    )


async def _records(reads: ReadPool, audience: Audience) -> AsyncIterator[list[Record]]:
    """The audience's members in chunks from a server-side cursor on the read pool (asyncpg records,
    without an ORM row per member): memory stays at one chunk whatever the size."""
    sql, args = segment_query.export_sql(audience)
    async with reads.connection() as connection, connection.transaction():
        cursor = await connection.cursor(sql, *args)
        while chunk := await cursor.fetch(EXPORT_CHUNK_ROWS):
            yield chunk


async def _csv(reads: ReadPool, audience: Audience) -> AsyncIterator[bytes]:
    """RFC 4180: a header row, CRLF line ends, fields with commas, quotes or line breaks quoted."""
    yield segment_export.csv_header()
    async for records in _records(reads, audience):
        yield segment_export.csv_chunk(records)


async def _jsonl(reads: ReadPool, audience: Audience) -> AsyncIterator[bytes]:
    async for records in _records(reads, audience):
        yield segment_export.jsonl_chunk(records)
