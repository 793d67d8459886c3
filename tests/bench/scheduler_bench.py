"""Scheduler benchmark: ``make bench-scheduler`` (``BENCH_MEMBERS`` members, default 1,000,000).

Loads a fresh database with set-based SQL: every member has 1–2 paid orders over the
past months, the earn lines of their points (and the hundred-day gift's, once given)
and everything the scheduler already did for them recorded as schedule marks, so
``next_due_at`` is what ``shared.domain.due_rules.plan`` derives from the row. A slice
of ``BENCH_DUE_FRACTION`` (default 1%) joined 30 days and a few hours before ``AS_OF``
and is due for its one-month gift (some also for their first lifecycle transition);
everyone else is due later. The load is timed apart and checked against ``plan`` and
``refresh_standing`` on a sample.

Then it times, on that data:

1. one ``Scheduler.run(AS_OF)`` pass: the due slice;
2. a second pass at the same ``AS_OF``: nothing is left, so it shows the fixed cost of a pass;
3. a pass an hour later (``AS_OF + 1h``): what an hour of time brings due in the whole
   base (lifecycle transitions, anniversaries, points reminders) plus a smaller slice of
   one-month gifts (``BENCH_SECOND_FRACTION``, default 0.05%), about 0.1% in all.

It prints a machine line, a line per phase and one summary line, and appends them to
tests/bench/results/scheduler.log (tests/bench/results.py), failed runs included.
"""

from __future__ import annotations

import asyncio
import copy
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.domain import points
from shared.domain.decisions import MemberContext
from shared.domain.due_rules import next_due, run_due
from shared.domain.membership import refresh_standing
from shared.domain.playbook import Playbook
from shared.playbook_file import load_playbook
from shared.process_heap import settle_heap
from shared.store import due_claims, rfm_edges
from shared.store.unit_of_work import Key, SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler, SchedulerReport
from tests.bench.harness import admin_sql, create_database, machine_line, scalar
from tests.bench.results import Transcript

AS_OF = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # on the hour: 12:00 in the shops' Asia/Shanghai
LATER = AS_OF + timedelta(hours=1)
SHOP_ZONE = "Asia/Shanghai"  # the default playbook's timezone; members carry none
BATCH_SIZE = 500
SAMPLE = 600  # members checked against the domain after the load

_AS_OF_SQL = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"


def _iso(expression: str) -> str:
    """SQL for ``datetime.isoformat()`` of a whole-second UTC timestamptz (NULL stays NULL)."""
    return f"to_char(({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"+00:00\"')"


def _seed_sql(members: int, shops: int, due_every: int, second_every: int) -> str:
    """Raw per-member facts: shop, group, join time, one or two payments and their amounts.

    Groups: ``due`` (one-month gift due at AS_OF), ``due2`` (due within the hour after it),
    ``rest`` (joined up to 450 days ago; whatever fell due by AS_OF was already handled).
    """
    return f"""
CREATE UNLOGGED TABLE bench_seed AS
WITH base AS (
    SELECT n,
           'shop-' || lpad((n % {shops})::text, 3, '0') AS shop_id,
           'm' || lpad(n::text, 9, '0') AS member_id,
           CASE WHEN n % {due_every} = 0 THEN 'due' WHEN n % {second_every} = 1 THEN 'due2' ELSE 'rest' END AS grp,
           random() AS r_join, random() AS r_early, random() AS r1, random() AS r2, random() AS r_two,
           round((20 + random() * 119.99)::numeric, 2) AS a1, round((20 + random() * 119.99)::numeric, 2) AS a2
    FROM generate_series(1, {members}) AS n
), joined AS (
    SELECT *, date_trunc('second', CASE grp
        WHEN 'due' THEN {_AS_OF_SQL} - interval '30 days' - r_join * interval '6 hours'
        WHEN 'due2' THEN {_AS_OF_SQL} - interval '30 days' + interval '1 minute' + r_join * interval '58 minutes'
        ELSE {_AS_OF_SQL} - interval '450 days' + r_join * interval '449 days' END) AS joined_at
    FROM base
), paid AS (
    SELECT *, date_trunc('second', CASE
        WHEN grp <> 'rest' AND r_early < 0.3 THEN joined_at + r1 * interval '1 hour'
        ELSE w + (0.05 + 0.9 * r1) * ({_AS_OF_SQL} - w) END) AS p1
    FROM (SELECT *, greatest(joined_at, {_AS_OF_SQL} - interval '329 days') AS w FROM joined) j
)
SELECT n, shop_id, member_id, grp, joined_at, p1, a1,
       CASE WHEN r_two < 0.5 THEN date_trunc('second', p1 + r2 * ({_AS_OF_SQL} - interval '1 minute' - p1)) END AS p2,
       CASE WHEN r_two < 0.5 THEN a2 END AS a2
FROM paid
"""


