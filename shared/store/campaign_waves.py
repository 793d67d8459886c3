"""Campaign waves in PostgreSQL: started once, their audience fixed in one statement, worked in claimed batches.

A pending wave is claimed ``FOR UPDATE SKIP LOCKED`` and started in one transaction: its
audience is inserted into ``campaign_targets`` by one INSERT ... SELECT over ``members`` (the
segment compiled to SQL as of the wave's time), the wave turns ``running`` and its campaign
``running``. Any number of schedulers then claim batches of open targets, each ``FOR UPDATE
SKIP LOCKED`` and deleted in the batch's transaction, so each member is handled by exactly one
committed batch; the batch's decisions, coupons, reached members, actions and outbox rows are
written by one set-based statement (``write_batch``). The wave is ``done`` when no target is left.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, Row, Table, Text, TextClause, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.engine import dump_json
from shared.db.schema import actions, campaign_targets, coupons, decisions, members
from shared.domain.campaign_waves import ConversionWindow, DueWave, WaveBatch
from shared.domain.model import ActionDecision
from shared.store import action_log, decision_log, wallet
from shared.store.bulk_sql import row_value

_WAVE = "shop_id = :shop_id AND campaign_id = :campaign_id AND wave = :wave"
_COLUMNS = "w.shop_id, w.campaign_id, w.wave, w.at, w.audience, c.plan"

# Waves of cancelled campaigns not started yet never run; one already running finishes, so that no
# strategy's members are cut off half-way and the report compares whole groups.
_CANCEL = text(
    "UPDATE campaign_waves w SET status = 'cancelled' FROM campaigns c "
    "WHERE c.shop_id = w.shop_id AND c.campaign_id = w.campaign_id AND c.status = 'cancelled' "
    "AND w.status = 'pending'"
)
# A wave starts once every earlier wave of its campaign is over, so each member's first wave, and
# whether it converted since, are known when the wave decides it.
_CLAIM = text(
    f"SELECT {_COLUMNS} FROM campaign_waves w JOIN campaigns c USING (shop_id, campaign_id) "
    "WHERE w.status = 'pending' AND w.at <= :as_of AND c.status IN ('scheduled', 'running') "
    "AND NOT EXISTS (SELECT 1 FROM campaign_waves e WHERE e.shop_id = w.shop_id "
    "AND e.campaign_id = w.campaign_id AND e.wave < w.wave AND e.status IN ('pending', 'running')) "
    "ORDER BY w.at, w.shop_id, w.campaign_id, w.wave LIMIT 1 FOR UPDATE OF w SKIP LOCKED"
)
_RUNNING = text(
    f"SELECT {_COLUMNS} FROM campaign_waves w JOIN campaigns c USING (shop_id, campaign_id) "
    "WHERE w.status = 'running' AND w.at <= :as_of "
    "ORDER BY w.at, w.shop_id, w.campaign_id, w.wave"
)
_START = text(f"UPDATE campaign_waves SET status = 'running', started_at = now() WHERE {_WAVE} AND status = 'pending'")
_CAMPAIGN_RUNNING = text(
    "UPDATE campaigns SET status = 'running' "
    "WHERE shop_id = :shop_id AND campaign_id = :campaign_id AND status = 'scheduled'"
)
# Claims open targets by deleting them: a rollback brings them back for the next batch. The picked
# ids are deleted by primary key from an array: written as a join against a CTE, a plan made while
# the wave's statistics are unknown compares every target of the wave with every picked one. They
# are picked after ``:after``, where the claimer's last batch ended: from the start, each claim
# would step over the entries of every target deleted before it.
_CLAIMED = (
    f"claimed AS (DELETE FROM campaign_targets t WHERE t.shop_id = :shop_id AND t.campaign_id = :campaign_id "
    "AND t.wave = :wave AND t.member_id = ANY(ARRAY("
    f"SELECT member_id FROM campaign_targets WHERE {_WAVE} AND member_id > :after "
    "ORDER BY member_id LIMIT :limit FOR UPDATE SKIP LOCKED)) "
    "RETURNING t.member_id)"
)
_TARGETS = text(f"WITH {_CLAIMED} SELECT member_id, false FROM claimed ORDER BY member_id")
# For a ``not_converted`` wave: whether each member paid an order in the attribution window of the
# first wave that reached it (windows as arrays: wave, start, stop). Asked member by member, by the
# keys of ``campaign_members`` and ``orders``: written as a join, a plan made on stale statistics
# can read every member the campaign reached once for every claimed member, and without ``OFFSET 0``
# the EXISTS becomes a hashed subplan that reads them all once per batch.
_TARGETS_CONVERTED = text(
    f"WITH {_CLAIMED} "
    "SELECT c.member_id, EXISTS (SELECT 1 FROM campaign_members f "
    "JOIN unnest(CAST(:waves AS int[]), CAST(:starts AS timestamptz[]), CAST(:stops AS timestamptz[])) "
    "AS win(wave, start, stop) ON win.wave = f.first_wave "
    "JOIN orders o ON o.shop_id = :shop_id AND o.member_id = f.member_id "
    "AND o.paid_at > win.start AND o.paid_at <= win.stop "
    "WHERE f.shop_id = :shop_id AND f.campaign_id = :campaign_id AND f.member_id = c.member_id OFFSET 0) "
    "FROM claimed c ORDER BY c.member_id"
)
_ANALYZE = text("ANALYZE campaign_targets")
_ANALYZE_RESULTS = text("ANALYZE campaign_members, coupons")
_LOCK_CAMPAIGN = text("SELECT 1 FROM campaigns WHERE shop_id = :shop_id AND campaign_id = :campaign_id FOR UPDATE")
# Members who got an action in the wave: its sends, added up by its batches.
_FINISH = text(
    "UPDATE campaign_waves w SET status = 'done', ran_at = now(), members = ("
    f"SELECT coalesce(sum(s.members), 0) FROM campaign_sends s WHERE {_WAVE}) "
    "WHERE w.shop_id = :shop_id AND w.campaign_id = :campaign_id AND w.wave = :wave AND w.status = 'running' "
    f"AND NOT EXISTS (SELECT 1 FROM campaign_targets t WHERE {_WAVE}) RETURNING w.wave"
)
_COMPLETE = text(
    "UPDATE campaigns c SET status = 'completed' WHERE c.shop_id = :shop_id AND c.campaign_id = :campaign_id "
    "AND c.status = 'running' AND NOT EXISTS (SELECT 1 FROM campaign_waves w WHERE w.shop_id = :shop_id "
    "AND w.campaign_id = :campaign_id AND w.status IN ('pending', 'running'))"
)


def _key(wave: DueWave) -> dict[str, object]:
    return {"shop_id": wave.shop_id, "campaign_id": wave.campaign_id, "wave": wave.wave}


def _due(row: Row[Any]) -> DueWave:
    return DueWave(row.shop_id, row.campaign_id, row.wave, row.at, row.audience, row.plan)


async def cancel_waves(connection: AsyncConnection) -> int:
    """Marks the open waves of cancelled campaigns ``cancelled``; how many."""
    return int((await connection.execute(_CANCEL)).rowcount or 0)


async def claim_pending_wave(connection: AsyncConnection, as_of: datetime) -> DueWave | None:
    """Locks the earliest pending wave due by ``as_of`` that no other transaction holds."""
    row = (await connection.execute(_CLAIM, {"as_of": as_of})).first()
    return None if row is None else _due(row)


async def start_wave(connection: AsyncConnection, wave: DueWave, audience: ColumnElement[bool]) -> int:
    """Fixes the claimed wave's audience (``audience``: a condition on ``members``) and starts it; its size."""
    chosen = select(
        members.c.shop_id,
        literal(wave.campaign_id, Text()),
        literal(wave.wave, Integer()),
        members.c.member_id,
    ).where(audience)
    statement = insert(campaign_targets).from_select(["shop_id", "campaign_id", "wave", "member_id"], chosen)
    result = await connection.execute(statement)
    # Fresh statistics for the batches' claims: planned with those of the table before the wave's
    # thousands of rows, each claim walks all of the wave's targets (tests/bench/campaign_bench.py).
    # ANALYZE sees the rows this transaction inserted; other transactions see the statistics once it commits.
    await connection.execute(_ANALYZE)
    await connection.execute(_START, _key(wave))
    await connection.execute(_CAMPAIGN_RUNNING, _key(wave))
    return int(result.rowcount or 0)


