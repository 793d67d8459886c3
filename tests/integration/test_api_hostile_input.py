"""Crafted input never gets a 5xx: each answers the status and error code that names the problem.

The app runs through its own lifespan on the real PostgreSQL, so input that slipped
through would reach asyncpg and the database, and fail there with a 500.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from shared.db.schema import members
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.builders import insert_rows, member_with_points_rows

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
READER = {"Authorization": "Bearer reader-token"}
SHOP = "shop-1"
BASE = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
MEMBER = f"/v1/shops/{SHOP}/members/m-1"
MEMBER_ROWS = member_with_points_rows("m-1", 100, BASE, next_due_at=BASE + timedelta(days=30))
REDEEM = f"{MEMBER}/points/redeem"
SCHEDULER = "/v1/admin/scheduler/run"
LISTS = (f"{MEMBER}/actions", f"{MEMBER}/notifications", f"{MEMBER}/points/ledger", "/v1/admin/quarantine")
JSON = {"Content-Type": "application/json"}
# Aware times whose UTC equivalents lie outside what Python's datetime can hold.
YEAR_1_EAST = "0001-01-01T00:00:00+08:00"
YEAR_9999_WEST = "9999-12-31T23:00:00-05:00"


def _app(settings: Settings, **overrides: Any) -> httpx.AsyncClient:
    settings = settings.model_copy(
        update={"api_tokens": [SecretStr("test-token")], "api_read_tokens": [SecretStr("reader-token")], **overrides}
    )
    app = create_app(settings, load_playbook(settings.playbook_path))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test", headers=AUTH)
    client.app = app  # type: ignore[attr-defined]
    return client


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    http = _app(settings)
    async with http.app.router.lifespan_context(http.app), http:  # type: ignore[attr-defined]
        yield http


@pytest_asyncio.fixture
async def small_client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 1 KiB body limit."""
    http = _app(settings, api_max_body_bytes=1024)
    async with http.app.router.lifespan_context(http.app), http:  # type: ignore[attr-defined]
        yield http


def _assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message
    return message