# Everything the schedule derives, per member, as of the member's cutoff: items due by then
# are marked done, the earliest one after it is next_due_at. ``rest`` members are settled up to
# AS_OF; the due groups have never been handled (cutoff just before their one-month gift).
_DERIVED_SQL = f"""
CREATE UNLOGGED TABLE bench_member AS
WITH s AS (
    SELECT *,
        CASE WHEN grp = 'rest' THEN {_AS_OF_SQL}
            ELSE joined_at + interval '30 days' - interval '1 second' END AS cutoff,
        joined_at + interval '30 days' AS m30,
        joined_at + interval '100 days' AS m100,
        ((((joined_at AT TIME ZONE '{SHOP_ZONE}')::date + interval '1 year')::date + time '10:00')
            AT TIME ZONE '{SHOP_ZONE}') AS ann1,
        ((((joined_at AT TIME ZONE '{SHOP_ZONE}')::date + interval '2 years')::date + time '10:00')
            AT TIME ZONE '{SHOP_ZONE}') AS ann2,
        ARRAY[
            p1 + interval '30 days',
            CASE WHEN p2 IS NULL OR p1 + interval '90 days' < p2 THEN p1 + interval '90 days' END,
            CASE WHEN p2 IS NULL OR p1 + interval '180 days' < p2 THEN p1 + interval '180 days' END,
            CASE WHEN p2 IS NULL OR p1 + interval '365 days' < p2 THEN p1 + interval '365 days' END,
            p2 + interval '90 days', p2 + interval '180 days', p2 + interval '365 days'
        ] AS transitions,
        coalesce(p2, p1) AS last_paid,
        CASE WHEN p1 <= {_AS_OF_SQL} - interval '8 days' THEN p1 + interval '4 days' END AS c1,
        CASE WHEN p2 <= {_AS_OF_SQL} - interval '8 days' THEN p2 + interval '4 days' END AS c2
    FROM bench_seed
), m AS MATERIALIZED (  -- computed once: inlined, the subqueries would run once per reference
    SELECT s.*,
        (SELECT max(t) FROM unnest(transitions) t WHERE t <= cutoff) AS lc_mark,
        (SELECT min(t) FROM unnest(transitions) t WHERE t > cutoff) AS lc_next,
        m30 <= cutoff AS gift30,
        m100 <= cutoff AS gift100,
        CASE WHEN ann1 <= cutoff THEN ann1 END AS ann_mark,
        CASE WHEN ann1 <= cutoff THEN ann2 ELSE ann1 END AS ann_next,
        p1 + interval '12 months' AS e1,
        p2 + interval '12 months' AS e2,
        CASE WHEN m100 <= cutoff THEN m100 + interval '12 months' END AS eg
    FROM s
), d AS (
    SELECT m.*,
        greatest(joined_at, last_paid, lc_mark) AS clock,
        greatest(joined_at, last_paid, c1, c2) AS last_event_at,
        greatest(CASE WHEN gift30 THEN m30 END, CASE WHEN gift100 THEN m100 END, ann_mark, lc_mark) AS last_mark,
        a1 + coalesce(a2, 0) AS net_spend,
        CASE WHEN p2 IS NULL THEN 1 ELSE 2 END AS paid_orders
    FROM m
), e AS (
    SELECT d.*,
        CASE WHEN last_mark IS NOT NULL THEN date_trunc('hour', last_mark)
            + CASE WHEN last_mark = date_trunc('hour', last_mark) THEN interval '0' ELSE interval '1 hour' END
        END AS scheduled_until
    FROM d
), f AS MATERIALIZED (
    SELECT e.*,
        floor(extract(epoch FROM greatest(last_event_at, scheduled_until) - joined_at) / 86400)::int AS membership_days,
        least(1500, floor(net_spend)::int) + least(500, 50 * paid_orders) AS purchase
    FROM e
), g AS (
    SELECT f.*, 100 + least(240, 10 * (membership_days / 30)) AS base FROM f
)
SELECT g.*,
    CASE
        WHEN clock - p1 < interval '30 days' THEN 'new'
        WHEN clock - last_paid < interval '90 days' THEN 'active'
        WHEN clock - last_paid < interval '180 days' THEN 'at_risk'
        WHEN clock - last_paid < interval '365 days' THEN 'dormant'
        ELSE 'churned' END AS stage,
    CASE
        WHEN clock - p1 < interval '30 days' THEN p1
        WHEN clock - last_paid < interval '90 days' THEN
            CASE WHEN p2 - p1 >= interval '90 days' THEN p2 ELSE p1 + interval '30 days' END
        WHEN clock - last_paid < interval '180 days' THEN last_paid + interval '90 days'
        WHEN clock - last_paid < interval '365 days' THEN last_paid + interval '180 days'
        ELSE last_paid + interval '365 days' END AS stage_since,
    CASE WHEN p2 - p1 >= interval '180 days' THEN 1 ELSE 0 END AS win_backs,
    purchase + base AS score,
    CASE WHEN purchase + base >= 2500 THEN 'diamond' WHEN purchase + base >= 1000 THEN 'gold'
         WHEN purchase + base >= 300 THEN 'silver' ELSE 'basic' END AS score_band,
    (SELECT jsonb_agg({_iso("x")} ORDER BY x) FROM (SELECT DISTINCT x FROM unnest(ARRAY[e1, e2, eg]) x
        WHERE x IS NOT NULL) lots) AS points_expiries,
    least(e1, e2, eg) AS points_next_expiry_at,
    floor(a1)::bigint + coalesce(floor(a2)::bigint, 0) + CASE WHEN gift100 THEN 100 ELSE 0 END AS points_balance,
    jsonb_strip_nulls(jsonb_build_object(
        'one_month_gift', CASE WHEN gift30 THEN {_iso("m30")} END,
        'hundred_day_gift', CASE WHEN gift100 THEN {_iso("m100")} END,
        'anniversary_gift', {_iso("ann_mark")},
        'lifecycle', {_iso("lc_mark")}
    )) AS schedule_marks,
    least(CASE WHEN NOT gift30 THEN m30 END, CASE WHEN NOT gift100 THEN m100 END, ann_next, lc_next,
          least(e1, e2, eg) - interval '14 days') AS next_due_at
FROM g
"""

