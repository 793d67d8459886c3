"""All of the notifier's SQL: set-based statements over ``deliveries``, ``members`` and ``notifications``.

Row sets travel as arrays through ``unnest``: one round trip and a handful of
parameters whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contract.actions import Action, NotificationOutcome

Key = tuple[str, str]
"""(action_id, channel) for a delivery; (shop_id, member_id) for a member."""

PENDING = "pending"  # only ever seen inside the consume transaction
SENDING = "sending"
COUNTED_STATUSES = ("sent", SENDING, "deferred")


@dataclass(frozen=True, slots=True)
class MemberContact:
    consent: bool
    timezone: str | None


@dataclass(frozen=True, slots=True)
class WindowQuery:
    """Count the member's incentive actions with occurred_at in (lower, upper]."""

    key: int
    shop_id: str
    member_id: str
    lower: datetime
    upper: datetime


@dataclass(frozen=True, slots=True)
class StatusChange:
    action_id: str
    channel: str
    status: str
    reason: str | None = None
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    action_id: str
    channel: str
    status: str
    reason: str | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Claimed:
    """A deferred delivery that came due, with the member's consent as it is now."""

    action: Action
    channel: str
    consent: bool | None


_INSERT_DELIVERIES = text(
    """
    INSERT INTO deliveries (action_id, channel, shop_id, member_id, rule, category, status, occurred_at, action)
    SELECT t.action_id, t.channel, t.shop_id, t.member_id, t.rule, t.category, :status, t.occurred_at,
           CAST(t.action AS jsonb)
    FROM unnest(CAST(:action_ids AS text[]), CAST(:channels AS text[]), CAST(:shops AS text[]),
                CAST(:members AS text[]), CAST(:rules AS text[]), CAST(:categories AS text[]),
                CAST(:occurred AS timestamptz[]), CAST(:actions AS text[]))
         AS t(action_id, channel, shop_id, member_id, rule, category, occurred_at, action)
    ON CONFLICT (action_id, channel) DO NOTHING
    RETURNING action_id, channel
    """
)


async def insert_deliveries(connection: AsyncConnection, rows: Sequence[tuple[Action, str]]) -> set[Key]:
    """Inserts a ``pending`` row per (action, channel); returns the keys that were new.

    The primary key is the idempotency key: a row that already exists means this
    (action, channel) was handled before, whatever happened to it since.
    """
    if not rows:
        return set()
    result = await connection.execute(
        _INSERT_DELIVERIES,
        {
            "status": PENDING,
            "action_ids": [action.action_id for action, _ in rows],
            "channels": [channel for _, channel in rows],
            "shops": [action.shop_id for action, _ in rows],
            "members": [action.member_id for action, _ in rows],
            "rules": [action.rule for action, _ in rows],
            "categories": [action.category for action, _ in rows],
            "occurred": [action.occurred_at for action, _ in rows],
            "actions": [action.model_dump_json() for action, _ in rows],
        },
    )
    return {(row.action_id, row.channel) for row in result}


async def load_contacts(connection: AsyncConnection, keys: Iterable[Key]) -> dict[Key, MemberContact]:
    """Consent and time zone of the given (shop_id, member_id); members not found are absent."""
    unique = sorted(set(keys))
    if not unique:
        return {}
    result = await connection.execute(
        text(
            """
            SELECT m.shop_id, m.member_id, m.marketing_consent, m.timezone
            FROM members m
            JOIN unnest(CAST(:shops AS text[]), CAST(:members AS text[])) AS k(shop_id, member_id)
              ON m.shop_id = k.shop_id AND m.member_id = k.member_id
            """
        ),
        {"shops": [shop for shop, _ in unique], "members": [member for _, member in unique]},
    )
    return {(row.shop_id, row.member_id): MemberContact(bool(row.marketing_consent), row.timezone) for row in result}


async def count_recent_incentives(
    connection: AsyncConnection, queries: Sequence[WindowQuery], exclude_action_ids: Sequence[str]
) -> dict[int, int]:
    """Per query, the distinct incentive actions already recorded and not suppressed or failed.

    ``exclude_action_ids`` are the actions being decided now; the caller counts those
    among themselves in business-time order.
    """
    if not queries:
        return {}
    result = await connection.execute(
        text(
            """
            SELECT q.key, count(DISTINCT d.action_id) AS n
            FROM unnest(CAST(:keys AS int[]), CAST(:shops AS text[]), CAST(:members AS text[]),
                        CAST(:lowers AS timestamptz[]), CAST(:uppers AS timestamptz[]))
                 AS q(key, shop_id, member_id, lower_at, upper_at)
            JOIN deliveries d
              ON d.shop_id = q.shop_id AND d.member_id = q.member_id AND d.category = 'incentive'
             AND d.occurred_at > q.lower_at AND d.occurred_at <= q.upper_at
             AND d.status = ANY(CAST(:statuses AS text[]))
             AND NOT (d.action_id = ANY(CAST(:exclude AS text[])))
            GROUP BY q.key
            """
        ),
        {
            "keys": [query.key for query in queries],
            "shops": [query.shop_id for query in queries],
            "members": [query.member_id for query in queries],
            "lowers": [query.lower for query in queries],
            "uppers": [query.upper for query in queries],
            "statuses": list(COUNTED_STATUSES),
            "exclude": list(exclude_action_ids),
        },
    )
    return {int(row.key): int(row.n) for row in result}


async def change_statuses(connection: AsyncConnection, expected: str, changes: Sequence[StatusChange]) -> set[Key]:
    """Moves rows still in ``expected`` to their new status; returns the keys actually moved."""
    rows = [(c.action_id, c.channel, c.status, c.reason, c.due_at) for c in changes]
    return await _update_still(connection, expected, rows, ("due_at", "timestamptz"), "COALESCE(u.due_at, d.due_at)")


