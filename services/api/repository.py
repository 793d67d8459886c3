"""The API's queries: one SQL statement per read, on the read pool (``services.api.database``).

The member status gathers the member row, its shop's RFM edges and, only when some of
its points can expire soon, its ledger, in one round trip. (The API's writes go through
their use cases, ``shared.usecases``.)

Lists use keyset pagination on the same keys as their indexes (actions: occurred_at
DESC, seq DESC; notifications: seq DESC; coupons: issued_at DESC, code; decisions: at
DESC, decision_id DESC), so a page costs the same however deep it is and rows written
meanwhile neither repeat nor go missing. The quarantine, a small
table, is listed oldest first by (quarantined_at, shop_id, member_id) by
``shared.audience.quarantine_reads``, the command line's listing too; a shop's segments
oldest first by (created_at, segment_id), and a segment's members by member_id (the
primary key's order, ``services.api.segment_routes``). The cursor handed
to clients is opaque: base64url of a small JSON document naming the last row's keys.
A cursor is decoded only if every key is one a stored row can have (a bigint, a time in
the business-time window, storable ids), so a forged one never reaches the database.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

import asyncpg

from services.api.database import ReadPool
from services.api.inputs import is_storable
from shared.audience.quarantine_reads import QuarantineKey, list_quarantined
from shared.domain.business_time import BusinessTimeBounds
from shared.domain.model import LedgerEntry
from shared.domain.money import money
from shared.domain.rfm import RfmEdges
from shared.usecases.campaigns import CampaignKey

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
    tags: list[str]  # built-in, external and unexpired manual tags, sorted

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


@dataclass(frozen=True, slots=True)
class SegmentKey:
    """Position in a shop's segments: the last one's (created_at, segment_id)."""

    created_at: datetime
    segment_id: str


@dataclass(frozen=True, slots=True)
class SegmentMemberKey:
    """Position in a segment's members: the segment listed and the last member id."""

    segment_id: str
    member_id: str


def encode_segment_cursor(key: SegmentKey) -> str:
    return _encode({"k": "g", "t": key.created_at.isoformat(), "i": key.segment_id})


def decode_segment_cursor(cursor: str, bounds: BusinessTimeBounds) -> SegmentKey:
    """Segments are created at wall-clock times, which lie in the business-time window too."""
    document = _decode(cursor, "g")
    return SegmentKey(created_at=_time(document, bounds), segment_id=_identifier(document, "i"))


def encode_segment_member_cursor(key: SegmentMemberKey) -> str:
    return _encode({"k": "gm", "g": key.segment_id, "m": key.member_id})


def decode_segment_member_cursor(cursor: str, bounds: BusinessTimeBounds) -> SegmentMemberKey:
    document = _decode(cursor, "gm")
    return SegmentMemberKey(segment_id=_identifier(document, "g"), member_id=_identifier(document, "m"))


def encode_campaign_cursor(key: CampaignKey) -> str:
    return _encode({"k": "cp", "t": key.created_at.isoformat(), "i": key.campaign_id})


def decode_campaign_cursor(cursor: str, bounds: BusinessTimeBounds) -> CampaignKey:
    """Campaigns are created at wall-clock times, which lie in the business-time window too."""
    document = _decode(cursor, "cp")  # not "c": a coupon list's cursor must not page through campaigns
    return CampaignKey(created_at=_time(document, bounds), campaign_id=_identifier(document, "i"))


# Playbook versions are PostgreSQL integers.
_INTEGER_MAX = 2**31 - 1


def encode_playbook_version_cursor(version: int) -> str:
    return _encode({"k": "pv", "v": version})


def decode_playbook_version_cursor(cursor: str, bounds: BusinessTimeBounds) -> int:
    """The last version listed; the next page holds the older ones."""
    version = _decode(cursor, "pv").get("v")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= _INTEGER_MAX:
        raise InvalidCursorError("cursor is not valid")
    return version


