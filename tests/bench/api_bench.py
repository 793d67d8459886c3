"""API read benchmark: ``make bench-api`` (``BENCH_API_MEMBERS`` members, default 100,000).

Loads a fresh database, migrated by Alembic, with set-based SQL: members in
``BENCH_API_SHOPS`` shops (default 10) who joined over the past two years, 0 to 12 paid
orders each (about 2 on average, a third with none), the points ledger those orders
and the hundred-day gift wrote (earn, gift and expiry lines), the actions decided for
them (four care messages per order, first-purchase, one-month and hundred-day gifts;
about 11 per member, stored in time order as the event path writes them), one
notification outcome per action and the shops' RFM edges. The load is not timed.

Then it starts the API as its own process (``python -m services.api`` with its
environment settings) and drives it with ``wrk`` (2 threads, ``BENCH_API_CONNECTIONS``
connections, default 50), whose Lua script picks a random existing member for every
request. Each route gets a warm-up (``BENCH_API_WARMUP`` seconds, default 5) and then a
measured run (``BENCH_API_DURATION`` seconds, default 15): the member status, the
member's actions, notifications and points ledger (first pages, default limit), and
``/healthz`` as the ceiling of the server and framework alone. For each it prints
requests/s, p50, p90, p99, the CPU time per request of the API process and of its
PostgreSQL backends (figures that move less than throughput when other work shares the
cores) and how busy the whole machine was; then one summary line.
The raw output goes to ``tests/bench/results/api.log``.

``BENCH_API_ROUTES`` (comma-separated: status, actions, notifications, ledger, healthz)
runs a subset. ``BENCH_API_DATABASE`` names a database to keep and reuse between runs
(loaded the first time), for alternating runs of two versions of the code;
``BENCH_API_SOURCE`` is the directory the API is started from (default: this checkout).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.store import rfm_edges
from tests.bench import results
from tests.bench.harness import (
    ADMIN_URL,
    Api,
    admin_sql,
    busy_share,
    create_database,
    database_url_of,
    machine_line,
    machine_ticks,
    scalar,
)
from tests.support import ROOT

AS_OF = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
TOKEN = "bench-api-token-" + uuid.uuid4().hex
THREADS = 2

ROUTES = {
    "status": "",
    "actions": "/actions",
    "notifications": "/notifications",
    "ledger": "/points/ledger",
    "healthz": None,  # /healthz: no member in the path
}

_AS_OF_SQL = f"TIMESTAMPTZ '{AS_OF.isoformat()}'"


def _json_time(expression: str) -> str:
    """SQL for the JSON text pydantic gives a whole-second UTC datetime (``2025-03-06T10:00:00Z``)."""
    return f"to_char(({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


def _seed_sql(members: int, shops: int) -> list[str]:
    """Members and their paid orders: the facts everything else is derived from."""
    return [
        f"""
CREATE UNLOGGED TABLE bench_seed AS
SELECT n,
       'shop-' || lpad((n % {shops})::text, 3, '0') AS shop_id,
       'm' || lpad(n::text, 9, '0') AS member_id,
       date_trunc('second', {_AS_OF_SQL} - interval '730 days' + random() * interval '720 days') AS joined_at,
       least(12, floor(-ln(1 - random()) * 2.6))::int AS k
FROM generate_series(1, {members}) AS n
""",
        f"""
CREATE UNLOGGED TABLE bench_order AS
SELECT s.n, s.shop_id, s.member_id, i,
       date_trunc('second', s.joined_at + ({_AS_OF_SQL} - s.joined_at) * ((i - 1 + random()) / s.k)) AS paid_at,
       round((20 + random() * 280)::numeric, 2) AS amount
