"""``engagement-ops`` as operators run it: ``python -m services.ops`` against the real PostgreSQL and Kafka.

Each command is checked against what the user relies on: the scheduler decides what the
use case decides and, stopped by Ctrl-C, leaves whole batches that a second run completes;
an export file holds the API's export; the reports show the API's numbers; a replay copies
exactly the range asked for and a dead letter goes back to its original topic; the
quarantine lists and releases members; expected failures are one line, not a traceback.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.engagement.dead_letters import reference, whole
from services.engagement.decode import Rejection
from shared.db.schema import actions, dead_letters, members, metadata, quarantined_members
from shared.playbook_file import load_playbook
from shared.settings import Settings
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler
from tests.builders import coupon_row, decision_row, insert_rows, joined_member_row, order_row, quarantined_member_rows
from tests.support import KAFKA, ROOT, api_in_process, create_topic, delete_topics, end_offsets

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
SHOP = "shop-1"
BASE = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
VIP = {"field": "tier", "op": ">=", "value": "vip"}


@pytest.fixture
def env(service_env: dict[str, str]) -> dict[str, str]:
    """The environment a service would get: the test's database and topics."""
    return {**os.environ, **service_env}


async def ops(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "services.ops", *arguments]
    return await asyncio.to_thread(subprocess.run, command, cwd=ROOT, env=env, capture_output=True, timeout=300)


def succeeded(done: subprocess.CompletedProcess[bytes]) -> subprocess.CompletedProcess[bytes]:
    assert done.returncode == 0, done.stderr.decode()
    return done


def one_line_failure(done: subprocess.CompletedProcess[bytes], code: int = 1) -> str:
    """The failure's only line on stderr: no traceback, nothing on stdout."""
    assert done.returncode == code, done.stderr.decode()
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert done.stdout == b""
    return lines[0]


def usage_error(done: subprocess.CompletedProcess[bytes]) -> str:
    """A usage error's text (exit code 2), out of the panel it is drawn in."""
    assert done.returncode == 2, done.stderr.decode()
    assert done.stdout == b""
    text = done.stderr.decode().translate({ord(c): " " for c in "│╭╮╰╯─"})
    return " ".join(text.split())


def cells(line: str) -> list[str]:
    return [part.strip() for part in line.strip().strip("│").split("│")]


def table_line(output: bytes, first_cell: str) -> str:
    """The table row whose first cell is ``first_cell``."""
    rows = [line for line in output.decode().splitlines() if line.startswith("│") and cells(line)[0] == first_cell]
    assert len(rows) == 1, (first_cell, output.decode())
    return rows[0]


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the same database, with the same playbook the command line reads (PLAYBOOK_PATH)."""
    async with api_in_process(settings, headers=AUTH) as http:
        yield http


async def empty_tables(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))


async def add_members(engine: AsyncEngine, rows: Sequence[dict[str, Any]]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(members), list(rows))


async def interrupt_after_progress(process: asyncio.subprocess.Process, prefix: str) -> tuple[bytes, bytes]:
    """SIGINT once the command's first progress line (``prefix``...) is on stderr: its first batch is done.

    Answers what the command wrote after that: stdout, and the rest of stderr.
    """
    assert process.stderr is not None
    while line := await asyncio.wait_for(process.stderr.readline(), timeout=120):
        if line.startswith(prefix.encode()):
            break
    else:
        raise AssertionError(f"the command ended without a progress line starting {prefix!r}")
    process.send_signal(signal.SIGINT)
    return await asyncio.wait_for(process.communicate(), timeout=120)


# --- scheduler run ------------------------------------------------------------------------------------


def scheduled_members() -> list[dict[str, Any]]:
    """Members due at staggered times around the run's time, and some not due by then."""
    return [joined_member_row(f"m-{n:03d}", BASE + n * HOUR) for n in range(40)]


async def decided(engine: AsyncEngine) -> list[tuple[str, str, str, datetime]]:
    """Every action, by id: who got it, under which rule, at what business time."""
    columns = (actions.c.action_id, actions.c.member_id, actions.c.rule, actions.c.occurred_at)
    async with engine.connect() as connection:
        rows = await connection.execute(select(*columns).order_by(actions.c.action_id))
        return [(row[0], row[1], row[2], row[3]) for row in rows]