@dataclass(frozen=True, slots=True)
class CouponKey:
    """Position in a member's coupons: the last one's (issued_at, code)."""

    issued_at: datetime
    code: str


@dataclass(frozen=True, slots=True)
class DecisionKey:
    """Position in a member's decisions: the last one's (at, decision_id)."""

    at: datetime
    decision_id: str


def encode_coupon_cursor(key: CouponKey) -> str:
    return _encode({"k": "c", "t": key.issued_at.isoformat(), "i": key.code})


def decode_coupon_cursor(cursor: str, bounds: BusinessTimeBounds) -> CouponKey:
    document = _decode(cursor, "c")
    return CouponKey(issued_at=_time(document, bounds), code=_identifier(document, "i"))


def encode_decision_cursor(key: DecisionKey) -> str:
    return _encode({"k": "d", "t": key.at.isoformat(), "i": key.decision_id})


def decode_decision_cursor(cursor: str, bounds: BusinessTimeBounds) -> DecisionKey:
    document = _decode(cursor, "d")
    return DecisionKey(at=_time(document, bounds), decision_id=_identifier(document, "i"))


@dataclass(frozen=True, slots=True)
class MemberStatusRecord:
    """What a member's status is built from: the member row, the shop's RFM edges, and the ledger when needed.

    ``ledger`` is None when no credit line of the member expires within ``lead`` after
    ``member.as_of``: then no points expire soon, whatever the ledger holds, and it is not read.
    """

    member: MemberRecord
    edges: RfmEdges | None
    ledger: list[LedgerEntry] | None


# ``as_of`` is the later of the member's latest event and latest scheduler run (MemberRecord.as_of).
_MEMBER_STATUS_SQL = """
SELECT m.shop_id, m.member_id, m.joined_at, m.tier, m.tier_since, m.net_spend, m.paid_orders, m.first_order_at,
       m.last_order_at, m.updated_at, m.stage, m.stage_since, m.win_backs, m.qualifying_net_spend,
       m.qualifying_orders, m.points_balance, m.points_next_expiry_at, m.score, m.score_band, m.score_parts,
       m.last_event_at, m.scheduled_until,
       m.tags || ARRAY(
           SELECT t.tag FROM member_manual_tags t
           WHERE t.shop_id = m.shop_id AND t.member_id = m.member_id AND (t.expires_at IS NULL OR t.expires_at > now())
       ) AS tags,
       e.as_of AS rfm_as_of, e.recency_days, e.frequency, e.monetary,
       CASE WHEN EXISTS (
           SELECT FROM points_ledger c
           WHERE c.shop_id = m.shop_id AND c.member_id = m.member_id AND c.points > 0
             AND c.expires_at > greatest(m.last_event_at, m.scheduled_until)
             AND c.expires_at <= greatest(m.last_event_at, m.scheduled_until) + $3::interval
       ) THEN ARRAY(
           SELECT ROW(l.entry_id, l.kind, l.points, l.at, l.expires_at, l.shortfall)
           FROM points_ledger l WHERE l.shop_id = m.shop_id AND l.member_id = m.member_id ORDER BY l.seq
       ) END AS ledger
FROM members m LEFT JOIN rfm_edges e ON e.shop_id = m.shop_id
WHERE m.shop_id = $1 AND m.member_id = $2
"""

_MEMBER_FIELDS = tuple(field.name for field in fields(MemberRecord))


async def get_member_status(
    reads: ReadPool, shop_id: str, member_id: str, lead: timedelta
) -> MemberStatusRecord | None:
    """The member's status inputs in one statement; ``lead`` is how far ahead points count as expiring soon."""
    async with reads.connection() as connection:
        row = await connection.fetchrow(_MEMBER_STATUS_SQL, shop_id, member_id, lead)
    if row is None:
        return None
    values = {name: row[name] for name in _MEMBER_FIELDS}
    values["tags"] = sorted(values["tags"])  # in code-point order, whatever the database's collation
    member = MemberRecord(**values)
    edges = None
    if row["recency_days"]:  # None without edges; empty when the shop had no buyers when they were computed
        edges = RfmEdges(
            as_of=row["rfm_as_of"],
            recency_days=tuple(row["recency_days"]),
            frequency=tuple(row["frequency"]),
            monetary=tuple(row["monetary"]),
        )
    lines = row["ledger"]
    ledger = None if lines is None else [LedgerEntry(*line) for line in lines]
    return MemberStatusRecord(member=member, edges=edges, ledger=ledger)