FROM bench_seed s CROSS JOIN LATERAL generate_series(1, s.k) AS i
""",
    ]


_LEDGER_SQL = f"""
INSERT INTO points_ledger (shop_id, member_id, entry_id, kind, points, at, expires_at, created_at)
SELECT shop_id, member_id, entry_id, kind, points, at, expires_at, at + interval '400 milliseconds' FROM (
    SELECT shop_id, member_id, 'earn:o' || n || '-' || i AS entry_id, 'earn' AS kind, floor(amount)::bigint AS points,
           paid_at AS at, paid_at + interval '12 months' AS expires_at
    FROM bench_order
    UNION ALL
    SELECT shop_id, member_id, 'hundred_day_gift:once', 'gift', 100, joined_at + interval '100 days',
           joined_at + interval '100 days 12 months'
    FROM bench_seed WHERE joined_at + interval '100 days' <= {_AS_OF_SQL}
    UNION ALL
    SELECT shop_id, member_id, 'expire:o' || n || '-' || i, 'expire', -floor(amount)::bigint,
           paid_at + interval '12 months', NULL
    FROM bench_order WHERE paid_at + interval '12 months' <= {_AS_OF_SQL}
    UNION ALL
    SELECT shop_id, member_id, 'expire:hundred_day_gift', 'expire', -100, joined_at + interval '100 days 12 months',
           NULL
    FROM bench_seed WHERE joined_at + interval '100 days 12 months' <= {_AS_OF_SQL}
) lines ORDER BY at
"""

_MEMBERS_SQL = f"""
INSERT INTO members (
    shop_id, member_id, joined_at, joined_by_event, tier, tier_since, net_spend, paid_orders, first_order_at,
    last_order_at, marketing_consent, consent_at, first_purchase_rewarded, last_event_at, repurchase_rewarded,
    stage, stage_since, win_backs, qualifying_net_spend, qualifying_orders, points_balance, points_next_expiry_at,
    score, score_band, score_parts, scheduled_until, next_due_at)
SELECT s.shop_id, s.member_id, s.joined_at, true,
       CASE WHEN o.net >= 1000 OR s.k >= 10 THEN 'supreme' WHEN o.net >= 500 OR s.k >= 5 THEN 'vip'
            WHEN o.net >= 300 OR s.k >= 3 THEN 'advanced' ELSE 'member' END,
       coalesce(o.last_paid, s.joined_at), coalesce(o.net, 0), s.k, o.first_paid, o.last_paid, true, s.joined_at,
       s.k >= 1, greatest(s.joined_at, o.last_paid), s.k >= 2,
       CASE WHEN o.last_paid IS NULL THEN 'prospect'
            WHEN {_AS_OF_SQL} - o.first_paid < interval '30 days' THEN 'new'
            WHEN {_AS_OF_SQL} - o.last_paid < interval '90 days' THEN 'active'
            WHEN {_AS_OF_SQL} - o.last_paid < interval '180 days' THEN 'at_risk'
            WHEN {_AS_OF_SQL} - o.last_paid < interval '365 days' THEN 'dormant' ELSE 'churned' END,
       CASE WHEN o.last_paid IS NULL THEN s.joined_at
            WHEN {_AS_OF_SQL} - o.last_paid < interval '90 days' THEN o.last_paid
            WHEN {_AS_OF_SQL} - o.last_paid < interval '180 days' THEN o.last_paid + interval '90 days'
            WHEN {_AS_OF_SQL} - o.last_paid < interval '365 days' THEN o.last_paid + interval '180 days'
            ELSE o.last_paid + interval '365 days' END,
       0, coalesce(o.q_net, 0), coalesce(o.q_orders, 0), coalesce(l.balance, 0), l.next_expiry,
       least(1500, floor(coalesce(o.net, 0))::int) + least(500, 50 * s.k) + 200,
       CASE WHEN least(1500, floor(coalesce(o.net, 0))::int) + least(500, 50 * s.k) + 200 >= 1000 THEN 'gold'
            WHEN least(1500, floor(coalesce(o.net, 0))::int) + least(500, 50 * s.k) + 200 >= 300 THEN 'silver'
            ELSE 'basic' END,
       jsonb_build_object('purchase', least(1500, floor(coalesce(o.net, 0))::int) + least(500, 50 * s.k),
                          'interaction', 0, 'base', 200),
       {_AS_OF_SQL}, {_AS_OF_SQL} + interval '1 day'
