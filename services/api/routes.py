"""HTTP routes; thin: parse the request, call the repository, shape the answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette import status

from services.api import repository
from services.api.auth import Authenticated, FullAccess
from services.api.dependencies import ApiState, Engine, Playbooks, State, Units
from services.api.errors import ApiError, unprocessable
from services.api.responses import json_response
from services.api.routing import ApiRoute
from services.api.schemas import (
    ActionPage,
    CouponPage,
    DecisionPage,
    ErrorResponse,
    Health,
    LedgerLine,
    LedgerPage,
    MemberStatus,
    NotificationPage,
    QuarantinedMember,
    QuarantinePage,
    Readiness,
    RedeemRequest,
    RedeemResponse,
    SchedulerRunRequest,
    SchedulerRunResponse,
)
from services.api.status import expiry_lead
from services.api.status import member_status as member_status_document
from shared.db.engine import database_ready
from shared.domain.business_time import BusinessTimeBounds
from shared.observability import metrics_response
from shared.usecases.points_redemption import RedemptionRefusedError, redeem_points
from shared.usecases.quarantine_release import release_member
from shared.usecases.scheduler_run import Scheduler

K = TypeVar("K")

# Longest cursor accepted: a quarantine cursor carries two ids of up to 200 characters.
CURSOR_MAX_LENGTH = 4096

ShopId = Annotated[str, Path(description="The shop's id.", min_length=1, max_length=200, examples=["shop-1"])]
MemberId = Annotated[
    str, Path(description="The member's id within the shop.", min_length=1, max_length=200, examples=["m-1001"])
]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
# The length is checked with the rest of the cursor, so any cursor not issued here is ``invalid_cursor``.
Cursor = Annotated[
    str | None,
    Query(
        description="`next_cursor` from the previous page; omit for the first.",
        json_schema_extra={"maxLength": CURSOR_MAX_LENGTH},
    ),
]


Responses = dict[int | str, dict[str, Any]]


def error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


UNAUTHORIZED: Responses = {
    status.HTTP_401_UNAUTHORIZED: error_doc("`unauthorized`: the bearer token is missing or unknown.")
}
FORBIDDEN: Responses = {
    status.HTTP_403_FORBIDDEN: error_doc("`forbidden`: a read-only token (API_READ_TOKENS) on this route.")
}
TOO_LARGE: Responses = {
    status.HTTP_413_CONTENT_TOO_LARGE: error_doc("`payload_too_large`: the request body exceeds API_MAX_BODY_BYTES.")
}


def invalid_doc(*codes: str) -> Responses:
    listed = ", ".join(f"`{code}`" for code in ("invalid_request", "invalid_text", *codes))
    return {status.HTTP_422_UNPROCESSABLE_CONTENT: error_doc(f"The request is invalid: {listed}.")}


def _not_found(description: str) -> Responses:
    return {status.HTTP_404_NOT_FOUND: error_doc(description)}


_MEMBER_ERRORS: Responses = {
    **UNAUTHORIZED,
    **_not_found("`member_not_found`: the shop has no such member."),
    **TOO_LARGE,
    **invalid_doc(),
}
_LIST_ERRORS: Responses = invalid_doc("invalid_cursor")

operations = APIRouter(tags=["operations"], responses=TOO_LARGE)
members_router = APIRouter(
    prefix="/v1/shops/{shop_id}/members/{member_id}",
    tags=["members"],
    dependencies=[Authenticated],
    responses=_MEMBER_ERRORS,
    route_class=ApiRoute,
)


def _member_not_found(shop_id: str, member_id: str) -> ApiError:
    return ApiError(status.HTTP_404_NOT_FOUND, "member_not_found", f"No member {member_id!r} in shop {shop_id!r}")


def invalid_cursor() -> ApiError:
    return unprocessable("invalid_cursor", "The cursor is malformed or belongs to another list")


def decode_cursor(
    decode: Callable[[str, BusinessTimeBounds], K], cursor: str | None, bounds: BusinessTimeBounds
) -> K | None:
    if cursor is None:
        return None
    if len(cursor) > CURSOR_MAX_LENGTH:
        raise invalid_cursor()
    try:
        return decode(cursor, bounds)
    except repository.InvalidCursorError:
        raise invalid_cursor() from None


def check_time(field: str, at: datetime, bounds: Iterable[BusinessTimeBounds]) -> None:
    """422 ``time_out_of_range`` unless ``at`` lies in every window; the message states the rule."""
    now = datetime.now(UTC)
    for window in bounds:
        if not window.contains(at, now):
            raise unprocessable("time_out_of_range", f"{field} {window.describe()}")


_HEALTHY = b'{"status":"ok"}'


@operations.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Response:
    """The process is up and serving; says nothing about its dependencies."""
    return Response(_HEALTHY, media_type="application/json")


@operations.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness",
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Readiness, "description": "A dependency is unreachable."}
    },
)
async def readyz(state: State, engine: Engine) -> JSONResponse:
    """Ready when PostgreSQL answers ``select 1`` and Kafka answers a metadata request."""
    checks = {
        "database": await database_ready(engine),
        "kafka": state.kafka is not None and await state.kafka.ready(),
    }
    ready = all(checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(
        body.model_dump(), status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
    )


@operations.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus text exposition of the default registry."""
    return metrics_response()