_MEMBERS_SQL = """
INSERT INTO members (
    shop_id, member_id, joined_at, joined_by_event, tier, tier_since, net_spend, paid_orders, first_order_at,
    last_order_at, marketing_consent, consent_at, first_purchase_rewarded, last_event_at, repurchase_rewarded,
    stage, stage_since, win_backs, qualifying_net_spend, qualifying_orders, points_balance, points_next_expiry_at,
    points_expiries, score, score_band, score_parts, schedule_marks, scheduled_until, next_due_at)
SELECT shop_id, member_id, joined_at, true, 'member', joined_at, net_spend, paid_orders, p1,
    last_paid, true, joined_at, true, last_event_at, p2 IS NOT NULL,
    stage, stage_since, win_backs, net_spend, paid_orders, points_balance, points_next_expiry_at,
    points_expiries, score, score_band, jsonb_build_object('purchase', purchase, 'interaction', 0, 'base', base),
    schedule_marks, scheduled_until, next_due_at
FROM bench_member ORDER BY shop_id, member_id
"""

_PAYMENTS = "CROSS JOIN LATERAL (VALUES (1, p1, a1, c1), (2, p2, a2, c2)) AS o(k, paid_at, amount, completed_at)"

_ORDERS_SQL = f"""
INSERT INTO orders (
    shop_id, order_id, member_id, status, amount, paid_amount, counted, created_at, paid_at, completed_at,
    care_done, points_earned)
SELECT shop_id, 'o' || n || '-' || k, member_id,
    CASE WHEN o.completed_at IS NULL THEN 'paid' ELSE 'completed' END, amount, amount, true,
    paid_at - interval '2 minutes', paid_at, o.completed_at,
    CASE WHEN o.completed_at IS NULL THEN '{{}}'::text[] ELSE ARRAY['review_invitation'] END, floor(amount)::bigint
FROM bench_member {_PAYMENTS}
WHERE paid_at IS NOT NULL
"""