FROM bench_seed s
LEFT JOIN (
    SELECT n, sum(amount) AS net, min(paid_at) AS first_paid, max(paid_at) AS last_paid,
           sum(amount) FILTER (WHERE paid_at > {_AS_OF_SQL} - interval '365 days') AS q_net,
           count(*) FILTER (WHERE paid_at > {_AS_OF_SQL} - interval '365 days') AS q_orders
    FROM bench_order GROUP BY n
) o USING (n)
LEFT JOIN (
    SELECT shop_id, member_id, sum(points) AS balance,
           min(expires_at) FILTER (WHERE expires_at > {_AS_OF_SQL}) AS next_expiry
    FROM points_ledger GROUP BY shop_id, member_id
) l USING (shop_id, member_id)
ORDER BY s.shop_id, s.member_id
"""

_ORDERS_SQL = """
INSERT INTO orders (shop_id, order_id, member_id, status, amount, paid_amount, counted, created_at, paid_at,
                    completed_at, points_earned)
SELECT shop_id, 'o' || n || '-' || i, member_id, 'completed', amount, amount, true, paid_at - interval '2 minutes',
       paid_at, paid_at + interval '4 days', floor(amount)::bigint
FROM bench_order
"""


def _event(rule: str, event_type: str, at: str, order: str) -> str:
    """One care action triggered by an order's event, as its columns and contract document."""
    return f"""
    SELECT shop_id, member_id, '{rule}' AS rule, 'care' AS category, {at} AS occurred_at,
           jsonb_build_object('event_id', 'evt-{rule}-' || {order}, 'event_type', '{event_type}') AS trigger,
           jsonb_build_object('template', '{rule}', 'variables', jsonb_build_object('order_id', {order})) AS message,
           NULL::jsonb AS incentive, {order} AS key
    FROM bench_order"""


def _gift(rule: str, at: str, incentive: str, where: str = "true") -> str:
    """One scheduled incentive action per member, with its incentive document."""
    return f"""
    SELECT shop_id, member_id, '{rule}', 'incentive', {at},
           jsonb_build_object('schedule', '{rule}', 'due_at', {_json_time(at)}),
           jsonb_build_object('template', '{rule}', 'variables', '{{}}'::jsonb),
           {incentive}, member_id
    FROM bench_seed WHERE ({at}) <= {_AS_OF_SQL} AND {where}"""


def _coupon(value: str, min_spend: str, at: str) -> str:
    expires = _json_time(at + " + interval '30 days'")
    return (
        f"jsonb_build_object('kind', 'coupon', 'value', '{value}', 'min_spend', '{min_spend}', "
        f"'code', NULL, 'expires_at', {expires})"
    )


_POINTS_GIFT = "jsonb_build_object('kind', 'points', 'value', NULL, 'min_spend', NULL, 'code', NULL, "
_POINTS_GIFT += "'expires_at', NULL, 'points', 100)"

