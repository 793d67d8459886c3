"""Fuzzing the API as it runs in production: ``python -m services.api`` on a free port, the real PostgreSQL.

Schemathesis reads the API's own OpenAPI document and sends, for every operation, the
documented examples, boundary cases and generated requests, valid and invalid (NUL
characters included), with a full bearer token. Every answer must be documented: no
5xx, a status code the operation lists, the content type and body schema it lists.
A member, its ledger, actions, outcomes, a quarantine row, a segment, incentive decisions and
a coupon are seeded under the ids the document gives as examples, so the examples phase
reaches real rows.

The real process also answers a few hostile requests that only a socket can send:
bodies over the limit with a declared length (answered before the body is sent) and
streamed without one (answered while it streams).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Table, text
from sqlalchemy.ext.asyncio import create_async_engine

from services.api.app import create_app
from shared.contract.actions import NotificationOutcome
from shared.db.schema import actions, metadata, notifications, quarantined_members, segment_versions, segments
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.builders import (
    action_row,
    care_action,
    coupon_row,
    decision_row,
    insert_rows,
    member_with_points_rows,
    notification_row,
    order_row,
    quarantine_row,
    share_row,
)
from tests.support import KAFKA, ServiceProcess

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHOP, MEMBER = "shop-1", "m-1001"  # the path examples of the OpenAPI document
SEGMENT = "seg_5f0c6e2a9b1d4c3e8f7a6b5c"
BASE = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
# Bounded so the whole module stays well under a minute in CI.
EXAMPLES_PER_OPERATION = 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(database_url: str) -> None:
    """Empty tables, then one member with a ledger, actions, outcomes and a quarantine row."""
    engine = create_async_engine(database_url)
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    (table, member), line = member_with_points_rows(
        MEMBER, 1_000_000, BASE, shop=SHOP, next_due_at=BASE + timedelta(days=30)
    )
    rows: list[tuple[Table, dict[str, Any]]] = [(table, {**member, "tier": "member", "tier_since": BASE}), line]
    for number in range(3):
        action = care_action(MEMBER, number, BASE + timedelta(hours=number), shop=SHOP)
        outcome = NotificationOutcome(
            notification_id=f"n-{number}",
            action_id=action.action_id,
            shop_id=SHOP,
            member_id=MEMBER,
            channel="log",
            status="sent",
            reason=None,
            at=action.created_at,
        )
        rows += [(actions, action_row(action)), (notifications, notification_row(outcome))]
    rows.append((quarantined_members, quarantine_row(MEMBER, BASE, shop=SHOP, detail="ValueError while settling")))
    # A segment under the document's example id, selecting the member, so its routes answer real rows.
    definition = {"field": "tier", "op": ">=", "value": "member"}
    segment = {"shop_id": SHOP, "segment_id": SEGMENT, "name": "Members", "version": 1, "created_at": BASE}
    rows.append((segments, {**segment, "updated_at": BASE}))
    rows.append((segment_versions, {**segment, "definition": definition}))
    # Incentive decisions, a treated and a held-out one, a coupon redeemed by an order and shared once,
    # so the coupons, decisions and the report answer real rows.
    gift = "first_purchase_gift"
    rows += [
        decision_row("dec-1", MEMBER, gift, "emitted", BASE, value="10.00", shop=SHOP),
        coupon_row("CODE-1", MEMBER, gift, "dec-1", "10.00", BASE, status="redeemed", order_id="o-1", shop=SHOP),
        order_row("o-1", MEMBER, BASE + timedelta(days=1), shop=SHOP),
        share_row("CODE-1", "o-2", "m-1002", BASE + timedelta(days=2), shop=SHOP),
        decision_row("dec-2", "m-1002", gift, "holdout", BASE, shop=SHOP),
        decision_row("dec-3", MEMBER, "review_reward", "emitted", BASE, kind="points", value="0.20", shop=SHOP),
    ]
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
        await insert_rows(engine, *rows)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def api(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """``python -m services.api`` on a free port, on the session's database, with the default body limit."""
    asyncio.run(_seed(database_url))
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "API_TOKENS": TOKEN,
        "API_READ_TOKENS": "fuzz-reader-0123456789",
        "API_PORT": str(_free_port()),
        "LOG_LEVEL": "WARNING",
    }
    service = ServiceProcess("services.api", env, Path(tmp_path_factory.mktemp("api")) / "api.log").start()
    url = f"http://127.0.0.1:{env['API_PORT']}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or service.process is None or service.process.poll() is not None:
            service.stop()
            pytest.fail(f"the API did not start:\n{service.log_tail()}")
        time.sleep(0.1)
    yield service
    service.stop()
    log = service.log_tail()
    assert "api.request_failed" not in log, log  # no request ended in an unexpected error


def _url(service: ServiceProcess) -> str:
    return f"http://127.0.0.1:{service.env['API_PORT']}"


def _document() -> dict[str, Any]:
    """The OpenAPI document, built by the same code as the process serves it (checked below)."""
    settings = Settings(api_tokens=[SecretStr(TOKEN)])
    document: dict[str, Any] = create_app(settings, load_playbook(settings.playbook_path)).openapi()
    return document


# Loaded when the module is collected, so pytest lists one test per operation.
schema = schemathesis.openapi.from_dict(_document())
# Unknown query parameters and body fields are ignored by design (docs/api.md), so a request
# whose only fault is an extra one is not negative data.
schema.config.generation.update(allow_extra_parameters=False)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # every run explores afresh; a failure prints the request to replay
)
def test_every_operation_answers_only_what_it_documents(api: ServiceProcess, case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(
        base_url=_url(api),
        headers=AUTH,
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
            negative_data_rejection,
            ignored_auth,
        ],
    )