_LEDGER_SQL = f"""
INSERT INTO points_ledger (shop_id, member_id, entry_id, kind, points, at, expires_at)
SELECT shop_id, member_id, entry_id, kind, pts, at, expires_at FROM (
    SELECT shop_id, member_id, 'earn:o' || n || '-' || k AS entry_id, 'earn' AS kind, floor(amount)::bigint AS pts,
        paid_at AS at, paid_at + interval '12 months' AS expires_at
    FROM bench_member {_PAYMENTS}
    WHERE paid_at IS NOT NULL
    UNION ALL
    SELECT shop_id, member_id, 'hundred_day_gift:once', 'gift', 100, m100, eg FROM bench_member WHERE gift100
) lines ORDER BY at
"""


async def _load(
    engine: AsyncEngine, url: str, members: int, shops: int, due_fraction: float, second_fraction: float
) -> None:
    due_every = max(1, round(1 / due_fraction))
    second_every = max(2, round(1 / second_fraction))
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL TimeZone = 'UTC'"))  # interval arithmetic as in Python's UTC
        await connection.execute(text("SET LOCAL work_mem = '256MB'"))
        await connection.execute(text("SELECT setseed(0.2026)"))
        await connection.execute(text(_seed_sql(members, shops, due_every, second_every)))
        await connection.execute(text(_DERIVED_SQL))
        await connection.execute(text(_MEMBERS_SQL))
        await connection.execute(text(_ORDERS_SQL))
        await connection.execute(text(_LEDGER_SQL))
        await connection.execute(text("DROP TABLE bench_member, bench_seed"))
        # The daily RFM edges, as a run an hour earlier left them: the timed passes do not recompute them.
        shop_ids = sorted((await rfm_edges.shops_with_members(connection)).keys())
        await rfm_edges.compute_rfm_edges(connection, shop_ids, AS_OF - timedelta(hours=1))
    vacuum = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with vacuum.connect() as connection:
        await connection.execute(text("VACUUM ANALYZE"))
    await vacuum.dispose()


async def _contexts(engine: AsyncEngine, keys: list[Key]) -> dict[Key, MemberContext]:
    """The members as the scheduler loads them (rolled back: nothing is written)."""
    async with SqlUnitOfWork(engine) as uow:
        return (await uow.load_members(keys, ledgers=True, create=False)).contexts


async def _keys(engine: AsyncEngine, where: str, limit: int) -> list[Key]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(f"SELECT shop_id, member_id FROM members WHERE {where} ORDER BY random() LIMIT :limit"),
            {"as_of": AS_OF, "later": LATER, "limit": limit},
        )
        return [(row[0], row[1]) for row in rows]