async def running_waves(connection: AsyncConnection, as_of: datetime) -> list[DueWave]:
    """Running waves due by ``as_of`` of campaigns not cancelled, earliest first."""
    return [_due(row) for row in await connection.execute(_RUNNING, {"as_of": as_of})]


async def claim_targets(
    connection: AsyncConnection, wave: DueWave, limit: int, windows: Sequence[ConversionWindow], after: str = ""
) -> list[tuple[str, bool]]:
    """Claims up to ``limit`` open targets after member ``after`` nobody holds; each with whether it converted.

    ``windows`` are the earlier waves' attribution windows (empty: nobody is asked).
    """
    parameters: dict[str, object] = {**_key(wave), "limit": limit, "after": after}
    if windows:
        parameters |= {
            "waves": [window.wave for window in windows],
            "starts": [window.start for window in windows],
            "stops": [window.stop for window in windows],
        }
    rows = await connection.execute(_TARGETS_CONVERTED if windows else _TARGETS, parameters)
    return [(str(row[0]), bool(row[1])) for row in rows]


async def finish_wave(connection: AsyncConnection, wave: DueWave) -> bool:
    """Marks the wave done if none of its targets is open, and its campaign completed after its last wave.

    The campaign's row is locked first, so two waves finishing at once see each other's end.
    """
    await connection.execute(_LOCK_CAMPAIGN, _key(wave))
    finished = (await connection.execute(_FINISH, _key(wave))).first()
    if finished is None:
        return False
    await connection.execute(_COMPLETE, _key(wave))
    # A wave adds a member row and a coupon per member at once: the report, read next, is planned on fresh statistics
    # (a sample: fast whatever the table's size) rather than on the empty table autovacuum last saw.
    await connection.execute(_ANALYZE_RESULTS)
    return True