@dataclass(frozen=True, slots=True)
class _ListQueries:
    """A member's list: its first page, the pages after a cursor, and the table that also makes a member known."""

    table: str
    first: str
    after: str


async def _page(
    reads: ReadPool,
    queries: _ListQueries,
    shop_id: str,
    member_id: str,
    limit: int,
    after: Sequence[Any] | None,
    filters: Sequence[Any] = (),
) -> tuple[list[asyncpg.Record], bool]:
    """Up to ``limit + 1`` rows, and whether the member is known when there are none.

    ``filters`` are the list's own parameters, bound after the shop and member ids and before the cursor's keys.
    An empty page asks, on the same connection, whether the member has a members row or any row in the list's
    table (whatever the filters).
    """
    async with reads.connection() as connection:
        if after is None:
            rows = await connection.fetch(queries.first, shop_id, member_id, *filters, limit + 1)
        else:
            rows = await connection.fetch(queries.after, shop_id, member_id, *filters, *after, limit + 1)
        if rows:
            return rows, True
        known = await connection.fetchval(
            "SELECT EXISTS (SELECT FROM members WHERE shop_id = $1 AND member_id = $2) "
            f"OR EXISTS (SELECT FROM {queries.table} WHERE shop_id = $1 AND member_id = $2)",
            shop_id,
            member_id,
        )
        return [], bool(known)


class MemberNotFoundError(LookupError):
    """The member has neither a members row nor any row in the list asked for."""


_ACTIONS = _ListQueries(
    table="actions",
    first="SELECT occurred_at, seq, payload FROM actions WHERE shop_id = $1 AND member_id = $2 "
    "ORDER BY occurred_at DESC, seq DESC LIMIT $3",
    after="SELECT occurred_at, seq, payload FROM actions WHERE shop_id = $1 AND member_id = $2 "
    "AND (occurred_at, seq) < ($3, $4) ORDER BY occurred_at DESC, seq DESC LIMIT $5",
)


async def list_actions(
    reads: ReadPool, shop_id: str, member_id: str, *, limit: int, after: ActionKey | None
) -> Page[ActionKey]:
    """Up to ``limit`` actions older than ``after`` (newest first), matching ix_actions_member."""
    key = None if after is None else (after.occurred_at, after.seq)
    rows, known = await _page(reads, _ACTIONS, shop_id, member_id, limit, key)
    if not known:
        raise MemberNotFoundError(shop_id, member_id)
    page = rows[:limit]
    next_key = ActionKey(occurred_at=page[-1]["occurred_at"], seq=page[-1]["seq"]) if len(rows) > limit else None
    return Page(items=[row["payload"] for row in page], next_key=next_key)


_NOTIFICATIONS = _ListQueries(
    table="notifications",
    first="SELECT seq, payload FROM notifications WHERE shop_id = $1 AND member_id = $2 ORDER BY seq DESC LIMIT $3",
    after="SELECT seq, payload FROM notifications WHERE shop_id = $1 AND member_id = $2 AND seq < $3 "
    "ORDER BY seq DESC LIMIT $4",
)


def _next_seq(rows: Sequence[asyncpg.Record], limit: int) -> SeqKey | None:
    return SeqKey(seq=rows[limit - 1]["seq"]) if len(rows) > limit else None