_STANDING = (
    "stage",
    "stage_since",
    "win_backs",
    "score",
    "score_band",
    "score_parts",
    "qualifying_net_spend",
    "qualifying_orders",
)


def _check(contexts: dict[Key, MemberContext], playbook: Playbook) -> list[str]:
    """Where the loaded state differs from what the domain derives from it."""
    problems = []
    for key, context in contexts.items():
        member = context.member
        shop = playbook.for_shop(member.shop_id)
        expected = next_due(context, shop)
        if expected != member.next_due_at:
            problems.append(f"{key}: next_due_at {member.next_due_at} but plan() says {expected}")
        fresh = copy.deepcopy(context)
        refresh_standing(fresh, shop)
        for name in _STANDING:
            if getattr(fresh.member, name) != getattr(member, name):
                problems.append(f"{key}: {name} {getattr(member, name)!r} but {getattr(fresh.member, name)!r}")
        ledger = context.ledger or []
        if points.balance(ledger) != member.points_balance:
            problems.append(f"{key}: points_balance {member.points_balance} but ledger {points.balance(ledger)}")
        lots = sorted({lot.expires_at for lot in points.open_lots(ledger)})
        if lots != member.points_expiries:
            problems.append(f"{key}: points_expiries {member.points_expiries} but open lots {lots}")
    return problems


def _domain_seconds(contexts: dict[Key, MemberContext], playbook: Playbook) -> tuple[float, int]:
    """run_due alone (no SQL) on copies of due members: seconds per member, actions emitted."""
    copies = [copy.deepcopy(context) for context in contexts.values()]
    emitted = 0
    started = time.perf_counter()
    for context in copies:
        emitted += len(run_due(context, playbook.for_shop(context.member.shop_id), AS_OF))
    return (time.perf_counter() - started) / max(1, len(copies)), emitted


async def _pass(engine: AsyncEngine, playbook: Playbook, as_of: datetime) -> tuple[int, SchedulerReport, float]:
    async with engine.connect() as connection:
        due = await due_claims.count_due(connection, as_of)
    started = time.perf_counter()
    report = await Scheduler(SqlUnitOfWork.factory(engine), playbook, batch_size=BATCH_SIZE).run(as_of)
    return due, report, time.perf_counter() - started


def _describe(name: str, as_of: datetime, due: int, report: SchedulerReport, seconds: float) -> str:
    rules = ", ".join(f"{rule} {count:,}" for rule, count in sorted(report.by_rule.items())) or "none"
    return (
        f"{name} as_of {as_of.isoformat()}: {due:,} due, {report.members:,} handled in {report.batches} batches, "
        f"{report.actions:,} actions ({rules}), {report.failed_members} failed | {seconds:.2f} s wall, "
        f"{report.members / seconds:,.0f} due members/s, {report.actions / seconds:,.0f} actions/s"
    )


_TRANSCRIPT = Transcript("scheduler")
_say = _TRANSCRIPT.say


async def main() -> None:
    with _TRANSCRIPT:
        await _main()