# A decided batch (``WaveBatch``), written in one statement: the members' columns zipped into rows
# ``m``, each joined with its variant's example rows (``u.r``: a decision, a coupon and an action
# row, as the object path writes them), whose member-specific values the member's own replace.
_MEMBERS = (
    "m AS (SELECT m.member_id, m.ident, m.code, CAST(m.variant AS int) + 1 AS variant, m.reason FROM ROWS FROM ("
    "jsonb_array_elements_text(CAST(:members AS jsonb)), jsonb_array_elements_text(CAST(:idents AS jsonb)), "
    "jsonb_array_elements_text(CAST(:codes AS jsonb)), jsonb_array_elements_text(CAST(:variants AS jsonb)), "
    "jsonb_array_elements_text(CAST(:reasons AS jsonb))) AS m(member_id, ident, code, variant, reason))"
)


def _examples(table: Table, names: list[str], param: str, extra: str = "") -> str:
    """The examples of ``param`` as rows ``e`` of ``names``' values (and ``extra``), cast once per variant."""
    typed = ", ".join(f'{row_value(table, names, name)} AS "{name}"' for name in names)
    return (
        f"(SELECT u.n, {typed}{extra} FROM jsonb_array_elements(CAST(:{param} AS jsonb)) WITH ORDINALITY AS u(r, n) "
        "WHERE jsonb_typeof(u.r) = 'array') e"
    )


def _from_examples(table: Table, names: list[str], param: str, overrides: dict[str, str], where: str = "") -> str:
    """``INSERT`` of ``names`` for each member of ``m`` from its variant's example row (``e``), some overridden."""
    values = ", ".join(overrides.get(name, f'e."{name}"') for name in names)
    return (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {values} "
        f"FROM m JOIN {_examples(table, names, param)} ON e.n = m.variant{where}"
    )