def _cursor(document: Any) -> str:
    raw = json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- text: NUL characters and lone surrogates ---------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/shops/{SHOP}/members/%00"),
        ("GET", f"/v1/shops/{SHOP}/members/m%001/actions"),
        ("GET", f"/v1/shops/{SHOP}/members/%00/notifications"),
        ("GET", "/v1/shops/%00/members/m-1/points/ledger"),
        ("POST", f"/v1/shops/{SHOP}/members/%00/points/redeem"),
        ("DELETE", f"/v1/admin/quarantine/{SHOP}/%00"),
        ("DELETE", "/v1/admin/quarantine/%00/m-1"),
        # A surrogate can only travel UTF-8-encoded, which is not valid UTF-8.
        ("GET", f"/v1/shops/{SHOP}/members/%ED%A0%80"),
        ("DELETE", f"/v1/admin/quarantine/{SHOP}/m%ED%B0%801"),
        ("GET", f"/v1/shops/{SHOP}/members/%FF"),
    ],
)
async def test_a_nul_or_a_surrogate_in_a_path_parameter_is_invalid_text(
    client: httpx.AsyncClient, engine: AsyncEngine, method: str, path: str
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    body = {"points": 1, "idempotency_key": "k-1"} if method == "POST" else None
    response = await client.request(method, path, json=body)
    message = _assert_error(response, 422, "invalid_text")
    assert "NUL" in message


@pytest.mark.parametrize(
    "query",
    ["cursor=%00", "limit=%00", "cursor=abc%00def", "x=%00", "%00=1", "cursor=%ED%A0%80", "limit=5&other=%C3"],
)
async def test_a_nul_or_a_surrogate_in_a_query_parameter_is_invalid_text(
    client: httpx.AsyncClient, engine: AsyncEngine, query: str
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    for path in LISTS:
        _assert_error(await client.get(f"{path}?{query}"), 422, "invalid_text")


@pytest.mark.parametrize(
    "body",
    [
        b'{"points": 1, "idempotency_key": "checkout\\u0000-1"}',
        b'{"points": 1, "idempotency_key": "\\u0000"}',
        b'{"points": 1, "idempotency_key": "\\ud800"}',
        b'{"points": 1, "idempotency_key": "k\\udfff"}',
        b'{"points": 1, "idempotency_key": "k-1", "note": {"deep": ["ok", "\\ud83d"]}}',
        b'{"points": 1, "idempotency_key": "k-1", "\\u0000": 1}',
        b'{"points": 1, "idempotency_key": "k-1", "at": "2025-03-02T10:00:00\\u0000Z"}',
    ],
)
async def test_a_nul_or_a_lone_surrogate_in_a_json_string_is_invalid_text(
    client: httpx.AsyncClient, engine: AsyncEngine, body: bytes
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    _assert_error(await client.post(REDEEM, content=body, headers=JSON), 422, "invalid_text")
    async with engine.connect() as connection:
        assert await connection.scalar(select(members.c.points_balance)) == 100  # nothing booked


async def test_a_surrogate_pair_is_ordinary_text(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    response = await client.post(REDEEM, content=b'{"points": 1, "idempotency_key": "k-\\ud83d\\ude00"}', headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["entry"]["entry_id"] == "redeem:k-\U0001f600"


async def test_a_nul_in_the_scheduler_body_is_invalid_text(client: httpx.AsyncClient) -> None:
    body = b'{"as_of": "2025-03-02T10:00:00Z\\u0000"}'
    _assert_error(await client.post(SCHEDULER, content=body, headers=JSON), 422, "invalid_text")


# --- cursors ------------------------------------------------------------------------------


def _foreign_cursors() -> list[tuple[str, str]]:
    """(list path suffix or 'any', cursor) pairs that this API never issued."""
    long_id = "m" * 201
    return [
        ("any", "!!!"),
        ("any", "not-a-cursor"),
        ("any", "é"),
        ("any", base64.urlsafe_b64encode(b"\xff\xfe\x00").decode()),
        ("any", _cursor([1, 2])),
        ("any", _cursor("s")),
        ("any", _cursor({"k": "x", "s": 1})),
        ("any", base64.urlsafe_b64encode(b"[" * 300).decode()),
        ("any", "A" * 4097),
        ("notifications", _cursor({"k": "n", "s": 2**63})),
        ("notifications", _cursor({"k": "n", "s": 0})),
        ("notifications", _cursor({"k": "a", "t": BASE.isoformat(), "s": 3})),
        ("ledger", _cursor({"k": "l", "s": 2**63})),
        ("ledger", _cursor({"k": "l", "s": 2**64 + 5})),
        ("ledger", _cursor({"k": "l", "s": -1})),
        ("ledger", _cursor({"k": "l", "s": True})),
        ("ledger", _cursor({"k": "l", "s": 1.5})),
        ("ledger", _cursor({"k": "n", "s": 3})),
        ("actions", _cursor({"k": "a", "t": BASE.isoformat(), "s": 2**63})),
        ("actions", _cursor({"k": "a", "t": YEAR_1_EAST, "s": 5})),
        ("actions", _cursor({"k": "a", "t": YEAR_9999_WEST, "s": 5})),
        ("actions", _cursor({"k": "a", "t": "1999-12-31T23:59:59+00:00", "s": 5})),
        ("actions", _cursor({"k": "a", "t": "9525-01-01T00:00:00+00:00", "s": 5})),
        ("actions", _cursor({"k": "a", "t": "2025-03-01T10:00:00", "s": 5})),
        ("actions", _cursor({"k": "a", "t": "yesterday", "s": 5})),
        ("actions", _cursor({"k": "a", "t": 1700000000, "s": 5})),
        ("quarantine", _cursor({"k": "q", "t": YEAR_1_EAST, "sh": SHOP, "m": "m-1"})),
        ("quarantine", _cursor({"k": "q", "t": YEAR_9999_WEST, "sh": SHOP, "m": "m-1"})),
        ("quarantine", _cursor({"k": "q", "t": BASE.isoformat(), "sh": SHOP, "m": "m\u00001"})),
        ("quarantine", _cursor({"k": "q", "t": BASE.isoformat(), "sh": "\ud800", "m": "m-1"})),
        ("quarantine", _cursor({"k": "q", "t": BASE.isoformat(), "sh": SHOP, "m": long_id})),
        ("quarantine", _cursor({"k": "q", "t": BASE.isoformat(), "sh": SHOP, "m": 7})),
        ("quarantine", _cursor({"k": "q", "t": BASE.isoformat(), "sh": SHOP})),
    ]


@pytest.mark.parametrize(("target", "cursor"), _foreign_cursors())
async def test_a_cursor_the_api_did_not_issue_is_invalid_cursor(
    client: httpx.AsyncClient, engine: AsyncEngine, target: str, cursor: str
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    paths = {
        "actions": [f"{MEMBER}/actions"],
        "notifications": [f"{MEMBER}/notifications"],
        "ledger": [f"{MEMBER}/points/ledger"],
        "quarantine": ["/v1/admin/quarantine"],
        "any": list(LISTS),
    }[target]
    for path in paths:
        _assert_error(await client.get(path, params={"cursor": cursor}), 422, "invalid_cursor")


async def test_a_cursor_at_the_largest_bigint_is_accepted(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    response = await client.get(f"{MEMBER}/points/ledger", params={"cursor": _cursor({"k": "l", "s": 2**63 - 1})})
    assert response.status_code == 200, response.text
    assert [line["entry_id"] for line in response.json()["items"]] == ["earn:o-1"]


# --- business time bounds -----------------------------------------------------------------


JUST_TOO_FAR_AHEAD = "1 day and 5 minutes after the wall clock"  # resolved when the test runs, not when collected


def _outside_times() -> list[str]:
    return [
        YEAR_1_EAST,
        YEAR_9999_WEST,
        "9525-06-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2000-01-01T07:59:59+08:00",
        JUST_TOO_FAR_AHEAD,
    ]


def _resolved(at: str) -> str:
    return (datetime.now(UTC) + timedelta(days=1, minutes=5)).isoformat() if at == JUST_TOO_FAR_AHEAD else at


@pytest.mark.parametrize("at", _outside_times())
async def test_a_redemption_time_outside_the_bounds_is_time_out_of_range(
    client: httpx.AsyncClient, engine: AsyncEngine, at: str
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    at = _resolved(at)
    response = await client.post(REDEEM, json={"points": 1, "idempotency_key": "k-1", "at": at})
    message = _assert_error(response, 422, "time_out_of_range")
    assert message.startswith("body.at must lie between 2000-01-01T00:00:00+00:00 and 1 day after")
    assert at not in message
    async with engine.connect() as connection:
        assert await connection.scalar(select(members.c.points_balance)) == 100


@pytest.mark.parametrize("as_of", _outside_times())
async def test_a_scheduler_as_of_outside_the_bounds_is_time_out_of_range_and_runs_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, as_of: str
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    message = _assert_error(await client.post(SCHEDULER, json={"as_of": _resolved(as_of)}), 422, "time_out_of_range")
    assert message.startswith("body.as_of must lie between 2000-01-01T00:00:00+00:00 and 1 day after")
    async with engine.connect() as connection:
        row = (await connection.execute(select(members.c.scheduled_until, members.c.next_due_at))).one()
    assert row.scheduled_until is None
    assert row.next_due_at == BASE + timedelta(days=30)


async def test_times_at_the_edges_of_the_bounds_are_accepted(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    earliest = await client.post(
        REDEEM, json={"points": 1, "idempotency_key": "k-1", "at": "2000-01-01T08:00:00+08:00"}
    )
    assert earliest.status_code == 200, earliest.text
    soon = (datetime.now(UTC) + timedelta(hours=23)).isoformat()
    assert (await client.post(SCHEDULER, json={"as_of": soon})).status_code == 200


# --- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "points",
    [
        b"1000000001",
        b"100000000000000000000000000000",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"1" * 5000,
        b"1e400",
        b"-1e400",
        b"1.5",
        b"0",
        b'"5"',
        b"true",
    ],
)
async def test_points_out_of_range_are_invalid_request(
    client: httpx.AsyncClient, engine: AsyncEngine, points: bytes
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    body = b'{"points": ' + points + b', "idempotency_key": "k-1"}'
    message = _assert_error(await client.post(REDEEM, content=body, headers=JSON), 422, "invalid_request")
    assert message.startswith("body.points: ")
    assert len(message) < 200  # the number is not quoted back


@pytest.mark.parametrize("limit", ["0", "201", "9223372036854775808", "1" * 5000, "1e400", "-1", "nan", "1.5"])
async def test_a_limit_out_of_range_is_invalid_request(
    client: httpx.AsyncClient, engine: AsyncEngine, limit: str
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    for path in LISTS:
        message = _assert_error(await client.get(f"{path}?limit={limit}"), 422, "invalid_request")
        assert message.startswith("query.limit: ")


@pytest.mark.parametrize("as_of", [b"1e400", b"99999999999999999999", b"1" * 5000, b"true", b"1764000000", b"0"])
async def test_a_time_that_is_not_an_rfc_3339_string_is_invalid_request(
    client: httpx.AsyncClient, as_of: bytes
) -> None:
    """Numbers are not taken for Unix timestamps, however large or plausible."""
    for path, body in (
        (SCHEDULER, b'{"as_of": ' + as_of + b"}"),
        (REDEEM, b'{"points": 1, "idempotency_key": "k", "at": ' + as_of + b"}"),
    ):
        message = _assert_error(await client.post(path, content=body, headers=JSON), 422, "invalid_request")
        assert "RFC 3339" in message


# --- bodies that are not JSON -------------------------------------------------------------


NOT_JSON: list[tuple[bytes, dict[str, str]]] = [
    (b"not json", JSON),
    (b'{"points": 1, "idempotency_key": "k-1"', JSON),
    (b'{"points": 1, "idempotency_key": "k-1"} trailing', JSON),
    (b"\xff\xfe{}", JSON),
    (b'{"points": 1, "idempotency_key": "\xed\xa0\x80"}', JSON),
    (b'{"points": NaN, "idempotency_key": "k-1"}', JSON),
    (b'{"as_of": Infinity}', JSON),
    (b"[" * 100_000 + b"]" * 100_000, JSON),
    (b'{"points": 1, "idempotency_key": "k-1"}', {"Content-Type": "text/plain"}),
    (b'{"points": 1, "idempotency_key": "k-1"}', {"Content-Type": "application/x-www-form-urlencoded"}),
    (b'{"points": 1, "idempotency_key": "k-1"}', {}),
]


@pytest.mark.parametrize(("body", "headers"), NOT_JSON)
async def test_a_body_that_is_not_json_is_invalid_json_on_every_route_with_a_body(
    client: httpx.AsyncClient, engine: AsyncEngine, body: bytes, headers: dict[str, str]
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    for path in (REDEEM, SCHEDULER):
        request = client.build_request("POST", path, content=body, headers=headers)
        if not headers:
            request.headers.pop("Content-Type", None)
        message = _assert_error(await client.send(request), 422, "invalid_json")
        assert "not" in message


@pytest.mark.parametrize(
    "body",
    [b"[]", b"null", b"1", b'"text"', b'{"points": "many", "idempotency_key": "k-1"}', b"{}", b'{"as_of": []}'],
)
async def test_json_of_the_wrong_shape_is_invalid_request(
    client: httpx.AsyncClient, engine: AsyncEngine, body: bytes
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    for path in (REDEEM, SCHEDULER):
        _assert_error(await client.post(path, content=body, headers=JSON), 422, "invalid_request")


async def test_a_missing_body_is_invalid_request(client: httpx.AsyncClient) -> None:
    for path in (REDEEM, SCHEDULER):
        message = _assert_error(await client.post(path), 422, "invalid_request")
        assert message == "body: Field required"


async def test_the_token_is_checked_before_the_body(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    for path in (REDEEM, SCHEDULER):
        for body in (b"not json", b'{"k": "\\u0000"}', b"[]"):
            _assert_error(
                await client.post(path, content=body, headers={**JSON, "Authorization": "Bearer nope"}),
                401,
                "unauthorized",
            )
            _assert_error(await client.post(path, content=body, headers={**JSON, **READER}), 403, "forbidden")
    _assert_error(await client.get(f"/v1/shops/{SHOP}/members/%00", headers={"Authorization": ""}), 401, "unauthorized")


# --- body size ----------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid redemption body of exactly ``size`` bytes."""
    head = b'{"points": 1, "idempotency_key": "k-1", "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def test_a_body_over_the_limit_with_a_content_length_is_payload_too_large(
    small_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    for path in (REDEEM, SCHEDULER):
        response = await small_client.post(path, content=_padded(1025), headers=JSON)
        message = _assert_error(response, 413, "payload_too_large")
        assert "1024 bytes" in message
        assert "API_MAX_BODY_BYTES" in message
    # Declared sizes are refused before the token is even looked at.
    unauthenticated = await small_client.post(
        REDEEM, content=_padded(1025), headers={**JSON, "Authorization": "Bearer nope"}
    )
    _assert_error(unauthenticated, 413, "payload_too_large")
    at_the_limit = await small_client.post(REDEEM, content=_padded(1024), headers=JSON)
    assert at_the_limit.status_code == 200, at_the_limit.text
    async with engine.connect() as connection:
        assert await connection.scalar(select(members.c.points_balance)) == 99  # only the last was booked


async def test_a_streamed_body_over_the_limit_is_refused_as_it_arrives(
    small_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    pulled: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"points": 1, "idempotency_key": "k-1", "pad": "'
        for n in range(1000):  # 256 kB in all, if it were all read
            pulled.append(n)
            yield b"x" * 256
        yield b'"}'

    response = await small_client.post(REDEEM, content=chunks(), headers=JSON)
    assert "content-length" not in {key.lower() for key in response.request.headers}
    _assert_error(response, 413, "payload_too_large")
    assert len(pulled) <= 5  # counted while streaming: reading stopped just past 1 KiB
    async with engine.connect() as connection:
        assert await connection.scalar(select(members.c.points_balance)) == 100


async def test_a_streamed_body_under_the_limit_is_read_whole(
    small_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await insert_rows(engine, *MEMBER_ROWS)

    async def chunks() -> AsyncIterator[bytes]:
        body = _padded(1000)
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    response = await small_client.post(REDEEM, content=chunks(), headers=JSON)
    assert response.status_code == 200, response.text


async def test_the_default_limit_is_one_mebibyte(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await insert_rows(engine, *MEMBER_ROWS)
    assert Settings().api_max_body_bytes == 1_048_576
    over = await client.post(REDEEM, content=_padded(1_048_577), headers=JSON)
    _assert_error(over, 413, "payload_too_large")
    at = await client.post(REDEEM, content=_padded(1_048_576), headers=JSON)
    assert at.status_code == 200, at.text