async def test_the_scheduler_command_decides_what_the_use_case_decides(
    engine: AsyncEngine, env: dict[str, str]
) -> None:
    until = BASE + 30 * DAY + 20 * HOUR  # 21 of the 40 one-month gifts are due
    await add_members(engine, scheduled_members())

    done = succeeded(await ops(env, "scheduler", "run", "--until", until.isoformat(), "--batch-size", "7", "--json"))
    report = json.loads(done.stdout)
    by_command = await decided(engine)

    await empty_tables(engine)
    await add_members(engine, scheduled_members())
    expected = await Scheduler(SqlUnitOfWork.factory(engine), load_playbook(), 7).run(until)

    assert report == json.loads(json.dumps(expected.as_dict()))
    assert (report["members"], report["actions_by_rule"], report["batches"]) == (21, {"one_month_gift": 21}, 3)
    assert by_command == await decided(engine)  # the same actions, with the same ids

    again = succeeded(await ops(env, "scheduler", "run", "--until", until.isoformat()))
    assert cells(table_line(again.stdout, "members whose due items were handled"))[1] == "0"  # nothing twice
    assert cells(table_line(again.stdout, "new actions"))[1] == "0"


async def test_the_scheduler_command_refuses_times_it_cannot_run_to(env: dict[str, str]) -> None:
    for until, problem in (
        ("1999-12-31T23:00:00Z", "must lie between 2000-01-01T00:00:00+00:00 and 1 day after"),
        ("2025-04-01T00:00:00", "needs a UTC offset"),
    ):
        assert problem in usage_error(await ops(env, "scheduler", "run", "--until", until))


async def test_an_interrupted_run_exits_130_leaves_whole_batches_and_a_second_run_finishes_the_rest(
    engine: AsyncEngine, env: dict[str, str]
) -> None:
    count, batch = 1500, 3
    await add_members(engine, [joined_member_row(f"m-{n:04d}", BASE) for n in range(count)])
    until = (BASE + 31 * DAY).isoformat()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "services.ops", "scheduler", "run", "--until", until, "--batch-size", str(batch), "--json"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await interrupt_after_progress(process, "scheduler: ")  # after the first batch committed

    assert process.returncode == 130, stderr.decode()
    report = json.loads(stdout)
    assert 1 <= report["batches"] < count // batch
    assert report["members"] == batch * report["batches"]  # whole batches only
    assert "run the same command again" in stderr.decode()
    async with engine.connect() as connection:
        gifts = await connection.scalar(select(func.count()).where(actions.c.rule == "one_month_gift"))
        passed = await connection.scalar(select(func.count()).where(members.c.next_due_at > BASE + 31 * DAY))
    assert gifts == passed == report["members"]  # each passed member's whole batch, and nothing of a cut one

    rest = json.loads(succeeded(await ops(env, "scheduler", "run", "--until", until, "--json")).stdout)
    assert rest["members"] == count - report["members"]
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(func.count(), func.count(actions.c.member_id.distinct())).where(
                    actions.c.rule == "one_month_gift"
                )
            )
        ).one()
    assert tuple(row) == (count, count)  # every member's gift, once


# --- segment export -----------------------------------------------------------------------------------

ODD_IDS = ["m-1", "m,2", 'm"3', "m\n4", "m 5", "m-ü6"]