@members_router.get("", response_model=MemberStatus, summary="Member status")
async def member_status(shop_id: ShopId, member_id: MemberId, state: State) -> Response:
    """Tier, figures, lifecycle, points, score and RFM, as of the member's business clock (``as_of``)."""
    shop = state.playbook.for_shop(shop_id)
    found = await repository.get_member_status(state.read_pool(), shop_id, member_id, expiry_lead(shop))
    if found is None:
        raise _member_not_found(shop_id, member_id)
    return json_response(member_status_document(found.member, shop, found.ledger, found.edges))


async def _page(
    listing: repository.Listing[Any],
    state: ApiState,
    shop_id: str,
    member_id: str,
    cursor: str | None,
    limit: int,
    **filters: Any,
) -> Response:
    """One page of a member's list: the cursor checked, 404 for a member with no trace at all.

    ``filters`` are the list's own keyword arguments (a coupon status); a cursor carries none,
    so it goes on from its row whatever the filters.
    """
    after = decode_cursor(listing.decode, cursor, state.playbook.for_shop(shop_id).business_time)
    try:
        page = await listing.fetch(state.read_pool(), shop_id, member_id, limit=limit, after=after, **filters)
    except repository.MemberNotFoundError:
        raise _member_not_found(shop_id, member_id) from None
    next_cursor = listing.encode(page.next_key) if page.next_key else None
    return json_response({"items": page.items, "next_cursor": next_cursor})