# No ON CONFLICT on the rows of a member: its target is deleted by the batch that writes them, so
# no other batch writes them again, and checking first (a speculative insertion) costs more than
# twice the insertion. The wallet keeps its check: a coupon's code could collide with another's.
_D, _C, _A = decision_log.COLUMNS, wallet.COLUMNS, action_log.COLUMNS
_DECISIONS = _from_examples(
    decisions,
    _D,
    "decision_examples",
    {
        "decision_id": "m.ident",
        "member_id": "m.member_id",
        "reason": 'coalesce(m.reason, e."reason")',
        "action_id": 'CASE WHEN e."action_id" IS NOT NULL THEN m.ident END',
        "code": 'CASE WHEN e."code" IS NOT NULL THEN m.code END',
    },
)
_COUPONS = _from_examples(
    coupons,
    _C,
    "coupon_examples",
    {"code": "m.code", "member_id": "m.member_id", "action_id": "m.ident"},
    " WHERE m.code IS NOT NULL",
)
# An action's payload is its example's JSON text with the member's values put in (``_payload_parts``):
# text is joined once and parsed once, where building the JSONB value would rebuild it per key.
_PARTS = "".join(f", u.r->{_A.index('payload')}->>{i} AS p{i}" for i in range(4))
_OWN = {"action_id": "m.ident", "member_id": "m.member_id", "payload": "NULL"}  # a member's own, or its body
_BODIES = (
    f"bodies AS (SELECT {', '.join(_OWN.get(name, f'e.{name}') + f' AS {name}' for name in _A)}, "
    "e.p0 || to_json(m.ident)::text || e.p1 || to_json(m.member_id)::text || e.p2 "
    "|| CASE WHEN m.code IS NULL THEN '' ELSE to_json(m.code)::text || e.p3 END AS body "
    f"FROM m JOIN {_examples(actions, _A, 'action_examples', _PARTS)} ON e.n = m.variant)"
)
# The first wave to reach a member keeps it: waves run one after the other, and a wave's members are
# each in one batch, so a later wave looks for the member's row rather than race for it (the first
# wave has none to look for). It looks for each member by the primary key: ``OFFSET 0`` keeps the
# NOT EXISTS from becoming an anti join, which, planned on the table as last analysed, hashes every
# member the campaign has reached so far, for every batch: quadratic in the wave's size.
_REACHED = (
    "INSERT INTO campaign_members (shop_id, campaign_id, member_id, grp, first_wave, first_at) "
    "SELECT :shop_id, :campaign_id, r.member_id, r.grp, :wave, :at FROM ROWS FROM ("
    "jsonb_array_elements_text(CAST(:reached AS jsonb)), jsonb_array_elements_text(CAST(:groups AS jsonb))) "
    "AS r(member_id, grp)"
)
_NOT_REACHED_BEFORE = (
    " WHERE NOT EXISTS (SELECT 1 FROM campaign_members c WHERE c.shop_id = :shop_id "
    "AND c.campaign_id = :campaign_id AND c.member_id = r.member_id OFFSET 0)"
)
_SENDS = (
    "INSERT INTO campaign_sends (shop_id, campaign_id, wave, strategy, members, points_value) "
    "SELECT :shop_id, :campaign_id, :wave, s.strategy, s.members, s.points_value "
    "FROM jsonb_to_recordset(CAST(:sends AS jsonb)) AS s(strategy text, members int, points_value numeric) "
    "ON CONFLICT (shop_id, campaign_id, wave, strategy) DO UPDATE "
    "SET members = campaign_sends.members + excluded.members, "
    "points_value = campaign_sends.points_value + excluded.points_value"
)