async def list_notifications(
    reads: ReadPool, shop_id: str, member_id: str, *, limit: int, after: SeqKey | None
) -> Page[SeqKey]:
    """Up to ``limit`` outcomes recorded before ``after`` (newest first), matching ix_notifications_member."""
    rows, known = await _page(reads, _NOTIFICATIONS, shop_id, member_id, limit, None if after is None else (after.seq,))
    if not known:
        raise MemberNotFoundError(shop_id, member_id)
    return Page(items=[row["payload"] for row in rows[:limit]], next_key=_next_seq(rows, limit))


_LEDGER_COLUMNS = "seq, entry_id, kind, points, shortfall, at, expires_at, created_at"
_LEDGER = _ListQueries(
    table="points_ledger",
    first=f"SELECT {_LEDGER_COLUMNS} FROM points_ledger WHERE shop_id = $1 AND member_id = $2 "
    "ORDER BY seq DESC LIMIT $3",
    after=f"SELECT {_LEDGER_COLUMNS} FROM points_ledger WHERE shop_id = $1 AND member_id = $2 AND seq < $3 "
    "ORDER BY seq DESC LIMIT $4",
)


async def list_ledger(
    reads: ReadPool, shop_id: str, member_id: str, *, limit: int, after: SeqKey | None
) -> Page[SeqKey]:
    """Up to ``limit`` ledger lines booked before ``after`` (newest first), matching ix_points_ledger_member."""
    rows, known = await _page(reads, _LEDGER, shop_id, member_id, limit, None if after is None else (after.seq,))
    if not known:
        raise MemberNotFoundError(shop_id, member_id)
    items = [
        {
            "entry_id": row["entry_id"],
            "kind": row["kind"],
            "points": row["points"],
            "shortfall": row["shortfall"],
            "at": row["at"].isoformat(),
            "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
            "booked_at": row["created_at"].isoformat(),
        }
        for row in rows[:limit]
    ]
    return Page(items=items, next_key=_next_seq(rows, limit))


_COUPON_SELECT = (
    "SELECT code, rule, campaign_id, value, min_spend, issued_at, expires_at, status, order_id, redeemed_at "
    "FROM coupons WHERE shop_id = $1 AND member_id = $2 "
)
# Newest issued first, then by code: the order of ix_coupons_member (issued_at DESC, code).
_COUPON_ORDER = "ORDER BY issued_at DESC, code"
_COUPONS = _ListQueries(
    table="coupons",
    first=f"{_COUPON_SELECT}{_COUPON_ORDER} LIMIT $3",
    after=f"{_COUPON_SELECT}AND (issued_at < $3 OR (issued_at = $3 AND code > $4)) {_COUPON_ORDER} LIMIT $5",
)
_COUPONS_BY_STATUS = _ListQueries(
    table="coupons",
    first=f"{_COUPON_SELECT}AND status = $3 {_COUPON_ORDER} LIMIT $4",
    after=f"{_COUPON_SELECT}AND status = $3 AND (issued_at < $4 OR (issued_at = $4 AND code > $5)) "
    f"{_COUPON_ORDER} LIMIT $6",
)


def _optional_money(value: Decimal | None) -> str | None:
    return None if value is None else money(value)


async def list_coupons(
    reads: ReadPool, shop_id: str, member_id: str, *, limit: int, after: CouponKey | None, status: str | None = None
) -> Page[CouponKey]:
    """Up to ``limit`` coupons after ``after`` (most recently issued first), of one ``status`` when given."""
    queries, filters = (_COUPONS, ()) if status is None else (_COUPONS_BY_STATUS, (status,))
    key = None if after is None else (after.issued_at, after.code)
    rows, known = await _page(reads, queries, shop_id, member_id, limit, key, filters)
    if not known:
        raise MemberNotFoundError(shop_id, member_id)
    page = rows[:limit]
    items = [
        {
            "code": row["code"],
            "rule": row["rule"],
            "campaign_id": row["campaign_id"],
            "value": money(row["value"]),
            "min_spend": _optional_money(row["min_spend"]),
            "issued_at": row["issued_at"],
            "expires_at": row["expires_at"],
            "status": row["status"],
            "order_id": row["order_id"],
            "redeemed_at": row["redeemed_at"],
        }
        for row in page
    ]
    next_key = CouponKey(issued_at=page[-1]["issued_at"], code=page[-1]["code"]) if len(rows) > limit else None
    return Page(items=items, next_key=next_key)