async def seed_segment_members(engine: AsyncEngine) -> list[str]:
    rows: list[dict[str, Any]] = [
        {
            "shop_id": SHOP,
            "member_id": member_id,
            "tier": "vip",
            "stage": "active",
            "net_spend": Decimal("1234.5"),
            "paid_orders": 3,
            "score": 700,
            "marketing_consent": n % 2 == 0,
            "joined_at": BASE,
            "last_order_at": None if n % 3 else BASE + timedelta(microseconds=250000),
            "tags": ["external.crm_vip", "profile.female"] if n % 2 else [],
        }
        for n, member_id in enumerate(ODD_IDS)
    ]
    await add_members(engine, rows)
    others = [{"shop_id": SHOP, "member_id": f"bulk-{n:05d}", "tier": "supreme"} for n in range(2500)]
    others.append({"shop_id": SHOP, "member_id": "m-out", "tier": "member"})  # not in the segment
    others.append({"shop_id": "shop-2", "member_id": "m-9", "tier": "vip"})  # another shop's
    await add_members(engine, others)
    return sorted([*ODD_IDS, *(f"bulk-{n:05d}" for n in range(2500))])


async def test_an_export_file_holds_the_segments_members_as_the_api_exports_them(
    client: httpx.AsyncClient, engine: AsyncEngine, env: dict[str, str], tmp_path: Path
) -> None:
    expected = await seed_segment_members(engine)
    created = await client.post(f"/v1/shops/{SHOP}/segments", json={"name": "VIPs", "definition": VIP})
    segment_id = created.json()["segment_id"]
    export = f"/v1/shops/{SHOP}/segments/{segment_id}/export"
    out = tmp_path / "vips.csv"

    done = succeeded(await ops(env, "segments", "export", SHOP, segment_id, "--out", str(out)))

    assert out.read_bytes() == (await client.get(export, params={"format": "csv"})).content
    header, *rows = csv.reader(io.StringIO(out.read_text(encoding="utf-8"), newline=""))
    assert header == [
        "member_id",
        "tier",
        "stage",
        "net_spend",
        "paid_orders",
        "points_balance",
        "score",
        "marketing_consent",
        "joined_at",
        "last_order_at",
        "tags",
    ]
    assert [row[0] for row in rows] == expected  # the segment's members, by member_id, and no one else
    messages = done.stderr.decode()
    assert f"segment {segment_id}: 2,506/2,506 members" in messages  # the progress of a file's export
    assert f"Exported 2,506 members of segment {segment_id} (shop {SHOP}) to {out}." in messages

    jsonl = tmp_path / "vips.jsonl"
    succeeded(await ops(env, "segments", "export", SHOP, segment_id, "--format", "jsonl", "-o", str(jsonl)))
    assert jsonl.read_bytes() == (await client.get(export, params={"format": "jsonl"})).content
    assert [json.loads(line)["member_id"] for line in jsonl.read_text().splitlines()] == expected

    to_stdout = succeeded(await ops(env, "segments", "export", SHOP, segment_id))
    assert to_stdout.stdout == out.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["vips.csv", "vips.jsonl"]  # nothing half-written

    missing = tmp_path / "missing.csv"
    line = one_line_failure(await ops(env, "segments", "export", SHOP, "seg_nope", "--out", str(missing)))
    assert line == f"error: no segment 'seg_nope' in shop '{SHOP}'"
    assert sorted(os.listdir(tmp_path)) == ["vips.csv", "vips.jsonl"]


async def test_an_interrupted_export_writes_no_file_and_leaves_nothing_behind(
    client: httpx.AsyncClient, engine: AsyncEngine, env: dict[str, str], tmp_path: Path
) -> None:
    count = 200_000  # a few seconds of export, interrupted after its first chunk
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO members (shop_id, member_id, tier) "
                "SELECT :shop, 'x-' || lpad(n::text, 6, '0'), 'vip' FROM generate_series(1, :count) AS n"
            ),
            {"shop": SHOP, "count": count},
        )
    created = await client.post(f"/v1/shops/{SHOP}/segments", json={"name": "VIPs", "definition": VIP})
    segment_id = created.json()["segment_id"]
    out = tmp_path / "vips.csv"
    out.write_bytes(b"yesterday's export\r\n")  # an earlier file of the same name stays as it was
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "services.ops", "segments", "export", SHOP, segment_id, "--out", str(out)),
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )

    _, stderr = await interrupt_after_progress(process, f"segment {segment_id}: ")  # after the first chunk

    assert process.returncode == 130, stderr.decode()
    assert f"{out} was not written. Run the command again." in stderr.decode()
    assert f"of {count:,} members" in stderr.decode()
    assert out.read_bytes() == b"yesterday's export\r\n"
    assert os.listdir(tmp_path) == ["vips.csv"]  # the temporary file is gone