_ACTIONS_SQL = f"""
CREATE UNLOGGED TABLE bench_action AS
SELECT a.*, 'act-' || md5(shop_id || member_id || rule || key) AS action_id FROM (
    {_event("payment_confirmation", "order.paid", "paid_at", "('o' || n || '-' || i)")}
    UNION ALL
    {_event("shipped_notice", "shipment.shipped", "paid_at + interval '1 day'", "('o' || n || '-' || i)")}
    UNION ALL
    {_event("delivered_notice", "shipment.delivered", "paid_at + interval '3 days'", "('o' || n || '-' || i)")}
    UNION ALL
    SELECT shop_id, member_id, 'review_invitation', 'care', paid_at + interval '7 days',
           jsonb_build_object('schedule', 'review_invitation', 'due_at', {_json_time("paid_at + interval '7 days'")}),
           jsonb_build_object('template', 'review_invitation', 'variables',
                              jsonb_build_object('order_id', 'o' || n || '-' || i)),
           NULL::jsonb, 'o' || n || '-' || i
    FROM bench_order
    UNION ALL
    SELECT shop_id, member_id, 'first_purchase_gift', 'incentive', paid_at,
           jsonb_build_object('event_id', 'evt-paid-o' || n || '-1', 'event_type', 'order.paid'),
           jsonb_build_object('template', 'first_purchase_gift', 'variables',
                              jsonb_build_object('order_id', 'o' || n || '-1')),
           {_coupon("10.00", "99.00", "paid_at")}, member_id
    FROM bench_order WHERE i = 1
    UNION ALL
    {_gift("one_month_gift", "joined_at + interval '30 days'", _coupon("10.00", "99.00", "joined_at"))}
    UNION ALL
    {_gift("hundred_day_gift", "joined_at + interval '100 days'", _POINTS_GIFT)}
) a WHERE occurred_at <= {_AS_OF_SQL}
"""

_INSERT_ACTIONS_SQL = f"""
INSERT INTO actions (action_id, shop_id, member_id, rule, category, occurred_at, created_at, payload)
SELECT action_id, shop_id, member_id, rule, category, occurred_at, occurred_at + interval '1 second',
       jsonb_build_object(
           'action_id', action_id, 'shop_id', shop_id, 'member_id', member_id, 'rule', rule, 'category', category,
           'trigger', trigger, 'occurred_at', {_json_time("occurred_at")},
           'created_at', {_json_time("occurred_at + interval '1 second'")}, 'message', message,
           'incentive', incentive)
FROM bench_action ORDER BY occurred_at
"""

_NOTIFICATIONS_SQL = f"""
INSERT INTO notifications (notification_id, action_id, channel, shop_id, member_id, status, reason, at, payload)
SELECT 'n-' || action_id || '-log', action_id, 'log', shop_id, member_id, status, reason, at,
       jsonb_build_object('notification_id', 'n-' || action_id || '-log', 'action_id', action_id,
                          'shop_id', shop_id, 'member_id', member_id, 'channel', 'log', 'status', status,
                          'reason', reason, 'at', {_json_time("at")})
FROM (
    SELECT *, occurred_at + interval '2 seconds' AS at,
           CASE WHEN category = 'incentive' AND random() < 0.2 THEN 'suppressed' ELSE 'sent' END AS status,
           CASE WHEN category = 'incentive' AND random() < 0.2 THEN 'frequency_cap' END AS reason
    FROM bench_action
) n ORDER BY at
"""


async def _database_exists(name: str) -> bool:
    engine = create_async_engine(ADMIN_URL)
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
    finally:
        await engine.dispose()
    return found is not None