_DECISION_SELECT = (
    "SELECT decision_id, rule, campaign_id, outcome, reason, at, action_id, playbook_version, value, kind, order_id "
    "FROM decisions WHERE shop_id = $1 AND member_id = $2 "
)
_DECISIONS = _ListQueries(
    table="decisions",
    first=f"{_DECISION_SELECT}ORDER BY at DESC, decision_id DESC LIMIT $3",
    after=f"{_DECISION_SELECT}AND (at, decision_id) < ($3, $4) ORDER BY at DESC, decision_id DESC LIMIT $5",
)


async def list_decisions(
    reads: ReadPool, shop_id: str, member_id: str, *, limit: int, after: DecisionKey | None
) -> Page[DecisionKey]:
    """Up to ``limit`` decisions older than ``after`` (newest first): the member's few rows, sorted."""
    key = None if after is None else (after.at, after.decision_id)
    rows, known = await _page(reads, _DECISIONS, shop_id, member_id, limit, key)
    if not known:
        raise MemberNotFoundError(shop_id, member_id)
    page = rows[:limit]
    items = [
        {
            "rule": row["rule"],
            "campaign_id": row["campaign_id"],
            "outcome": row["outcome"],
            "reason": row["reason"],
            "at": row["at"],
            "action_id": row["action_id"],
            "playbook_version": row["playbook_version"],
            "value": money(row["value"]),
            "kind": row["kind"],
            "order_id": row["order_id"],
        }
        for row in page
    ]
    next_key = DecisionKey(at=page[-1]["at"], decision_id=page[-1]["decision_id"]) if len(rows) > limit else None
    return Page(items=items, next_key=next_key)


async def list_quarantine(reads: ReadPool, *, limit: int, after: QuarantineKey | None) -> Page[QuarantineKey]:
    """Up to ``limit`` quarantined members after ``after``, oldest quarantine first, then by key."""
    async with reads.connection() as connection:
        items, next_key = await list_quarantined(connection, limit=limit, after=after)
    return Page(items=items, next_key=next_key)


@dataclass(frozen=True, slots=True)
class Listing(Generic[K]):
    """How one of a member's lists is paged: its cursor codec and its query."""

    decode: Callable[[str, BusinessTimeBounds], K]
    fetch: Callable[..., Awaitable[Page[K]]]
    encode: Callable[[K], str]


ACTIONS = Listing(decode_action_cursor, list_actions, encode_action_cursor)
NOTIFICATIONS = Listing(decode_notification_cursor, list_notifications, encode_notification_cursor)
LEDGER = Listing(decode_ledger_cursor, list_ledger, encode_ledger_cursor)
COUPONS = Listing(decode_coupon_cursor, list_coupons, encode_coupon_cursor)
DECISIONS = Listing(decode_decision_cursor, list_decisions, encode_decision_cursor)


_SHOP_TAG_COUNTS = """
SELECT tag, count(*) AS members FROM members m, unnest(m.tags) AS tag WHERE m.shop_id = $1 GROUP BY tag
UNION ALL
SELECT tag, count(*) FROM member_manual_tags
WHERE shop_id = $1 AND (expires_at IS NULL OR expires_at > now()) GROUP BY tag
"""


async def count_shop_tags(reads: ReadPool, shop_id: str) -> dict[str, int]:
    """How many of the shop's members carry each tag now (computed, external and unexpired manual tags)."""
    async with reads.connection() as connection:
        rows = await connection.fetch(_SHOP_TAG_COUNTS, shop_id)
    return {row["tag"]: row["members"] for row in rows}