# --- reports ------------------------------------------------------------------------------------------


async def test_the_campaign_report_table_shows_the_apis_numbers(
    client: httpx.AsyncClient, engine: AsyncEngine, env: dict[str, str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    at = now - 2 * HOUR
    await add_members(engine, [{"shop_id": SHOP, "member_id": f"v-{n:02d}", "tier": "vip"} for n in range(80)])
    plan = {
        "name": "Autumn",
        "definition": VIP,
        "strategies": [
            {"code": "ten_off", "weight": 1, "template": "a", "incentive": {"kind": "coupon", "value": "10.00"}},
            {"code": "plain", "weight": 1, "template": "b"},
        ],
        "holdout_percent": 20,
        "waves": [{"at": at.isoformat()}],
        "attribution_window": "P14D",
    }
    created = await client.post(f"/v1/shops/{SHOP}/campaigns", json=plan)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["campaign_id"]
    ran = json.loads(succeeded(await ops(env, "scheduler", "run", "--until", now.isoformat(), "--json")).stdout)
    assert (ran["waves_started"], ran["waves_run"], ran["wave_members"]) == (1, 1, 80)
    # A third of the members pay within the window.
    await insert_rows(engine, *(order_row(f"o-{n}", f"v-{n:02d}", at + HOUR, "99.00") for n in range(0, 80, 3)))

    report = (await client.get(f"/v1/shops/{SHOP}/campaigns/{campaign_id}/report")).json()
    as_json = succeeded(await ops(env, "campaigns", "report", SHOP, campaign_id, "--json"))
    assert json.loads(as_json.stdout) == report

    table = succeeded(await ops(env, "campaigns", "report", SHOP, campaign_id)).stdout
    assert report["holdout"]["members"] > 0
    for item in report["strategies"]:
        row = cells(table_line(table, item["code"]))
        low, high = item["uplift"]["ci95"]
        assert row == [
            item["code"],
            str(item["members"]),
            str(item["sent"]),
            str(item["suppressed"]),
            str(item["converted"]),
            str(item["conversion_rate"]),
            item["revenue"],
            item["revenue_per_member"],
            str(item["coupons_redeemed"]),
            item["cost"],
            "–" if item["roi"] is None else str(item["roi"]),
            str(item["uplift"]["rate_diff"]),
            f"[{low}, {high}]",
        ]
    held = cells(table_line(table, "holdout"))
    assert (held[1], held[4], held[5]) == tuple(
        str(report["holdout"][key]) for key in ("members", "converted", "conversion_rate")
    )
    assert cells(table_line(table, "1"))[1:] == [report["waves"][0]["at"], str(report["waves"][0]["members"])]

    line = one_line_failure(await ops(env, "campaigns", "report", SHOP, "no-such-campaign"))
    assert line == f"error: no campaign 'no-such-campaign' in shop '{SHOP}'"


async def test_the_incentives_report_table_shows_the_apis_numbers(
    client: httpx.AsyncClient, engine: AsyncEngine, env: dict[str, str]
) -> None:
    t = BASE
    await insert_rows(
        engine,
        decision_row("d1", "m1", "first_purchase_gift", "emitted", t + HOUR, value="10.00"),
        coupon_row("C1", "m1", "first_purchase_gift", "d1", "10.00", t + HOUR, status="redeemed", order_id="o1"),
        order_row("o1", "m1", t + 2 * DAY, "80.00"),
        decision_row("d2", "m2", "first_purchase_gift", "emitted", t + 2 * HOUR, value="10.00"),
        coupon_row("C2", "m2", "first_purchase_gift", "d2", "10.00", t + 2 * HOUR),
        decision_row("d3", "m3", "first_purchase_gift", "emitted", t + 3 * HOUR, value="10.00"),
        coupon_row("C3", "m3", "first_purchase_gift", "d3", "10.00", t + 3 * HOUR),
        order_row("o3", "m3", t + 3 * DAY, "40.00"),
        decision_row("h1", "m4", "first_purchase_gift", "holdout", t + HOUR),
        order_row("o4", "m4", t + DAY, "30.00"),
        decision_row("h2", "m5", "first_purchase_gift", "holdout", t + HOUR),
        decision_row("p1", "m6", "birthday_gift", "emitted", t + HOUR, kind="points", value="2.00", points=200),
        decision_row("late", "m7", "birthday_gift", "emitted", t + 40 * DAY, value="10.00"),  # after --to
    )
    start, end = t.isoformat(), (t + 30 * DAY).isoformat()

    report = (await client.get(f"/v1/shops/{SHOP}/incentives/report", params={"from": start, "to": end})).json()
    as_json = succeeded(await ops(env, "incentives", "report", SHOP, "--from", start, "--to", end, "--json"))
    assert json.loads(as_json.stdout) == report

    table = succeeded(await ops(env, "incentives", "report", SHOP, "--from", start, "--to", end)).stdout
    assert [item["rule"] for item in report["items"]] == ["birthday_gift", "first_purchase_gift"]
    for item in report["items"]:
        ci95 = item["uplift"]["ci95"]
        assert cells(table_line(table, item["rule"])) == [
            item["rule"],
            str(item["issued"]),
            item["issued_value"],
            str(item["redeemed"]),
            item["redeemed_value"],
            "–" if item["redemption_rate"] is None else str(item["redemption_rate"]),
            str(item["coupons_shared"]),
            str(item["attributed_orders"]),
            item["attributed_revenue"],
            item["cost"],
            "–" if item["roi"] is None else str(item["roi"]),
            f"{item['treated']['converted']}/{item['treated']['members']}",
            f"{item['holdout']['converted']}/{item['holdout']['members']}",
            "–" if item["uplift"]["rate_diff"] is None else str(item["uplift"]["rate_diff"]),
            "–" if ci95 is None else f"[{ci95[0]}, {ci95[1]}]",
        ]

    backwards = await ops(env, "incentives", "report", SHOP, "--from", end, "--to", start)
    assert "--from must be before --to" in usage_error(backwards)


# --- replay -------------------------------------------------------------------------------------------


async def read_all(topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a one-partition topic, up to its end offset now."""
    partition = TopicPartition(topic, 0)
    end = (await end_offsets([topic]))[partition]
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        while len(found) < end and await consumer.position(partition) < end:
            for records in (await consumer.getmany(partition, timeout_ms=500)).values():
                found += records
    finally:
        await consumer.stop()
    return found


def as_sent(record: ConsumerRecord[bytes, bytes]) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    return record.key, record.value, list(record.headers)


@pytest_asyncio.fixture
async def scratch_topics() -> AsyncIterator[list[str]]:
    """One-partition topics made by the test; deleted afterwards."""
    names: list[str] = []
    yield names
    await delete_topics(names)


async def test_replay_copies_exactly_the_chosen_range_with_keys_values_and_headers(
    env: dict[str, str], scratch_topics: list[str]
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    source, *targets = [f"{prefix}.{name}" for name in ("source", "offsets", "times", "dry")]
    for name in (source, *targets):
        scratch_topics.append(await create_topic(name, partitions=1))
    stamp = int(BASE.timestamp() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, enable_idempotence=True)
    await producer.start()
    try:
        for n in range(30):
            headers = [("n", str(n).encode()), ("trace", b"\x00\xff")]
            key = None if n == 12 else f"shop-1:m-{n}".encode()
            await producer.send(source, f"value {n}".encode(), key=key, headers=headers, timestamp_ms=stamp + n * 1000)
        await producer.flush()
    finally:
        await producer.stop()
    sent = await read_all(source)

    by_offsets = succeeded(
        await ops(env, "replay", source, "--from-offset", "10", "--to-offset", "20", "--target", targets[0])
    )
    assert [as_sent(r) for r in await read_all(targets[0])] == [as_sent(r) for r in sent[10:20]]
    assert "Produced 10 records." in by_offsets.stderr.decode()

    since, until = (BASE + timedelta(seconds=25)).isoformat(), (BASE + timedelta(seconds=28)).isoformat()
    succeeded(await ops(env, "replay", source, "--since", since, "--until", until, "--target", targets[1]))
    assert [as_sent(r) for r in await read_all(targets[1])] == [as_sent(r) for r in sent[25:28]]

    dry = succeeded(await ops(env, "replay", source, "--partition", "0", "--dry-run", "--target", targets[2]))
    assert "Dry run: 30 records would be produced; nothing was." in dry.stderr.decode()
    assert (await end_offsets([targets[2]]))[TopicPartition(targets[2], 0)] == 0

    # Onto itself: the range ends where the topic ended when the replay began.
    succeeded(await ops(env, "replay", source, "--to-offset", "2"))
    again = await read_all(source)
    assert [as_sent(r) for r in again] == [as_sent(r) for r in [*sent, *sent[:2]]]

    unknown = one_line_failure(await ops(env, "replay", f"{prefix}.nowhere"))
    assert unknown == f"error: no topic '{prefix}.nowhere'"


async def test_a_stopped_replay_leaves_whole_batches_and_its_resume_commands_copy_the_rest_once(
    env: dict[str, str], scratch_topics: list[str]
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    source, target = f"{prefix}.source", f"{prefix}.target"
    for name in (source, target):
        scratch_topics.append(await create_topic(name, partitions=1))
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for n in range(10_000):
            await producer.send(source, f"value {n}".encode(), key=f"k-{n % 97}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "services.ops", "replay", source, "--target", target, "--batch-size", "5"),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    _, rest_of_stderr = await interrupt_after_progress(process, f"replay {source}: ")  # after the first batch

    assert process.returncode == 130, rest_of_stderr.decode()
    lines = rest_of_stderr.decode().splitlines()
    commands = [line.split()[1:] for line in lines if line.startswith("  engagement-ops replay")]
    assert len(commands) == 1  # the one partition, from its next offset
    next_offset = int(commands[0][commands[0].index("--from-offset") + 1])
    copied = await read_all(target)
    assert len(copied) == next_offset  # every record before the next offset, none after it
    assert next_offset % 5 == 0  # whole batches

    succeeded(await ops(env, *commands[0]))
    assert [as_sent(r) for r in await read_all(target)] == [as_sent(r) for r in await read_all(source)]


def original(topic: str, offset: int, value: bytes, key: bytes = b"shop-1:m-1") -> ConsumerRecord[bytes, bytes]:
    """A record as the engagement service read it before dead-lettering it."""
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, 0, 0, ())


async def test_a_dead_lettered_record_reaches_its_original_topic(
    engine: AsyncEngine, env: dict[str, str], topic_env: dict[str, str]
) -> None:
    orders, dlq = topic_env["TOPIC_ORDERS"], topic_env["TOPIC_DLQ"]
    event = json.dumps({"specversion": "1.0", "id": "evt-1", "type": "order.paid", "note": "ü"}).encode()
    large = json.dumps({"id": "evt-2", "pad": "x" * 4000}).encode()
    rejected = Rejection("member_quarantined", "the member is quarantined")
    received = datetime.now(UTC)
    async with engine.begin() as connection:
        stored_id = await connection.scalar(
            insert(dead_letters)
            .values(topic=orders, partition=2, offset=41, key=b"shop-1:m-2", value=large, error=rejected.error)
            .returning(dead_letters.c.id)
        )
    assert isinstance(stored_id, int)
    first, second = original(orders, 40, event), original(orders, 41, large, b"shop-1:m-2")
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send(dlq, whole(first, rejected, received), key=first.key)
        await producer.send(dlq, b"not a dead letter", key=b"junk")
        await producer.send(dlq, reference(second, rejected, received, stored_id), key=second.key)
        await producer.flush()
    finally:
        await producer.stop()

    done = succeeded(await ops(env, "replay", dlq))

    replayed = [record for partition in range(3) for record in await read_partition(orders, partition)]
    assert sorted((r.key, r.value) for r in replayed) == [(b"shop-1:m-1", event), (b"shop-1:m-2", large)]
    messages = done.stderr.decode()
    assert "Left out, not a dead letter: 1 record (offsets 1)." in messages
    assert "Produced 2 records." in messages
    assert table_line(done.stdout, orders)  # the table of targets names the original topic


async def read_partition(topic: str, partition: int) -> list[ConsumerRecord[bytes, bytes]]:
    tp = TopicPartition(topic, partition)
    end = (await end_offsets([topic]))[tp]
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                found += records
    finally:
        await consumer.stop()
    return found


# --- quarantine ---------------------------------------------------------------------------------------


async def test_quarantine_lists_members_as_the_api_does_and_releases_one(
    client: httpx.AsyncClient, engine: AsyncEngine, env: dict[str, str], topic_env: dict[str, str]
) -> None:
    await insert_rows(engine, *quarantined_member_rows("m-1", BASE + HOUR, joined_at=BASE, shop="shop-a"))
    await insert_rows(engine, *quarantined_member_rows("m-2", BASE, joined_at=BASE, shop="shop-b", events=3))
    await insert_rows(engine, *quarantined_member_rows("m-3", BASE + 2 * HOUR, joined_at=BASE, shop="shop-a"))

    listed = json.loads(succeeded(await ops(env, "quarantine", "list", "--json")).stdout)
    assert listed["items"] == (await client.get("/v1/admin/quarantine")).json()["items"]
    assert [item["member_id"] for item in listed["items"]] == ["m-2", "m-1", "m-3"]  # oldest quarantine first
    shop_a = json.loads(succeeded(await ops(env, "quarantine", "list", "--shop", "shop-a", "--json")).stdout)
    assert [item["member_id"] for item in shop_a["items"]] == ["m-1", "m-3"]
    table = succeeded(await ops(env, "quarantine", "list"))
    row = cells(table_line(table.stdout, "shop-b"))
    assert (row[0], row[1], row[2], row[4]) == ("shop-b", "m-2", "processing_error", "3")
    assert "3 quarantined members." in table.stderr.decode()

    released = succeeded(await ops(env, "quarantine", "release", "shop-a", "m-1"))
    hint = released.stderr.decode()
    assert f"engagement-ops replay {topic_env['TOPIC_DLQ']} --since " in hint
    assert "--key shop-a:m-1" in hint
    async with engine.connect() as connection:
        left = (await connection.execute(select(quarantined_members.c.member_id))).scalars().all()
        due = await connection.scalar(select(members.c.next_due_at).where(members.c.member_id == "m-1"))
    assert sorted(left) == ["m-2", "m-3"]
    assert due is not None  # back on the schedule

    line = one_line_failure(await ops(env, "quarantine", "release", "shop-a", "m-1"))
    assert line == "error: member 'm-1' of shop 'shop-a' is not in quarantine"
    as_json = json.loads(succeeded(await ops(env, "quarantine", "release", "shop-a", "m-3", "--json")).stdout)
    assert as_json == next(item for item in listed["items"] if item["member_id"] == "m-3")  # the row as listed


# --- failures -----------------------------------------------------------------------------------------


async def test_unreachable_services_and_bad_settings_are_one_line_failures(env: dict[str, str]) -> None:
    no_database = {**env, "DATABASE_URL": "postgresql://engagement:secret-password@127.0.0.1:1/engagement"}
    line = one_line_failure(await ops(no_database, "quarantine", "list"))
    assert line.startswith("error: cannot reach PostgreSQL at 127.0.0.1:1/engagement (")
    assert "secret-password" not in line

    no_kafka = {**env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    line = one_line_failure(await ops(no_kafka, "replay", env["TOPIC_ORDERS"]))
    assert line.startswith("error: cannot reach Kafka at 127.0.0.1:1 (")

    bad_setting = {**env, "DATABASE_POOL_SIZE": "plenty"}
    line = one_line_failure(await ops(bad_setting, "quarantine", "list"))
    assert line == "error: invalid settings in the environment: DATABASE_POOL_SIZE"
