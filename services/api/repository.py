"""The API's queries: SQLAlchemy Core selects on the shared tables, and the release of a quarantined member.

Lists use keyset pagination on the same keys as their indexes (actions: occurred_at
DESC, seq DESC; notifications: seq DESC), so a page costs the same however deep it
is and rows written meanwhile neither repeat nor go missing. The quarantine, a small
table, is listed oldest first by (quarantined_at, shop_id, member_id). The cursor handed
to clients is opaque: base64url of a small JSON document naming the last row's keys.
A cursor is decoded only if every key is one a stored row can have (a bigint, a time in
the business-time window, storable ids), so a forged one never reaches the database.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    and_,
    exists,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.inputs import is_storable
from shared.db.schema import actions, members, notifications, points_ledger, quarantined_members, rfm_edges
from shared.domain.business_time import BusinessTimeBounds
from shared.domain.model import LedgerEntry
from shared.domain.rfm import RfmEdges

K = TypeVar("K")


class InvalidCursorError(ValueError):
    """The cursor was not one this API issued for this list."""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    shop_id: str
    member_id: str
    joined_at: datetime | None
    tier: str | None
    tier_since: datetime | None
    net_spend: Decimal
    paid_orders: int
    first_order_at: datetime | None
    last_order_at: datetime | None
    updated_at: datetime
    stage: str | None
    stage_since: datetime | None
    win_backs: int
    qualifying_net_spend: Decimal
    qualifying_orders: int
    points_balance: int
    points_next_expiry_at: datetime | None
    score: int
    score_band: str | None
    score_parts: dict[str, int]
    last_event_at: datetime | None
    scheduled_until: datetime | None

    @property
    def as_of(self) -> datetime | None:
        """The business time the stored state reflects: the latest event or scheduler run."""
        times = [t for t in (self.last_event_at, self.scheduled_until) if t is not None]
        return max(times) if times else None


@dataclass(frozen=True, slots=True)
class ActionKey:
    """Position in a member's actions list: the last row's (occurred_at, seq)."""

    occurred_at: datetime
    seq: int


@dataclass(frozen=True, slots=True)
class SeqKey:
    """Position in a list ordered by seq (notifications, ledger lines): the last row's seq."""

    seq: int


@dataclass(frozen=True, slots=True)
class QuarantineKey:
    """Position in the quarantine list: the last row's (quarantined_at, shop_id, member_id)."""

    quarantined_at: datetime
    shop_id: str
    member_id: str


@dataclass(frozen=True, slots=True)
class Page(Generic[K]):
    """Stored JSON payloads, newest first, and where the next page starts (None at the end)."""

    items: list[dict[str, Any]]
    next_key: K | None


# Cursor numbers are PostgreSQL bigints; a cursor naming another number was not issued here.
_BIGINT_MAX = 2**63 - 1
# Quarantine cursors carry ids, which are at most 200 characters.
_ID_MAX = 200