async def _load(engine: AsyncEngine, url: str, members: int, shops: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL TimeZone = 'UTC'"))
        await connection.execute(text("SET LOCAL work_mem = '256MB'"))
        await connection.execute(text("SELECT setseed(0.2026)"))
        for statement in (
            *_seed_sql(members, shops),
            _LEDGER_SQL,
            _MEMBERS_SQL,
            _ORDERS_SQL,
            _ACTIONS_SQL,
            _INSERT_ACTIONS_SQL,
            _NOTIFICATIONS_SQL,
        ):
            await connection.execute(text(statement))
        await connection.execute(text("DROP TABLE bench_action, bench_order, bench_seed"))
        shop_ids = sorted((await rfm_edges.shops_with_members(connection)).keys())
        await rfm_edges.compute_rfm_edges(connection, shop_ids, AS_OF - timedelta(hours=1))
    vacuum = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with vacuum.connect() as connection:
        await connection.execute(text("VACUUM ANALYZE"))
    await vacuum.dispose()


# wrk's Lua: every request names a random member of the loaded population; done() prints one JSON line.
_LUA = """
local members, shops, suffix = %(members)d, %(shops)d, %(suffix)s
local threads = {}
function setup(thread)
  thread:set("index", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() * 1000 + (index or 0) * 7919)
end
function request()
  if suffix == nil then
    return wrk.format("GET", "/healthz")
  end
  local n = math.random(1, members)
  return wrk.format("GET", string.format("/v1/shops/shop-%%03d/members/m%%09d%%s", n %% shops, n, suffix))
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, '
      .. '"non_2xx": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True, slots=True)
class RouteResult:
    name: str
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_us_per_request: float
    backend_us_per_request: float
    machine_busy: float
    raw: str


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_cpu_seconds(database: str) -> dict[int, float]:
    """CPU time so far of each PostgreSQL backend connected to ``database`` (only the API connects to it)."""
    marker = b"postgres: ", f" {database} ".encode()
    seconds = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                title = cmdline.read()
            if title.startswith(marker[0]) and marker[1] in title:
                seconds[int(entry)] = _cpu_seconds(int(entry))
        except OSError:
            continue  # the process ended meanwhile
    return seconds


def _wrk(script: Path, url: str, seconds: float, connections: int) -> tuple[str, dict[str, Any]]:
    command_line = [
        "wrk",
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        "-H",
        f"Authorization: Bearer {TOKEN}",
        url,
    ]
    done = subprocess.run(command_line, capture_output=True, text=True, check=True)
    line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    figures: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    return done.stdout, figures


def _run_route(
    name: str,
    base_url: str,
    pid: int,
    database: str,
    members: int,
    shops: int,
    workdir: Path,
    warmup: float,
    duration: float,
    connections: int,
) -> RouteResult:
    suffix = ROUTES[name]
    script = workdir / f"{name}.lua"
    script.write_text(
        _LUA % {"members": members, "shops": shops, "suffix": "nil" if suffix is None else json.dumps(suffix)}
    )
    url = base_url + ("/healthz" if suffix is None else "/")
    if warmup > 0:
        _wrk(script, url, warmup, connections)
    cpu_before, backends_before, machine_before = _cpu_seconds(pid), _backend_cpu_seconds(database), machine_ticks()
    raw, figures = _wrk(script, url, duration, connections)
    cpu = _cpu_seconds(pid) - cpu_before
    backends = sum(
        spent - backends_before.get(backend, 0.0) for backend, spent in _backend_cpu_seconds(database).items()
    )
    machine_after = machine_ticks()
    busy = busy_share(machine_before, machine_after)
    if figures["non_2xx"] or figures["socket_errors"]:
        raise SystemExit(f"{name}: {figures['non_2xx']} non-2xx answers, {figures['socket_errors']} socket errors")
    requests = int(figures["requests"])
    return RouteResult(
        name=name,
        requests_per_s=requests / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        cpu_us_per_request=cpu / max(1, requests) * 1e6,
        backend_us_per_request=backends / max(1, requests) * 1e6,
        machine_busy=busy,
        raw=raw,
    )


def _check_routes(api: Api, routes: list[str]) -> None:
    """One request per route on a loaded member, so a broken route fails before it is timed."""
    for name in routes:
        suffix = ROUTES[name]
        path = "/healthz" if suffix is None else f"/v1/shops/shop-001/members/m000000001{suffix}"
        status, body = api.get(path)
        if status != 200 or not isinstance(json.loads(body), dict):
            raise SystemExit(f"{name}: {path} answered {status}")


def _source() -> Path:
    """The checkout the API is started from: ``BENCH_API_SOURCE``, or this one."""
    return Path(os.environ.get("BENCH_API_SOURCE", str(ROOT))).resolve()


def _serve_and_measure(
    database_url: str, members: int, shops: int, routes: list[str], out: list[str]
) -> list[RouteResult]:
    database = database_url.rsplit("/", 1)[1]
    source = _source()
    warmup = float(os.environ.get("BENCH_API_WARMUP", "5"))
    duration = float(os.environ.get("BENCH_API_DURATION", "15"))
    connections = int(os.environ.get("BENCH_API_CONNECTIONS", "50"))
    with tempfile.TemporaryDirectory(prefix="api-bench-") as directory:
        workdir = Path(directory)
        api = Api(source, database_url, TOKEN, workdir / "api.log")
        try:
            api.start()
            _check_routes(api, routes)
            out.append(
                f"api: python -m services.api from {source} (pid {api.pid}); wrk {THREADS} threads, "
                f"{connections} connections, {warmup:g} s warm-up then {duration:g} s per route, a random member "
                f"of {members:,} per request"
            )
            print(out[-1], flush=True)
            measured = []
            for name in routes:
                result = _run_route(
                    name, api.base_url, api.pid, database, members, shops, workdir, warmup, duration, connections
                )
                measured.append(result)
                out.append(
                    f"{name:<14} {result.requests_per_s:>9,.0f} req/s | p50 {result.p50_ms:6.2f} ms | "
                    f"p90 {result.p90_ms:6.2f} ms | p99 {result.p99_ms:6.2f} ms | "
                    f"CPU per request: API {result.cpu_us_per_request:,.0f} µs, its PostgreSQL backends "
                    f"{result.backend_us_per_request:,.0f} µs | machine busy {result.machine_busy:.0%}"
                )
                print(out[-1], flush=True)
        finally:
            api.stop()
    return measured


async def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    members = int(os.environ.get("BENCH_API_MEMBERS", "100000"))
    shops = int(os.environ.get("BENCH_API_SHOPS", "10"))
    routes = [name.strip() for name in os.environ.get("BENCH_API_ROUTES", ",".join(ROUTES)).split(",") if name]
    unknown = [name for name in routes if name not in ROUTES]
    if unknown:
        raise SystemExit(f"unknown routes in BENCH_API_ROUTES: {', '.join(unknown)} (known: {', '.join(ROUTES)})")
    kept = os.environ.get("BENCH_API_DATABASE")
    database = kept or f"api_bench_{uuid.uuid4().hex[:8]}"
    database_url = database_url_of(database)
    fresh = not (kept and await _database_exists(kept))
    if fresh:
        await create_database(database)
    engine = create_async_engine(database_url)
    out: list[str] = []
    try:
        version = str(await scalar(engine, "SELECT version()")).split(",")[0]
        out.append(machine_line(version))
        print(out[-1], flush=True)
        started = time.perf_counter()
        if fresh:
            await _load(engine, database_url, members, shops)
        elif int(await scalar(engine, "SELECT count(*) FROM members")) != members:
            raise SystemExit(f"database {database} does not hold {members:,} members: drop it or name another")
        load_seconds = time.perf_counter() - started
        counts = [
            int(await scalar(engine, f"SELECT count(*) FROM {table}"))
            for table in ("members", "orders", "points_ledger", "actions", "notifications")
        ]
        size = str(await scalar(engine, "SELECT pg_size_pretty(pg_database_size(current_database()))"))
        how = f"loaded in {load_seconds:.0f} s (not timed below)" if fresh else "reused"
        out.append(
            f"database {database}: {counts[0]:,} members in {shops} shops, {counts[1]:,} orders, "
            f"{counts[2]:,} ledger lines, {counts[3]:,} actions, {counts[4]:,} notifications, {size}; {how}"
        )
        print(out[-1], flush=True)
        await engine.dispose()
        measured = await asyncio.to_thread(_serve_and_measure, database_url, members, shops, routes, out)
    finally:
        await engine.dispose()
        if not kept:
            await admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    summary = "api bench: " + " | ".join(
        f"{result.name} {result.requests_per_s:,.0f} req/s p99 {result.p99_ms:.1f} ms" for result in measured
    )
    out.append(summary)
    print(summary, flush=True)
    raw = "\n".join(f"--- wrk: {result.name} ---\n{result.raw.rstrip()}" for result in measured)
    results.record("api", "\n".join(out) + "\n" + raw, service_root=_source())


if __name__ == "__main__":
    asyncio.run(main())