@members_router.get("/actions", response_model=ActionPage, summary="Member actions", responses=_LIST_ERRORS)
async def member_actions(
    shop_id: ShopId,
    member_id: MemberId,
    state: State,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """The actions decided for the member, newest first, exactly as published on ``member.actions``."""
    # The stored payloads are returned verbatim: they are the published contract documents.
    return await _page(repository.ACTIONS, state, shop_id, member_id, cursor, limit)


@members_router.get(
    "/notifications", response_model=NotificationPage, summary="Member notification outcomes", responses=_LIST_ERRORS
)
async def member_notifications(
    shop_id: ShopId,
    member_id: MemberId,
    state: State,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """What the notifier did with the member's actions, newest first, as published on ``member.notifications``."""
    return await _page(repository.NOTIFICATIONS, state, shop_id, member_id, cursor, limit)


@members_router.get("/points/ledger", response_model=LedgerPage, summary="Member points ledger", responses=_LIST_ERRORS)
async def points_ledger_lines(
    shop_id: ShopId,
    member_id: MemberId,
    state: State,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """The member's ledger lines, most recently booked first; they always sum to the balance."""
    return await _page(repository.LEDGER, state, shop_id, member_id, cursor, limit)


CouponStatus = Annotated[
    Literal["issued", "redeemed", "expired"] | None,
    Query(alias="status", description="Only the coupons with this status; every coupon when omitted."),
]


@members_router.get("/coupons", response_model=CouponPage, summary="Member coupons", responses=_LIST_ERRORS)
async def member_coupons(
    shop_id: ShopId,
    member_id: MemberId,
    state: State,
    cursor: Cursor = None,
    limit: Limit = 50,
    coupon_status: CouponStatus = None,
) -> Response:
    """The member's coupons, most recently issued first (then by code), of every status or of ``status``."""
    return await _page(repository.COUPONS, state, shop_id, member_id, cursor, limit, status=coupon_status)


@members_router.get("/decisions", response_model=DecisionPage, summary="Member decisions", responses=_LIST_ERRORS)
async def member_decisions(
    shop_id: ShopId,
    member_id: MemberId,
    state: State,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """Why the member got, or did not get, each incentive: the decisions, newest first by business time."""
    return await _page(repository.DECISIONS, state, shop_id, member_id, cursor, limit)


@members_router.post(
    "/points/redeem",
    response_model=RedeemResponse,
    summary="Redeem points",
    dependencies=[FullAccess],
    responses={
        **FORBIDDEN,
        status.HTTP_409_CONFLICT: error_doc(
            "`insufficient_points`: the balance is short; "
            "`idempotency_key_reused`: the key was used for another number of points."
        ),
        **invalid_doc("invalid_json", "time_out_of_range"),
    },
)
async def redeem(
    shop_id: ShopId, member_id: MemberId, body: RedeemRequest, units: Units, playbook: Playbooks
) -> RedeemResponse:
    """Takes points off the balance once per idempotency key; a repeated key returns the first result."""
    if body.at is not None:
        check_time("body.at", body.at, [playbook.for_shop(shop_id).business_time])
    at = body.at or datetime.now(UTC)
    try:
        done = await redeem_points(
            units, playbook.for_shop(shop_id), (shop_id, member_id), body.idempotency_key, body.points, at
        )
    except RedemptionRefusedError as refused:
        code = status.HTTP_404_NOT_FOUND if refused.code == "member_not_found" else status.HTTP_409_CONFLICT
        raise ApiError(code, refused.code, str(refused)) from None
    entry = done.entry
    line = LedgerLine(
        entry_id=entry.entry_id,
        kind=entry.kind,
        points=entry.points,
        shortfall=entry.shortfall,
        at=entry.at,
        expires_at=entry.expires_at,
        booked_at=None if done.replayed else datetime.now(UTC),
    )
    return RedeemResponse(entry=line, balance=done.balance, replayed=done.replayed)


admin_router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Authenticated],
    responses={**UNAUTHORIZED, **TOO_LARGE},
    route_class=ApiRoute,
)


@admin_router.post(
    "/scheduler/run",
    response_model=SchedulerRunResponse,
    summary="Run the scheduler",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **invalid_doc("invalid_json", "time_out_of_range")},
)
async def run_scheduler(
    body: SchedulerRunRequest, units: Units, playbook: Playbooks, state: State
) -> SchedulerRunResponse:
    """Runs every time-based rule due up to ``as_of`` and answers once none is left.

    Idempotent: the same ``as_of`` again emits nothing, and concurrent runs share the work.
    ``as_of`` must lie inside the business-time window of the default playbook and of every shop's.
    """
    check_time("body.as_of", body.as_of, playbook.business_time_windows())
    settings = state.settings
    scheduler = Scheduler(
        units, playbook, settings.scheduler_batch_size, settings.campaign_batch_size, settings.campaign_lanes
    )
    report = await scheduler.run(body.as_of)
    return SchedulerRunResponse.model_validate(report.as_dict())


@admin_router.get(
    "/quarantine",
    response_model=QuarantinePage,
    summary="Quarantined members",
    responses=invalid_doc("invalid_cursor"),
)
async def quarantine(state: State, cursor: Cursor = None, limit: Limit = 50) -> Response:
    """Members whose stored state the event path could not process, oldest quarantine first.

    Their events are dead-lettered (``member_quarantined``) until the member is released.
    """
    after = decode_cursor(repository.decode_quarantine_cursor, cursor, state.playbook.default.business_time)
    page = await repository.list_quarantine(state.read_pool(), limit=limit, after=after)
    next_cursor = repository.encode_quarantine_cursor(page.next_key) if page.next_key else None
    return json_response({"items": page.items, "next_cursor": next_cursor})


@admin_router.delete(
    "/quarantine/{shop_id}/{member_id}",
    response_model=QuarantinedMember,
    summary="Release a quarantined member",
    dependencies=[FullAccess],
    responses={**FORBIDDEN, **_not_found("`not_quarantined`: the member is not in quarantine."), **invalid_doc()},
)
async def release(shop_id: ShopId, member_id: MemberId, units: Units) -> JSONResponse:
    """Takes the member out of quarantine and makes it due now, so the scheduler looks at it again.

    Answers the released row. Events dead-lettered meanwhile must be published again.
    """
    released = await release_member(units, (shop_id, member_id))
    if released is None:
        raise ApiError(
            status.HTTP_404_NOT_FOUND,
            "not_quarantined",
            f"Member {member_id!r} of shop {shop_id!r} is not in quarantine",
        )
    return JSONResponse(jsonable_encoder(released))