def _encode(document: dict[str, Any]) -> str:
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(cursor: str, kind: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise InvalidCursorError("cursor is not valid") from exc
    if not isinstance(document, dict) or document.get("k") != kind:
        raise InvalidCursorError("cursor does not belong to this list")
    return document


def _seq(document: dict[str, Any]) -> int:
    seq = document.get("s")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= _BIGINT_MAX:
        raise InvalidCursorError("cursor is not valid")
    return seq


def _time(document: dict[str, Any], bounds: BusinessTimeBounds) -> datetime:
    """The cursor's time: aware, and inside the bounds every stored time lies in."""
    stamp = document.get("t")
    try:
        at = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not bounds.contains(at, datetime.now(UTC)):
        raise InvalidCursorError("cursor is not valid")
    return at.astimezone(UTC)


def _identifier(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= _ID_MAX or not is_storable(value):
        raise InvalidCursorError("cursor is not valid")
    return value


def encode_action_cursor(key: ActionKey) -> str:
    return _encode({"k": "a", "t": key.occurred_at.isoformat(), "s": key.seq})


def decode_action_cursor(cursor: str, bounds: BusinessTimeBounds) -> ActionKey:
    document = _decode(cursor, "a")
    return ActionKey(occurred_at=_time(document, bounds), seq=_seq(document))


def encode_ledger_cursor(key: SeqKey) -> str:
    return _encode({"k": "l", "s": key.seq})


def decode_ledger_cursor(cursor: str, bounds: BusinessTimeBounds) -> SeqKey:
    return SeqKey(seq=_seq(_decode(cursor, "l")))


def encode_notification_cursor(key: SeqKey) -> str:
    return _encode({"k": "n", "s": key.seq})


def decode_notification_cursor(cursor: str, bounds: BusinessTimeBounds) -> SeqKey:
    return SeqKey(seq=_seq(_decode(cursor, "n")))


def encode_quarantine_cursor(key: QuarantineKey) -> str:
    return _encode({"k": "q", "t": key.quarantined_at.isoformat(), "sh": key.shop_id, "m": key.member_id})


def decode_quarantine_cursor(cursor: str, bounds: BusinessTimeBounds) -> QuarantineKey:
    document = _decode(cursor, "q")
    return QuarantineKey(
        quarantined_at=_time(document, bounds),
        shop_id=_identifier(document, "sh"),
        member_id=_identifier(document, "m"),
    )


def _of_member(table: Table, shop_id: str, member_id: str) -> ColumnElement[bool]:
    return and_(table.c.shop_id == shop_id, table.c.member_id == member_id)


async def get_member(connection: AsyncConnection, shop_id: str, member_id: str) -> MemberRecord | None:
    statement = select(
        members.c.shop_id,
        members.c.member_id,
        members.c.joined_at,
        members.c.tier,
        members.c.tier_since,
        members.c.net_spend,
        members.c.paid_orders,
        members.c.first_order_at,
        members.c.last_order_at,
        members.c.updated_at,
        members.c.stage,
        members.c.stage_since,
        members.c.win_backs,
        members.c.qualifying_net_spend,
        members.c.qualifying_orders,
        members.c.points_balance,
        members.c.points_next_expiry_at,
        members.c.score,
        members.c.score_band,
        members.c.score_parts,
        members.c.last_event_at,
        members.c.scheduled_until,
    ).where(_of_member(members, shop_id, member_id))
    row = (await connection.execute(statement)).one_or_none()
    return None if row is None else MemberRecord(**row._asdict())


async def member_known(connection: AsyncConnection, shop_id: str, member_id: str, log_table: Table) -> bool:
    """Whether the member has a members row or any row in ``log_table`` (actions or notifications)."""
    statement = select(
        or_(
            exists(select(literal(1)).where(_of_member(members, shop_id, member_id))),
            exists(select(literal(1)).where(_of_member(log_table, shop_id, member_id))),
        )
    )
    return bool((await connection.execute(statement)).scalar_one())


async def list_actions(
    connection: AsyncConnection, shop_id: str, member_id: str, *, limit: int, after: ActionKey | None
) -> Page[ActionKey]:
    """Up to ``limit`` actions older than ``after`` (newest first), matching ix_actions_member."""
    statement = (
        select(actions.c.occurred_at, actions.c.seq, actions.c.payload)
        .where(_of_member(actions, shop_id, member_id))
        .order_by(actions.c.occurred_at.desc(), actions.c.seq.desc())
        .limit(limit + 1)
    )
    if after is not None:
        statement = statement.where(
            tuple_(actions.c.occurred_at, actions.c.seq)
            < tuple_(literal(after.occurred_at, actions.c.occurred_at.type), literal(after.seq, actions.c.seq.type))
        )
    rows = (await connection.execute(statement)).all()
    page = rows[:limit]
    next_key = ActionKey(occurred_at=page[-1].occurred_at, seq=page[-1].seq) if len(rows) > limit else None
    return Page(items=[row.payload for row in page], next_key=next_key)


async def _page_by_seq(
    connection: AsyncConnection, statement: Select[Any], seq: ColumnElement[int], limit: int, after: SeqKey | None
) -> tuple[Sequence[Row[Any]], SeqKey | None]:
    """Up to ``limit`` rows written before ``after``, newest first, and where the next page starts."""
    statement = statement.order_by(seq.desc()).limit(limit + 1)
    if after is not None:
        statement = statement.where(seq < after.seq)
    rows = (await connection.execute(statement)).all()
    page = rows[:limit]
    return page, SeqKey(seq=page[-1].seq) if len(rows) > limit else None


async def list_notifications(
    connection: AsyncConnection, shop_id: str, member_id: str, *, limit: int, after: SeqKey | None
) -> Page[SeqKey]:
    """Up to ``limit`` outcomes recorded before ``after`` (newest first), matching ix_notifications_member."""
    statement = select(notifications.c.seq, notifications.c.payload).where(
        _of_member(notifications, shop_id, member_id)
    )
    page, next_key = await _page_by_seq(connection, statement, notifications.c.seq, limit, after)
    return Page(items=[row.payload for row in page], next_key=next_key)


async def get_rfm_edges(connection: AsyncConnection, shop_id: str) -> RfmEdges | None:
    row = (
        await connection.execute(
            select(rfm_edges.c.as_of, rfm_edges.c.recency_days, rfm_edges.c.frequency, rfm_edges.c.monetary).where(
                rfm_edges.c.shop_id == shop_id
            )
        )
    ).one_or_none()
    if row is None or not row.recency_days:
        return None  # the shop had no buyers when the edges were computed
    return RfmEdges(
        as_of=row.as_of,
        recency_days=tuple(row.recency_days),
        frequency=tuple(row.frequency),
        monetary=tuple(row.monetary),
    )


async def ledger_entries(connection: AsyncConnection, shop_id: str, member_id: str) -> list[LedgerEntry]:
    """The member's whole ledger in booking order, to tell which points expire soon."""
    rows = await connection.execute(
        select(
            points_ledger.c.entry_id,
            points_ledger.c.kind,
            points_ledger.c.points,
            points_ledger.c.at,
            points_ledger.c.expires_at,
            points_ledger.c.shortfall,
        )
        .where(_of_member(points_ledger, shop_id, member_id))
        .order_by(points_ledger.c.seq)
    )
    return [LedgerEntry(*row) for row in rows]


async def list_ledger(
    connection: AsyncConnection, shop_id: str, member_id: str, *, limit: int, after: SeqKey | None
) -> Page[SeqKey]:
    """Up to ``limit`` ledger lines booked before ``after`` (newest first), matching ix_points_ledger_member."""
    statement = (
        select(
            points_ledger.c.seq,
            points_ledger.c.entry_id,
            points_ledger.c.kind,
            points_ledger.c.points,
            points_ledger.c.shortfall,
            points_ledger.c.at,
            points_ledger.c.expires_at,
            points_ledger.c.created_at,
        )
    ).where(_of_member(points_ledger, shop_id, member_id))
    page, next_key = await _page_by_seq(connection, statement, points_ledger.c.seq, limit, after)
    items = [
        {
            "entry_id": row.entry_id,
            "kind": row.kind,
            "points": row.points,
            "shortfall": row.shortfall,
            "at": row.at.isoformat(),
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "booked_at": row.created_at.isoformat(),
        }
        for row in page
    ]
    return Page(items=items, next_key=next_key)


_QUARANTINE_COLUMNS = (
    quarantined_members.c.shop_id,
    quarantined_members.c.member_id,
    quarantined_members.c.reason,
    quarantined_members.c.detail,
    quarantined_members.c.events,
    quarantined_members.c.quarantined_at,
    quarantined_members.c.last_event_at,
)


def _quarantine_item(row: Row[Any, Any, Any, Any, Any, Any, Any]) -> dict[str, Any]:
    return {
        "shop_id": row.shop_id,
        "member_id": row.member_id,
        "reason": row.reason,
        "detail": row.detail,
        "events": row.events,
        "quarantined_at": row.quarantined_at.isoformat(),
        "last_event_at": row.last_event_at.isoformat() if row.last_event_at else None,
    }


async def list_quarantine(
    connection: AsyncConnection, *, limit: int, after: QuarantineKey | None
) -> Page[QuarantineKey]:
    """Up to ``limit`` quarantined members after ``after``, oldest quarantine first, then by key."""
    table = quarantined_members
    statement = (
        select(*_QUARANTINE_COLUMNS)
        .order_by(table.c.quarantined_at, table.c.shop_id, table.c.member_id)
        .limit(limit + 1)
    )
    if after is not None:
        statement = statement.where(
            tuple_(table.c.quarantined_at, table.c.shop_id, table.c.member_id)
            > tuple_(
                literal(after.quarantined_at, table.c.quarantined_at.type),
                literal(after.shop_id, table.c.shop_id.type),
                literal(after.member_id, table.c.member_id.type),
            )
        )
    rows = (await connection.execute(statement)).all()
    page = rows[:limit]
    next_key = (
        QuarantineKey(quarantined_at=page[-1].quarantined_at, shop_id=page[-1].shop_id, member_id=page[-1].member_id)
        if len(rows) > limit
        else None
    )
    return Page(items=[_quarantine_item(row) for row in page], next_key=next_key)


@dataclass(frozen=True, slots=True)
class Listing(Generic[K]):
    """How one of a member's lists is paged: its cursor codec, its query and its table."""

    decode: Callable[[str, BusinessTimeBounds], K]
    fetch: Callable[..., Awaitable[Page[K]]]
    encode: Callable[[K], str]
    table: Table


ACTIONS = Listing(decode_action_cursor, list_actions, encode_action_cursor, actions)
NOTIFICATIONS = Listing(decode_notification_cursor, list_notifications, encode_notification_cursor, notifications)
LEDGER = Listing(decode_ledger_cursor, list_ledger, encode_ledger_cursor, points_ledger)