async def record_results(connection: AsyncConnection, results: Sequence[DeliveryResult]) -> set[Key]:
    """Stores sent/failed for rows still ``sending``; returns the keys updated."""
    rows = [(r.action_id, r.channel, r.status, r.reason, r.attempts) for r in results]
    return await _update_still(connection, SENDING, rows, ("attempts", "int"), "d.attempts + u.attempts")


async def _update_still(
    connection: AsyncConnection,
    expected: str,
    rows: Sequence[tuple[str, str, str, str | None, Any]],
    column: tuple[str, str],
    value: str,
) -> set[Key]:
    """Sets status, reason and ``column`` (name, SQL type) to ``value`` on rows still in ``expected``.

    ``rows`` are (action id, channel, status, reason, the column's input ``u.<name>``); a row
    another instance has moved meanwhile is left alone. Returns the keys updated.
    """
    if not rows:
        return set()
    name, kind = column
    result = await connection.execute(
        text(
            f"UPDATE deliveries AS d SET status = u.status, reason = u.reason, {name} = {value}, updated_at = now() "
            "FROM unnest(CAST(:action_ids AS text[]), CAST(:channels AS text[]), CAST(:statuses AS text[]), "
            f"CAST(:reasons AS text[]), CAST(:extra AS {kind}[])) AS u(action_id, channel, status, reason, {name}) "
            "WHERE d.action_id = u.action_id AND d.channel = u.channel AND d.status = :expected "
            "RETURNING d.action_id, d.channel"
        ),
        {
            "expected": expected,
            "action_ids": [row[0] for row in rows],
            "channels": [row[1] for row in rows],
            "statuses": [row[2] for row in rows],
            "reasons": [row[3] for row in rows],
            "extra": [row[4] for row in rows],
        },
    )
    return {(row.action_id, row.channel) for row in result}


async def insert_outcomes(connection: AsyncConnection, outcomes: Sequence[NotificationOutcome]) -> list[Key]:
    """Logs outcomes and queues the new ones in the outbox; returns (channel, status) of each new one."""
    if not outcomes:
        return []
    result = await connection.execute(
        text(
            """
            WITH new AS (
                INSERT INTO notifications (notification_id, action_id, channel, shop_id, member_id, status, reason,
                                           at, payload)
                SELECT t.notification_id, t.action_id, t.channel, t.shop_id, t.member_id, t.status, t.reason, t.at,
                       CAST(t.payload AS jsonb)
                FROM unnest(CAST(:ids AS text[]), CAST(:action_ids AS text[]), CAST(:channels AS text[]),
                            CAST(:shops AS text[]), CAST(:members AS text[]), CAST(:statuses AS text[]),
                            CAST(:reasons AS text[]), CAST(:ats AS timestamptz[]), CAST(:payloads AS text[]))
                     WITH ORDINALITY AS t(notification_id, action_id, channel, shop_id, member_id, status, reason,
                                          at, payload, ord)
                ORDER BY t.ord
                ON CONFLICT (notification_id) DO NOTHING
                RETURNING seq, channel, status, shop_id, member_id, at, payload
            ), queued AS (
                INSERT INTO outbox (stream, key, payload, event_time)
                SELECT 'notifications', shop_id || ':' || member_id, payload::text, at FROM new ORDER BY seq
            )
            SELECT channel, status FROM new
            """
        ),
        {
            "ids": [item.notification_id for item in outcomes],
            "action_ids": [item.action_id for item in outcomes],
            "channels": [item.channel for item in outcomes],
            "shops": [item.shop_id for item in outcomes],
            "members": [item.member_id for item in outcomes],
            "statuses": [item.status for item in outcomes],
            "reasons": [item.reason for item in outcomes],
            "ats": [item.at for item in outcomes],
            "payloads": [item.model_dump_json() for item in outcomes],
        },
    )
    return [(row.channel, row.status) for row in result]


async def claim_due(connection: AsyncConnection, limit: int) -> list[Claimed]:
    """Locks deferred rows whose due_at has passed (wall clock), skipping rows others hold."""
    result = await connection.execute(
        text(
            """
            SELECT d.action_id, d.channel, CAST(d.action AS text) AS action, m.marketing_consent
            FROM deliveries d
            LEFT JOIN members m ON m.shop_id = d.shop_id AND m.member_id = d.member_id
            WHERE d.status = 'deferred' AND d.due_at <= now()
            ORDER BY d.due_at, d.action_id, d.channel
            LIMIT :limit
            FOR UPDATE OF d SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return [Claimed(Action.model_validate_json(row.action), row.channel, row.marketing_consent) for row in result]


@dataclass(frozen=True, slots=True)
class Interrupted:
    action_id: str
    channel: str
    shop_id: str
    member_id: str


async def fail_interrupted(connection: AsyncConnection, stale_after_s: float) -> list[Interrupted]:
    """Marks ``sending`` rows untouched for ``stale_after_s`` as failed/interrupted.

    Such a row belongs to a process that died mid-delivery: whether the message went
    out is unknown, and sending it again could send it twice, so it is given up.
    """
    result = await connection.execute(
        text(
            """
            UPDATE deliveries
            SET status = 'failed', reason = 'interrupted', updated_at = now()
            WHERE status = :sending AND updated_at < now() - make_interval(secs => :stale)
            RETURNING action_id, channel, shop_id, member_id
            """
        ),
        {"sending": SENDING, "stale": stale_after_s},
    )
    return [Interrupted(row.action_id, row.channel, row.shop_id, row.member_id) for row in result]