def test_the_process_serves_the_document_the_fuzzer_read(api: ServiceProcess) -> None:
    assert httpx.get(f"{_url(api)}/openapi.json").json() == _document()


def test_the_document_lists_the_error_statuses_of_every_operation(api: ServiceProcess) -> None:
    document = httpx.get(f"{_url(api)}/openapi.json").json()
    error_ref = "#/components/schemas/ErrorResponse"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            listed = set(operation["responses"])
            assert "413" in listed, (method, path)
            if "security" in operation:
                assert {"401", "422"} <= listed, (method, path)
            if method != "get" and path.startswith("/v1/"):
                assert "403" in listed, (method, path)
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")) and path.startswith("/v1/"):
                    assert response["content"]["application/json"]["schema"] == {"$ref": error_ref}, (method, path)
    redeem = document["paths"]["/v1/shops/{shop_id}/members/{member_id}/points/redeem"]["post"]["responses"]
    assert {"401", "403", "404", "409", "413", "422"} <= set(redeem)
    release = document["paths"]["/v1/admin/quarantine/{shop_id}/{member_id}"]["delete"]["responses"]
    assert {"401", "403", "404", "413", "422"} <= set(release)


# --- hostile requests over a real socket --------------------------------------------------


async def _exchange(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[int, dict[str, str], bytes, int]:
    """Sends ``head`` then the chunks while reading the answer; stops sending once the answer is in.

    Returns the status, headers, body and how many body bytes were sent before the answer came.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0

    async def send() -> None:
        nonlocal sent
        try:
            writer.write(head)
            await writer.drain()
            for chunk in body_chunks:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                # drain() does not yield while the server keeps up: let the reader see an answer as it comes.
                await asyncio.sleep(0)
        except ConnectionError:
            pass  # the server answered and closed while the rest was on its way

    sender = asyncio.create_task(send())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
        sent_before_answer = sent
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
    finally:
        sender.cancel()
        writer.close()
    return int(status_line.split()[1]), headers, body, sent_before_answer


def _chunked(total: int, size: int = 65536) -> Iterator[bytes]:
    """A JSON body of ``total`` bytes in HTTP/1.1 chunked framing, generated as it is sent."""
    head = b'{"points": 1, "idempotency_key": "big", "pad": "'
    yield b"%x\r\n%s\r\n" % (len(head), head)
    left = total - len(head) - 2
    while left > 0:
        piece = b"x" * min(size, left)
        left -= len(piece)
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b'2\r\n"}\r\n0\r\n\r\n'


def _error(body: bytes) -> str:
    document = json.loads(body)
    assert set(document) == {"error"}
    assert set(document["error"]) == {"code", "message"}
    code: str = document["error"]["code"]
    return code


REDEEM = f"/v1/shops/{SHOP}/members/{MEMBER}/points/redeem"


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(api: ServiceProcess) -> None:
    port = int(api.env["API_PORT"])
    head = (
        f"POST {REDEEM} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {1_048_577}\r\n\r\n"
    ).encode()
    status, headers, body, sent = asyncio.run(_exchange(port, head, iter(())))
    assert (status, headers["content-type"], _error(body)) == (413, "application/json", "payload_too_large")
    assert sent == 0


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(api: ServiceProcess) -> None:
    port = int(api.env["API_PORT"])
    head = (
        f"POST {REDEEM} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    total = 256 * 1_048_576  # far more than socket buffers hold: the answer must come mid-stream
    status, _, body, sent = asyncio.run(_exchange(port, head, _chunked(total)))
    assert (status, _error(body)) == (413, "payload_too_large")
    assert sent < total // 4


def test_a_chunked_body_under_the_limit_is_served(api: ServiceProcess) -> None:
    port = int(api.env["API_PORT"])
    head = (
        f"POST {REDEEM} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    status, _, body, _ = asyncio.run(_exchange(port, head, _chunked(1_048_576)))
    assert status == 200, body
    assert json.loads(body)["entry"]["entry_id"] == "redeem:big"


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("GET", f"/v1/shops/{SHOP}/members/%00", None, "invalid_text"),
        ("DELETE", f"/v1/admin/quarantine/{SHOP}/%00", None, "invalid_text"),
        (
            "GET",
            f"/v1/shops/{SHOP}/members/{MEMBER}/points/ledger?cursor=eyJrIjoibCIsInMiOjkyMjMzNzIwMzY4NTQ3NzU4MDh9",
            None,
            "invalid_cursor",
        ),
        ("POST", REDEEM, b'{"points": 1, "idempotency_key": "\\u0000"}', "invalid_text"),
        (
            "POST",
            REDEEM,
            b'{"points": 1, "idempotency_key": "k", "at": "0001-01-01T00:00:00+08:00"}',
            "time_out_of_range",
        ),
        ("POST", "/v1/admin/scheduler/run", b'{"as_of": "9525-01-01T00:00:00Z"}', "time_out_of_range"),
        ("POST", "/v1/admin/scheduler/run", b"{not json", "invalid_json"),
    ],
)
def test_hostile_requests_over_http_answer_their_codes(
    api: ServiceProcess, method: str, path: str, body: bytes | None, code: str
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = httpx.request(method, f"{_url(api)}{path}", content=body, headers=headers, timeout=30)
    assert response.status_code == 422, response.text
    assert _error(response.content) == code
