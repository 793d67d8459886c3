"""The console's routes on the real app: pages in both languages with strict headers, the static
files, and the session route that tells a page what its token may do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.domain.segments import FIELDS
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.support import api_in_process

pytestmark = pytest.mark.integration

PAGES = [
    "/console/",
    "/console/signin",
    "/console/members",
    "/console/segments",
    "/console/campaigns",
    "/console/campaigns/6f1c2a4e-8b9d-4c3e-a1f0-5b6c7d8e9f00",
    "/console/incentives",
    "/console/playbook",
]
OUTSIDE = ["/console/static/../pages.py", "/console/static/%2e%2e/pages.py", "/console/static/nope.js"]


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(settings, read_tokens=("reader-token",), playbook=load_playbook(None)) as http:
        yield http


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_is_served_without_data_and_with_strict_headers(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert '<html lang="en">' in answer.text
    assert 'src="/console/static/console.js"' in answer.text
    # Only the console's own scripts, none written inline: the messages are a JSON data block.
    assert answer.text.count("<script") == answer.text.count('<script src="/console/static/') + answer.text.count(
        'type="application/json"'
    )


async def test_the_bare_path_leads_to_the_console(client: httpx.AsyncClient) -> None:
    answer = await client.get("/console")
    assert answer.status_code == 307
    assert answer.headers["location"] == "/console/"


async def test_a_language_link_sets_the_cookie_that_later_pages_follow(client: httpx.AsyncClient) -> None:
    chosen = await client.get("/console/members?lang=zh", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in chosen.text
    assert "<h1>会员</h1>" in chosen.text
    assert "console_lang=zh" in chosen.headers["set-cookie"]
    assert "Path=/console" in chosen.headers["set-cookie"]
    later = await client.get("/console/segments", headers={"Accept-Language": "en"})  # the client kept the cookie
    assert "<h1>人群</h1>" in later.text
    client.cookies.clear()
    assert "<h1>Segments</h1>" in (await client.get("/console/segments", headers={"Accept-Language": "en"})).text
    assert "<h1>人群</h1>" in (await client.get("/console/segments", headers={"Accept-Language": "zh-CN"})).text


async def test_a_campaign_id_from_the_path_is_escaped_in_the_page(client: httpx.AsyncClient) -> None:
    answer = await client.get('/console/campaigns/"><img src=x onerror=alert(1)>')
    assert answer.status_code == 200
    assert "<img" not in answer.text
    assert 'data-campaign-id="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in answer.text


async def test_the_segment_page_carries_the_definition_languages_fields(client: httpx.AsyncClient) -> None:
    page = (await client.get("/console/segments")).text
    start = page.index('<script id="segment-fields" type="application/json">') + len(
        '<script id="segment-fields" type="application/json">'
    )
    fields = json.loads(page[start : page.index("</script>", start)])
    assert fields["net_spend"] == {"kind": "money", "ops": ["=", "!=", "<", "<=", ">", ">=", "in", "between"]}
    assert fields["marketing_consent"] == {"kind": "boolean", "ops": ["=", "!="]}
    assert set(fields) == set(FIELDS)


async def test_the_session_route_tells_the_tokens_scope_and_refuses_others(client: httpx.AsyncClient) -> None:
    missing = await client.get("/console/session")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = await client.get("/console/session", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    full = await client.get("/console/session", headers={"Authorization": "Bearer test-token"})
    assert full.json() == {"scope": "full", "identity": "token:" + hashlib.sha256(b"test-token").hexdigest()[:12]}
    read = await client.get("/console/session", headers={"Authorization": "Bearer reader-token"})
    assert read.json() == {"scope": "read", "identity": "token:" + hashlib.sha256(b"reader-token").hexdigest()[:12]}


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/console/static/console.js", "text/javascript"),
        ("/console/static/pages/segments.js", "text/javascript"),
        ("/console/static/console.css", "text/css"),
        ("/console/static/vendor/chart.umd.min.js", "text/javascript"),
    ],
)
async def test_the_static_files_are_served(client: httpx.AsyncClient, path: str, media_type: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)


@pytest.mark.parametrize(
    "path", ["/console/static/../pages.py", "/console/static/%2e%2e/pages.py", "/console/static/nope.js"]
)
async def test_nothing_outside_the_static_files_is_served(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert "console_pages" not in answer.text


async def test_the_console_stays_out_of_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/console")]