@functools.cache
def _write_batch(first_wave: bool) -> TextClause:
    reached = _REACHED if first_wave else _REACHED + _NOT_REACHED_BEFORE
    return text(
        f"WITH {_MEMBERS}, "
        f"decided AS ({_DECISIONS}), "
        f"issued AS ({_COUPONS} ON CONFLICT (shop_id, code) DO NOTHING), "
        f"reached AS ({reached}), "
        f"{_BODIES}, "
        f"logged AS (INSERT INTO actions ({', '.join(_A)}) "
        f"SELECT {', '.join('CAST(body AS jsonb)' if n == 'payload' else n for n in _A)} FROM bodies), "
        "queued AS (INSERT INTO outbox (stream, key, payload, event_time) "
        "SELECT 'actions', shop_id || ':' || member_id, body, occurred_at FROM bodies) "
        "SELECT count(*) FROM bodies"
    )


_ADD_SENDS = text(_SENDS)


async def write_batch(connection: AsyncConnection, batch: WaveBatch, now: datetime) -> int:
    """Writes the batch's decisions, coupons, actions and outbox rows; how many actions are new.

    Each example is written through the same row functions as a decision, coupon or action of
    the object path, so a member's rows are those ``batch.expand()`` would have written. The
    members credited points are written by the object path; they count here among the members
    reached and the sends. The sends are added in a statement of their own, last: concurrent
    batches of the wave wait on those rows only until the first commits.
    """
    statement = _write_batch(batch.wave == 1)
    new = int((await connection.execute(statement, batch_parameters(batch, now))).scalar_one())
    sends = [
        {"strategy": strategy, "members": members, "points_value": str(value)}
        for strategy, (members, value) in sorted(batch.sends().items())
    ]
    if sends:
        key = {"shop_id": batch.shop_id, "campaign_id": batch.campaign_id, "wave": batch.wave}
        await connection.execute(_ADD_SENDS, {**key, "sends": dump_json(sends)})
    return new


def batch_parameters(batch: WaveBatch, now: datetime) -> dict[str, Any]:
    """The parameters of the batch's statement."""
    examples = batch.examples
    reached, groups = batch.reached()
    return {
        "shop_id": batch.shop_id,
        "campaign_id": batch.campaign_id,
        "wave": batch.wave,
        "at": batch.at,
        "reached": dump_json(reached),
        "groups": dump_json(groups),
        "members": dump_json(batch.members),
        "idents": dump_json(batch.action_ids),
        "codes": dump_json(batch.codes),
        "variants": dump_json(batch.variants),
        "reasons": dump_json(batch.reasons),
        "decision_examples": dump_json([decision_log.decision_row(e.decision, now) for e in examples]),
        "coupon_examples": dump_json([None if e.coupon is None else wallet.coupon_row(e.coupon) for e in examples]),
        "action_examples": dump_json([None if e.action is None else _action_example(e.action, now) for e in examples]),
    }


# Stand-ins for a member's own values in an example's JSON text, marked by NUL characters: no
# text of a campaign holds one (its plan is stored as JSONB, which cannot).
_STAND_INS = ("\x00action_id\x00", "\x00member_id\x00", "\x00code\x00")


def _action_example(action: ActionDecision, now: datetime) -> list[Any]:
    """The example's action row, its payload as JSON text cut where the member's id, action id and code go.

    The payload is built and checked by the contract like any action's (``action_row``); the member's
    values come first in it, the code (a coupon's or sample's) in its incentive.
    """
    row = list(action_log.action_row(action, now))
    payload = dict(row[-1])
    incentive = payload.get("incentive")
    stand_ins = list(_STAND_INS[:2])
    if isinstance(incentive, dict) and "code" in incentive:
        payload["incentive"] = {**incentive, "code": _STAND_INS[2]}
        stand_ins.append(_STAND_INS[2])
    ordered = {"action_id": _STAND_INS[0], "member_id": _STAND_INS[1]}
    ordered.update((key, value) for key, value in payload.items() if key not in ordered)
    parts, rest = [], dump_json(ordered)
    for stand_in in stand_ins:
        before, found, rest = rest.partition(dump_json(stand_in))
        if not found:
            raise ValueError(
                f"the example action {action.action_id} holds its stand-in {stand_in!r} twice or not at all"
            )
        parts.append(before)
    row[-1] = [*parts, rest]
    return row
