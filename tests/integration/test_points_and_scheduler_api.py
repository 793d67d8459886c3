"""Points redemption, the ledger listing and the scheduler route, over HTTP on the real database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from shared.db.schema import members, outbox, points_ledger, rfm_edges
from shared.domain.rfm import quintile_edges
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.builders import insert_rows, joined_member_row, member_row, member_with_points_rows
from tests.support import ROOT, api_in_process

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
SHOP = "shop-1"
BASE = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(settings, headers=AUTH) as http:
        yield http


def _path(member: str, suffix: str = "") -> str:
    return f"/v1/shops/{SHOP}/members/{member}{suffix}"


async def _redeem(client: httpx.AsyncClient, member: str, points: int, key: str, **extra: Any) -> httpx.Response:
    return await client.post(_path(member, "/points/redeem"), json={"points": points, "idempotency_key": key, **extra})


async def test_a_redemption_is_booked_once_per_idempotency_key(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, *member_with_points_rows("m-1", 100, BASE))
    first = await _redeem(client, "m-1", 30, "basket-7", at=(BASE + timedelta(days=1)).isoformat())
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["balance"], body["replayed"]) == (70, False)
    assert {k: body["entry"][k] for k in ("entry_id", "kind", "points", "shortfall")} == {
        "entry_id": "redeem:basket-7",
        "kind": "redeem",
        "points": -30,
        "shortfall": 0,
    }
    assert datetime.fromisoformat(body["entry"]["at"]) == BASE + timedelta(days=1)

    again = await _redeem(client, "m-1", 30, "basket-7")
    assert again.status_code == 200
    assert (again.json()["balance"], again.json()["replayed"]) == (70, True)
    assert again.json()["entry"]["entry_id"] == "redeem:basket-7"

    status = (await client.get(_path("m-1"))).json()
    assert status["points"]["balance"] == 70
    ledger = (await client.get(_path("m-1", "/points/ledger"))).json()["items"]
    assert [(line["entry_id"], line["points"]) for line in ledger] == [("redeem:basket-7", -30), ("earn:o-1", 100)]
    assert sum(line["points"] for line in ledger) == 70


async def test_short_balances_reused_keys_and_unknown_members_are_refused_with_json_errors(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(engine, *member_with_points_rows("m-1", 50, BASE))
    short = await _redeem(client, "m-1", 51, "k-1")
    assert short.status_code == 409
    assert short.json()["error"]["code"] == "insufficient_points"
    assert (await _redeem(client, "m-1", 20, "k-2")).status_code == 200
    reused = await _redeem(client, "m-1", 25, "k-2")
    assert (reused.status_code, reused.json()["error"]["code"]) == (409, "idempotency_key_reused")
    unknown = await _redeem(client, "m-nobody", 1, "k-3")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "member_not_found")
    for body in ({"points": 0, "idempotency_key": "k"}, {"points": 5}, {"points": 5, "idempotency_key": ""}):
        invalid = await client.post(_path("m-1", "/points/redeem"), json=body)
        assert invalid.status_code == 422, body
        assert set(invalid.json()) == {"error"}
    naive = await _redeem(client, "m-1", 1, "k-4", at="2025-03-02T10:00:00")
    assert naive.status_code == 422
    unauthorized = await client.post(
        _path("m-1", "/points/redeem"), json={"points": 1, "idempotency_key": "k-5"}, headers={"Authorization": ""}
    )
    assert unauthorized.status_code == 401
    assert (await client.get(_path("m-1"))).json()["points"]["balance"] == 30


async def test_concurrent_redemptions_never_take_the_balance_below_zero(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(engine, *member_with_points_rows("m-1", 100, BASE))
    responses = await asyncio.gather(*(_redeem(client, "m-1", 20, f"k-{n}") for n in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [409] * 3
    async with engine.connect() as connection:
        balance = await connection.scalar(select(members.c.points_balance).where(members.c.member_id == "m-1"))
        booked = await connection.scalar(select(func.sum(points_ledger.c.points)))
    assert balance == booked == 0


async def test_the_ledger_pages_newest_first_and_404s_for_unknown_members(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(engine, *member_with_points_rows("m-1", 100, BASE))
    for n in range(4):
        assert (await _redeem(client, "m-1", 10, f"k-{n}")).status_code == 200
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(_path("m-1", "/points/ledger"), params=params)).json()
        seen += [line["entry_id"] for line in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["redeem:k-3", "redeem:k-2", "redeem:k-1", "redeem:k-0", "earn:o-1"]
    missing = await client.get(_path("m-nobody", "/points/ledger"))
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "member_not_found")
    bad = await client.get(_path("m-1", "/points/ledger"), params={"cursor": "not-a-cursor"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_cursor")


async def test_the_scheduler_route_runs_what_is_due_once_and_needs_a_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(engine, (members, joined_member_row("m-1", BASE)))
    route = "/v1/admin/scheduler/run"
    as_of = (BASE + timedelta(days=31)).isoformat()
    assert (
        await client.post(route, json={"as_of": as_of}, headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    naive = await client.post(route, json={"as_of": "2025-04-01T00:00:00"})
    assert (naive.status_code, set(naive.json())) == (422, {"error"})

    first = await client.post(route, json={"as_of": as_of})
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["members"], report["actions"], report["actions_by_rule"]) == (1, 1, {"one_month_gift": 1})
    assert report["failed_members"] == 0
    again = (await client.post(route, json={"as_of": as_of})).json()
    assert (again["members"], again["actions"]) == (0, 0)

    actions = (await client.get(_path("m-1", "/actions"))).json()["items"]
    assert [(a["rule"], a["trigger"]["schedule"]) for a in actions] == [("one_month_gift", "one_month_gift")]
    assert datetime.fromisoformat(actions[0]["trigger"]["due_at"]) == BASE + timedelta(days=30)
    async with engine.connect() as connection:
        queued = await connection.scalar(select(func.count()).select_from(outbox))
        due = await connection.scalar(select(members.c.next_due_at).where(members.c.member_id == "m-1"))
    assert queued == 1  # the action leaves through the outbox, like every other
    # next: "joined in the last 90 days" ends (the tags are evaluated again), then the hundred-day gift
    assert due == BASE + timedelta(days=90)
    status = (await client.get(_path("m-1"))).json()
    assert datetime.fromisoformat(status["as_of"]) == BASE + timedelta(days=31)


async def test_a_run_computes_each_shops_rfm_edges_and_the_status_scores_against_them(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Ten buyers in shop-1: buyer n paid n times, n x 100.00 in all, last n days before the run.
    as_of = BASE + timedelta(days=30)
    buyers = [
        member_row(
            f"b-{n}",
            joined_at=BASE,
            paid_orders=n,
            net_spend=100 * n,
            first_order_at=BASE,
            last_order_at=as_of - timedelta(days=n),
            last_event_at=as_of - timedelta(days=n),
        )
        for n in range(1, 11)
    ]
    no_buyer = member_row("p-1", shop="shop-quiet", joined_at=BASE)
    await insert_rows(engine, *((members, row) for row in [*buyers, no_buyer]))
    report = (await client.post("/v1/admin/scheduler/run", json={"as_of": as_of.isoformat()})).json()
    assert report["rfm_shops"] == 2

    async with engine.connect() as connection:
        rows = {row.shop_id: row for row in await connection.execute(select(rfm_edges))}
    expected = quintile_edges([float(n) for n in range(1, 11)])  # days, orders and hundreds alike
    assert rows[SHOP].buyers == 10
    assert rows[SHOP].recency_days == pytest.approx(list(expected))
    assert rows[SHOP].frequency == pytest.approx(list(expected))
    assert rows[SHOP].monetary == pytest.approx([100 * edge for edge in expected])
    assert (rows["shop-quiet"].buyers, rows["shop-quiet"].recency_days) == (0, [])

    best = (await client.get(_path("b-10"))).json()["rfm"]
    worst = (await client.get(_path("b-1"))).json()["rfm"]
    # b-10 bought most and most often, but longest ago; b-1 the opposite.
    assert (best["r"], best["f"], best["m"], best["segment"]) == (1, 5, 5, "at_risk")
    assert (worst["r"], worst["f"], worst["m"], worst["segment"]) == (5, 1, 1, "new")
    assert datetime.fromisoformat(best["as_of"]) == as_of
    quiet = await client.get("/v1/shops/shop-quiet/members/p-1")
    assert quiet.json()["rfm"] is None
    # Edges are kept for a day of business time: a run an hour later recomputes nothing.
    later = await client.post("/v1/admin/scheduler/run", json={"as_of": (as_of + timedelta(hours=1)).isoformat()})
    assert later.json()["rfm_shops"] == 0


async def test_the_command_line_runs_the_scheduler_and_prints_only_its_report(
    engine: AsyncEngine, service_env: dict[str, str]
) -> None:
    await insert_rows(engine, (members, joined_member_row("m-cli", BASE)))
    command = [sys.executable, "-m", "services.scheduler", "--as-of", (BASE + timedelta(days=31)).isoformat()]
    env = {**os.environ, **service_env}
    done = await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # the logs go to stderr
    assert (report["members"], report["actions_by_rule"]) == (1, {"one_month_gift": 1})
    assert b"scheduler.run" in done.stderr

    bad = [sys.executable, "-m", "services.scheduler", "--as-of", "2025-04-01T00:00:00"]
    refused = await asyncio.to_thread(subprocess.run, bad, cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert refused.returncode == 2
    assert b"needs a UTC offset" in refused.stderr


async def test_the_command_line_refuses_an_as_of_outside_the_business_time_bounds(
    engine: AsyncEngine, service_env: dict[str, str]
) -> None:
    await insert_rows(engine, (members, joined_member_row("m-cli", BASE)))
    env = {**os.environ, **service_env}

    async def run(*arguments: str) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "services.scheduler", *arguments]
        return await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=env, capture_output=True, timeout=60)

    outside = ("9525-01-01T00:00:00Z", "0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-05:00", "1999-12-31T23:00:00Z")
    refused = await asyncio.gather(*(run("--as-of", as_of) for as_of in outside))
    for as_of, done in zip(outside, refused, strict=True):
        assert done.returncode == 2, (as_of, done.stderr)
        assert done.stdout == b""  # no report: nothing ran
        message = done.stderr.decode().strip().splitlines()[-1]
        assert message == (
            "python -m services.scheduler: error: argument --as-of: must lie between "
            "2000-01-01T00:00:00+00:00 and 1 day after the receiving service's clock"
        ), as_of
    for bad_size in ("0", "-3", "many"):
        done = await run("--batch-size", bad_size)
        assert done.returncode == 2
        assert b"--batch-size" in done.stderr
    async with engine.connect() as connection:
        row = (await connection.execute(select(members.c.scheduled_until, members.c.next_due_at))).one()
    assert row.scheduled_until is None
    assert row.next_due_at == BASE + timedelta(days=30)


async def test_a_read_only_token_reads_but_may_not_redeem_or_run_the_scheduler(
    engine: AsyncEngine, settings: Settings
) -> None:
    settings = settings.model_copy(
        update={"api_tokens": [SecretStr("test-token")], "api_read_tokens": [SecretStr("dashboard-token")]}
    )
    app = create_app(settings, load_playbook(settings.playbook_path))
    reader = {"Authorization": "Bearer dashboard-token"}
    await insert_rows(engine, *member_with_points_rows("m-1", 100, BASE))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=reader) as http,
    ):
        for suffix in ("", "/actions", "/notifications", "/points/ledger"):
            assert (await http.get(_path("m-1", suffix))).status_code == 200, suffix
        refused = await _redeem(http, "m-1", 10, "k-1")
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
        run = await http.post("/v1/admin/scheduler/run", json={"as_of": BASE.isoformat()})
        assert (run.status_code, run.json()["error"]["code"]) == (403, "forbidden")
        unknown = await http.post(
            "/v1/admin/scheduler/run", json={"as_of": BASE.isoformat()}, headers={"Authorization": "Bearer nope"}
        )
        assert unknown.status_code == 401
        full = await http.post(
            _path("m-1", "/points/redeem"), json={"points": 10, "idempotency_key": "k-1"}, headers=AUTH
        )
        assert full.status_code == 200
    async with engine.connect() as connection:
        assert await connection.scalar(select(members.c.points_balance)) == 90