async def _main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and errors only
    members = int(os.environ.get("BENCH_MEMBERS", "1000000"))
    due_fraction = float(os.environ.get("BENCH_DUE_FRACTION", "0.01"))
    second_fraction = float(os.environ.get("BENCH_SECOND_FRACTION", "0.0005"))
    shops = int(os.environ.get("BENCH_SHOPS", "10"))
    playbook = load_playbook()

    database = f"scheduler_bench_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(database)
    engine = create_async_engine(database_url)
    try:
        version = str(await scalar(engine, "SELECT version()")).split(",")[0]
        _say(machine_line(version))

        started = time.perf_counter()
        await _load(engine, database_url, members, shops, due_fraction, second_fraction)
        load_seconds = time.perf_counter() - started
        counts = [
            int(await scalar(engine, f"SELECT count(*) FROM {table}"))
            for table in ("members", "orders", "points_ledger")
        ]
        size = str(await scalar(engine, "SELECT pg_size_pretty(pg_database_size(current_database()))"))

        due_keys = await _keys(engine, "next_due_at <= :as_of", SAMPLE // 2)
        sample = due_keys + await _keys(engine, "next_due_at > :as_of AND next_due_at <= :later", SAMPLE // 6)
        sample += await _keys(engine, "next_due_at > :later", SAMPLE // 3)
        problems = _check(await _contexts(engine, sample), playbook)
        if problems:
            raise SystemExit("the loaded state is not what the domain derives:\n" + "\n".join(problems[:20]))
        domain_seconds, domain_actions = _domain_seconds(await _contexts(engine, due_keys), playbook)
        _say(
            f"load: {counts[0]:,} members in {shops} shops, {counts[1]:,} orders, {counts[2]:,} ledger lines, "
            f"{size} in {load_seconds:.1f} s (set-based SQL, RFM edges, VACUUM ANALYZE; not timed below) | "
            f"{len(sample)} sampled members match plan()/refresh_standing()/the ledger | run_due alone "
            f"{domain_seconds * 1e6:,.0f} µs per due member ({domain_actions} actions for {len(due_keys)})"
        )

        # The fixed parts of every pass, measured on their own.
        async with engine.connect() as connection:
            started = time.perf_counter()
            await rfm_edges.shops_with_members(connection)
            shops_seconds = time.perf_counter() - started
            started = time.perf_counter()
            await due_claims.count_due(connection, LATER + timedelta(days=1))
            count_seconds = time.perf_counter() - started
            started = time.perf_counter()
            rfm_shops = await rfm_edges.compute_rfm_edges(connection, [f"shop-{i:03d}" for i in range(shops)], LATER)
            rfm_seconds = time.perf_counter() - started
            await connection.rollback()
        _say(
            f"fixed costs: shops_with_members {shops_seconds * 1000:,.0f} ms (every pass) | RFM edge recompute for "
            f"{rfm_shops} shops {rfm_seconds:.2f} s (once a day per shop; rolled back here) | "
            f"count_due over a day's items {count_seconds * 1000:,.0f} ms"
        )

        settle_heap()  # as the engagement service, which runs the scheduler, does once it has started
        results = []
        for name, as_of in (("pass 1", AS_OF), ("pass 2 (again)", AS_OF), ("pass 3 (+1h)", LATER)):
            due, report, seconds = await _pass(engine, playbook, as_of)
            results.append((due, report, seconds))
            _say(_describe(name, as_of, due, report, seconds))
        left = int(await scalar(engine, "SELECT count(*) FROM members WHERE next_due_at <= :at", {"at": LATER}))
        logged = int(await scalar(engine, "SELECT count(*) FROM actions"))
        queued = int(await scalar(engine, "SELECT count(*) FROM outbox"))
        if left or logged != queued or logged != sum(report.actions for _, report, _ in results):
            raise SystemExit(f"unexpected end state: {left} still due, {logged} actions logged, {queued} queued")
    finally:
        await engine.dispose()
        await admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    (due1, first, s1), (_, second, s2), (due3, third, s3) = results
    _say(
        f"scheduler bench: {members:,} members, {due1:,} due ({due1 / members:.2%}): one pass {s1:.2f} s, "
        f"{first.members / s1:,.0f} due members/s, {first.actions / s1:,.0f} actions/s | same as_of again "
        f"{s2 * 1000:,.0f} ms ({second.members} due) | +1h: {due3:,} due ({due3 / members:.2%}) in {s3:.2f} s, "
        f"{third.members / s3:,.0f} due members/s | load {load_seconds:.0f} s, batch {BATCH_SIZE}"
    )


if __name__ == "__main__":
    asyncio.run(main())
