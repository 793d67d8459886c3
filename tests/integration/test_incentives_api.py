"""The incentives report and a member's coupons and decisions over HTTP, on rows inserted into the real database.

The report's every field is checked against values worked out by hand from the rows
below (docs/incentives.md, "The incentives report"); the comments show the arithmetic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import members
from shared.playbook_file import layers_of
from shared.settings import Settings
from tests.builders import coupon_row, decision_row, insert_rows, order_row, share_row
from tests.support import api_in_process

pytestmark = pytest.mark.integration

FULL = {"Authorization": "Bearer test-token"}
READ = {"Authorization": "Bearer reader-token"}
SHOP = "shop-1"
REPORT = f"/v1/shops/{SHOP}/incentives/report"
T = datetime(2026, 3, 2, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
# gift_a has a 7-day attribution window in this shop's playbook; gift_b is not in the playbook: 14 days.
PLAYBOOK = {"shops": {SHOP: {"rules": {"gift_a": {"attribution_window": "P7D"}}}}}

Row = tuple[Table, dict[str, Any]]


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(
        settings, read_tokens=("reader-token",), layers=layers_of(PLAYBOOK), headers=READ
    ) as http:
        yield http


# --- the report's population --------------------------------------------------------------------------

GIFT_A_TREATED: list[Row] = [
    # m1: the only order after the decision is the one that triggered it: not converted.
    decision_row("d1", "m1", "gift_a", "emitted", T + HOUR, value="10.00", order_id="o-t1"),
    coupon_row("C1", "m1", "gift_a", "d1", "10.00", T + HOUR),
    order_row("o-t1", "m1", T + HOUR + timedelta(minutes=1)),
    # m2: paid exactly at at + 7 days: converted. Its coupon expired.
    decision_row("d2", "m2", "gift_a", "emitted", T + 2 * HOUR, value="10.00"),
    coupon_row("C2", "m2", "gift_a", "d2", "10.00", T + 2 * HOUR, status="expired"),
    order_row("o-m2", "m2", T + 2 * HOUR + 7 * DAY),
    # m3: paid a second after the window: not converted; that order redeemed the coupon (80.00 attributed).
    decision_row("d3", "m3", "gift_a", "emitted", T + 3 * HOUR, value="10.00"),
    coupon_row("C3", "m3", "gift_a", "d3", "10.00", T + 3 * HOUR, status="redeemed", order_id="o-m3"),
    order_row("o-m3", "m3", T + 3 * HOUR + 7 * DAY + timedelta(seconds=1), "80.00"),
    # m4: paid exactly at the decision's time: not converted. Its code was shared twice.
    decision_row("d4", "m4", "gift_a", "emitted", T + 4 * HOUR, value="10.00"),
    coupon_row("C4", "m4", "gift_a", "d4", "10.00", T + 4 * HOUR),
    order_row("o-m4", "m4", T + 4 * HOUR, "30.00"),
    share_row("C4", "o-s1", "m20", T + DAY),
    share_row("C4", "o-s2", "m21", T + 2 * DAY),
    # Not shared: m4 naming its own code again, and a code named before its coupon was issued.
    share_row("C4", "o-own", "m4", T + 5 * DAY),
    share_row("C7", "o-early", "m23", T + 6 * HOUR),
    # m5: two decisions, counted once from the first (T+5h); the order after the second is outside the first's window.
    decision_row("d5", "m5", "gift_a", "emitted", T + 5 * HOUR, value="10.00"),
    coupon_row("C5", "m5", "gift_a", "d5", "10.00", T + 5 * HOUR),
    decision_row("d5b", "m5", "gift_a", "emitted", T + 10 * DAY, value="10.00"),
    coupon_row("C5b", "m5", "gift_a", "d5b", "10.00", T + 10 * DAY, status="redeemed", order_id="o-m5"),
    order_row("o-m5", "m5", T + 10 * DAY + HOUR, "50.00"),
    # m6: converted; one order redeemed both of its coupons: one attributed order of 200.00.
    decision_row("d6", "m6", "gift_a", "emitted", T + 6 * HOUR, value="20.00"),
    coupon_row("C6", "m6", "gift_a", "d6", "20.00", T + 6 * HOUR, status="redeemed", order_id="o-m6"),
    decision_row("d6b", "m6", "gift_a", "emitted", T + 6 * HOUR + timedelta(minutes=1), value="5.00"),
    coupon_row("C6b", "m6", "gift_a", "d6b", "5.00", T + 6 * HOUR, status="redeemed", order_id="o-m6"),
    order_row("o-m6", "m6", T + DAY, "200.00"),
    # m7: an order never paid: not converted.
    decision_row("d7", "m7", "gift_a", "emitted", T + 7 * HOUR, value="10.00"),
    coupon_row("C7", "m7", "gift_a", "d7", "10.00", T + 7 * HOUR),
    order_row("o-m7", "m7", None),
]
GIFT_A_HOLDOUT: list[Row] = [
    # m11: held out exactly at ``from``; paid 3 days on: converted.
    decision_row("h1", "m11", "gift_a", "holdout", T),
    order_row("o-h1", "m11", T + 3 * DAY),
    # m12: held out twice; only the second decision's window holds an order: not converted.
    decision_row("h2", "m12", "gift_a", "holdout", T + 2 * HOUR),
    decision_row("h2b", "m12", "gift_a", "holdout", T + 20 * DAY),
    order_row("o-h2", "m12", T + 21 * DAY),
    # m13: paid 8 days on: outside gift_a's 7 days (inside the default 14): not converted.
    decision_row("h3", "m13", "gift_a", "holdout", T + 3 * HOUR),
    order_row("o-h3", "m13", T + 8 * DAY + 3 * HOUR),
    # m14: converted.
    decision_row("h4", "m14", "gift_a", "holdout", T + 4 * HOUR),
    order_row("o-h4", "m14", T + 6 * DAY),
]
GIFT_A_ELSEWHERE: list[Row] = [
    # Neither treated nor holdout, though both paid afterwards.
    decision_row("x1", "m15", "gift_a", "budget_exhausted", T + HOUR, value="10.00"),
    order_row("o-m15", "m15", T + DAY),
    decision_row("x2", "m16", "gift_a", "late_skipped", T + HOUR),
    order_row("o-m16", "m16", T + DAY),
    # Before ``from``: m8's decision, coupon and a share of it.
    decision_row("d0", "m8", "gift_a", "emitted", T - DAY, value="10.00"),
    coupon_row("C0", "m8", "gift_a", "d0", "10.00", T - DAY),
    share_row("C0", "o-s3", "m22", T),
    # At ``to``: excluded.
    decision_row("d-end", "m10", "gift_a", "emitted", T + 30 * DAY, value="10.00"),
    coupon_row("C10", "m10", "gift_a", "d-end", "10.00", T + 30 * DAY),
    # A campaign's decision of the same rule, and a campaign-only rule: not in the report.
    decision_row("c1", "m9", "gift_a", "emitted", T + HOUR, value="15.00", campaign_id="camp-1"),
    coupon_row(
        "CC1", "m9", "gift_a", "c1", "15.00", T + HOUR, status="redeemed", order_id="o-m9", campaign_id="camp-1"
    ),
    order_row("o-m9", "m9", T + DAY, "99.00"),
    decision_row("c2", "m9", "camp_only", "emitted", T + HOUR, value="15.00", campaign_id="camp-2"),
    # Another shop, with the same codes and order ids.
    decision_row("s2-d1", "m1", "gift_a", "emitted", T + HOUR, value="10.00", shop="shop-2"),
    coupon_row("C4", "m1", "gift_a", "s2-d1", "10.00", T + HOUR, status="redeemed", order_id="o-m6", shop="shop-2"),
    order_row("o-m6", "m1", T + DAY, "999.00", shop="shop-2"),
    share_row("C4", "o-s9", "m2", T + DAY, shop="shop-2"),
]
GIFT_B: list[Row] = [
    # Points, worth 5.00 and 3.00; no holdout. m1 paid 14 days after ``from``, 13 after the decision: converted.
    decision_row("e1", "m1", "gift_b", "emitted", T + DAY, kind="points", value="5.00", points=500),
    order_row("o-b1", "m1", T + 14 * DAY),
    # m2's order at T+7d2h is 6d2h after this decision: converted.
    decision_row("e2", "m2", "gift_b", "emitted", T + DAY, kind="points", value="3.00", points=300),
]
GIFT_C: list[Row] = [
    decision_row("f1", "m1", "gift_c", "budget_exhausted", T + 2 * DAY),
    decision_row("f2", "m2", "gift_c", "late_skipped", T + 3 * DAY),
]

EMPTY_UPLIFT = {"rate_diff": None, "ci95": None}
NOBODY = {"members": 0, "converted": 0}

# gift_b: issued 2 (5.00 + 3.00 = 8.00), no coupon (rate null); cost = 0.00 + 8.00 points;
# roi = (0 - 8) / 8 = -1; treated m1, m2 both converted; no holdout: uplift null.
GIFT_B_ITEM = {
    "rule": "gift_b",
    "issued": 2,
    "issued_value": "8.00",
    "redeemed": 0,
    "redeemed_value": "0.00",
    "redemption_rate": None,
    "coupons_shared": 0,
    "attributed_orders": 0,
    "attributed_revenue": "0.00",
    "cost": "8.00",
    "roi": -1.0,
    "treated": {"members": 2, "converted": 2},
    "holdout": NOBODY,
    "uplift": EMPTY_UPLIFT,
}
# gift_c: only budget_exhausted and late_skipped decisions: listed, all zero; cost 0: roi null.
GIFT_C_ITEM = {
    "rule": "gift_c",
    "issued": 0,
    "issued_value": "0.00",
    "redeemed": 0,
    "redeemed_value": "0.00",
    "redemption_rate": None,
    "coupons_shared": 0,
    "attributed_orders": 0,
    "attributed_revenue": "0.00",
    "cost": "0.00",
    "roi": None,
    "treated": NOBODY,
    "holdout": NOBODY,
    "uplift": EMPTY_UPLIFT,
}


async def _population(engine: AsyncEngine) -> None:
    await insert_rows(engine, *GIFT_A_TREATED, *GIFT_A_HOLDOUT, *GIFT_A_ELSEWHERE, *GIFT_B, *GIFT_C)


async def _report(client: httpx.AsyncClient, **params: datetime) -> dict[str, Any]:
    answer = await client.get(REPORT, params={name.rstrip("_"): at.isoformat() for name, at in params.items()})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code, answer.text


async def test_the_report_counts_every_field_of_each_rule(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _population(engine)
    body = await _report(client, from_=T, to=T + 30 * DAY)
    assert (body["from"], body["to"]) == ("2026-03-02T00:00:00Z", "2026-04-01T00:00:00Z")
    assert [item["rule"] for item in body["items"]] == ["gift_a", "gift_b", "gift_c"]  # no campaign-only rule
    gift_a, gift_b, gift_c = body["items"]
    # gift_a, [T, T+30d): emitted d1 d2 d3 d4 d5 d5b d6 d6b d7 = 9, worth 7 x 10.00 + 20.00 + 5.00 = 95.00.
    # Their 9 coupons; redeemed C3 C5b C6 C6b = 4 worth 10 + 10 + 20 + 5 = 45.00: rate 4/9 = 0.4444.
    # Shared: C4 twice (C0 is before ``from``; the other shop's C4 is not this shop's). Orders that redeemed
    # them: o-m3 80.00, o-m5 50.00, o-m6 200.00 (two coupons, one order) = 3 orders, 330.00.
    # cost = 45.00 (no points); roi = (330 - 45) / 45 = 6.3333.
    # Treated m1..m7 = 7, converted m2 (at the window's edge) and m6 = 2: 2/7.
    # Holdout m11..m14 = 4, converted m11 and m14 = 2: 2/4. rate_diff = 2/7 - 1/2 = -0.2143.
    # Wilson(2/7) = (0.082219, 0.641066), Wilson(2/4) = (0.150039, 0.849961);
    # low = -0.214286 - sqrt(0.203495² + 0.349961²) = -0.214286 - 0.404825 = -0.6191,
    # high = -0.214286 + sqrt(0.355352² + 0.349961²) = -0.214286 + 0.498746 = 0.2845.
    assert gift_a == {
        "rule": "gift_a",
        "issued": 9,
        "issued_value": "95.00",
        "redeemed": 4,
        "redeemed_value": "45.00",
        "redemption_rate": 0.4444,
        "coupons_shared": 2,
        "attributed_orders": 3,
        "attributed_revenue": "330.00",
        "cost": "45.00",
        "roi": 6.3333,
        "treated": {"members": 7, "converted": 2},
        "holdout": {"members": 4, "converted": 2},
        "uplift": {"rate_diff": -0.2143, "ci95": [-0.6191, 0.2845]},
    }
    assert gift_b == GIFT_B_ITEM
    assert gift_c == GIFT_C_ITEM


async def test_from_and_to_bound_the_cohort(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _population(engine)
    # Unbounded below: m8's decision (T-1d) joins: issued 10, 105.00, 10 coupons (rate 4/10), C0's share;
    # treated 8 (m8 not converted): 2/8 - 2/4 = -0.25; Newcombe (2/8, 2/4) = (-0.6429, 0.2384).
    unbounded = await _report(client, to=T + 30 * DAY)
    assert unbounded["from"] is None
    gift_a = unbounded["items"][0]
    assert (gift_a["issued"], gift_a["issued_value"], gift_a["redemption_rate"], gift_a["coupons_shared"]) == (
        10,
        "105.00",
        0.4,
        3,
    )
    assert (gift_a["treated"], gift_a["uplift"]) == (
        {"members": 8, "converted": 2},
        {"rate_diff": -0.25, "ci95": [-0.6429, 0.2384]},
    )
    assert unbounded["items"][1:] == [GIFT_B_ITEM, GIFT_C_ITEM]

    # [T+5h, T+6h): only d5 (at ``from`` included; d6 at ``to`` excluded). Its coupon is not redeemed: rate 0;
    # nothing cost anything: roi null; no holdout: uplift null.
    narrow = await _report(client, from_=T + 5 * HOUR, to=T + 6 * HOUR)
    assert narrow["items"] == [
        {
            "rule": "gift_a",
            "issued": 1,
            "issued_value": "10.00",
            "redeemed": 0,
            "redeemed_value": "0.00",
            "redemption_rate": 0.0,
            "coupons_shared": 0,
            "attributed_orders": 0,
            "attributed_revenue": "0.00",
            "cost": "0.00",
            "roi": None,
            "treated": {"members": 1, "converted": 0},
            "holdout": NOBODY,
            "uplift": EMPTY_UPLIFT,
        }
    ]

    # [T+6h, T+30d): m5's first decision in the cohort is now d5b, and o-m5 converts it; m12's first is h2b,
    # and o-h2 converts it. Emitted d5b d6 d6b d7: 45.00; coupons C5b C6 C6b C7, redeemed 3 (35.00): 0.75;
    # orders o-m5 50.00 + o-m6 200.00; roi = (250 - 35) / 35 = 6.1429. Treated m5 m6 m7, converted m5 m6: 2/3;
    # holdout m12 1/1: -0.3333, Newcombe (2/3, 1/1) = (-0.7923, 0.5054).
    later = await _report(client, from_=T + 6 * HOUR, to=T + 30 * DAY)
    assert later["items"][0] == {
        "rule": "gift_a",
        "issued": 4,
        "issued_value": "45.00",
        "redeemed": 3,
        "redeemed_value": "35.00",
        "redemption_rate": 0.75,
        "coupons_shared": 0,
        "attributed_orders": 2,
        "attributed_revenue": "250.00",
        "cost": "35.00",
        "roi": 6.1429,
        "treated": {"members": 3, "converted": 2},
        "holdout": {"members": 1, "converted": 1},
        "uplift": {"rate_diff": -0.3333, "ci95": [-0.7923, 0.5054]},
    }

    # Without ``to`` the report ends now: m10's decision at T+30d joins (10 issued, 105.00, 10 coupons: 4/10;
    # treated 8, as unbounded below above).
    until_now = await _report(client, from_=T)
    assert datetime.fromisoformat(until_now["to"]) >= datetime.now(UTC) - timedelta(minutes=1)
    gift_a = until_now["items"][0]
    assert (gift_a["issued"], gift_a["issued_value"], gift_a["redemption_rate"], gift_a["coupons_shared"]) == (
        10,
        "105.00",
        0.4,
        2,
    )
    assert (gift_a["treated"], gift_a["uplift"]["rate_diff"]) == ({"members": 8, "converted": 2}, -0.25)

    # Neither bound: m8's and m10's decisions both join: 11 issued, 115.00, 4/11 = 0.3636, 3 shares;
    # treated 9: 2/9 - 2/4 = -0.2778, Newcombe (2/9, 2/4) = (-0.6622, 0.1999).
    everything = await _report(client)
    assert everything["items"] == [
        {
            **narrow["items"][0],
            "issued": 11,
            "issued_value": "115.00",
            "redeemed": 4,
            "redeemed_value": "45.00",
            "redemption_rate": 0.3636,
            "coupons_shared": 3,
            "attributed_orders": 3,
            "attributed_revenue": "330.00",
            "cost": "45.00",
            "roi": 6.3333,
            "treated": {"members": 9, "converted": 2},
            "holdout": {"members": 4, "converted": 2},
            "uplift": {"rate_diff": -0.2778, "ci95": [-0.6622, 0.1999]},
        },
        GIFT_B_ITEM,
        GIFT_C_ITEM,
    ]


async def test_the_report_echoes_its_bounds_with_their_offsets(client: httpx.AsyncClient) -> None:
    answer = await client.get(REPORT, params={"from": "2026-03-01T08:00:00+08:00", "to": "2026-03-02T00:00:00Z"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"from": "2026-03-01T08:00:00+08:00", "to": "2026-03-02T00:00:00Z", "items": []}


async def test_the_report_needs_a_token_and_any_token_reads_it(client: httpx.AsyncClient) -> None:
    _error(await client.get(REPORT, headers={"Authorization": ""}), 401, "unauthorized")
    _error(await client.get(REPORT, headers={"Authorization": "Bearer nope"}), 401, "unauthorized")
    assert (await client.get(REPORT, headers=READ)).status_code == 200
    assert (await client.get(REPORT, headers=FULL)).status_code == 200


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "yesterday"}, "invalid_request"),
        ({"from": "1772409600"}, "invalid_request"),  # a Unix timestamp is not RFC 3339
        ({"to": "2026-03-02"}, "invalid_request"),
        ({"to": "2026-03-02T00:00:00"}, "invalid_request"),  # no offset
        ({"to": "2026-03-02 00:00:00Z"}, "invalid_request"),
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-02T00:00:00Z"}, "invalid_request"),  # from = to
        ({"from": "2026-03-03T00:00:00Z", "to": "2026-03-02T00:00:00+08:00"}, "invalid_request"),  # from > to
        ({"from": (datetime.now(UTC) + HOUR).isoformat()}, "invalid_request"),  # after now, to omitted
        ({"from": "1999-12-31T23:59:59Z"}, "time_out_of_range"),
        ({"to": (datetime.now(UTC) + 2 * DAY).isoformat()}, "time_out_of_range"),
        ({"to": "0001-01-01T00:00:00+23:59"}, "time_out_of_range"),
    ],
)
async def test_bad_bounds_answer_422(client: httpx.AsyncClient, params: dict[str, str], code: str) -> None:
    _error(await client.get(REPORT, params=params), 422, code)


# --- a member's coupons and decisions -------------------------------------------------------------

MEMBER = f"/v1/shops/{SHOP}/members"


async def _pages(client: httpx.AsyncClient, path: str, **params: str | int) -> list[list[dict[str, Any]]]:
    """Every page of a list, following ``next_cursor`` to the end."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        answer = await client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def _wallet(engine: AsyncEngine) -> None:
    await insert_rows(
        engine,
        (members, {"shop_id": SHOP, "member_id": "m1"}),
        (members, {"shop_id": SHOP, "member_id": "m-empty"}),
        coupon_row("B", "m1", "gift_a", "d-b", "10.00", T + 2 * DAY),
        coupon_row(
            "A", "m1", "gift_a", "d-a", "10.00", T + 2 * DAY, status="redeemed", order_id="o-1", redeemed_at=T + 3 * DAY
        ),
        coupon_row("C", "m1", "gift_a", "d-c", "10.00", T + DAY, status="expired", min_spend=None),
        coupon_row("D", "m1", "welcome", "d-d", "5.50", T, status="redeemed", order_id="o-2", redeemed_at=T + HOUR),
        coupon_row("E", "m1", "gift_b", "d-e", "20.00", T + 3 * DAY, campaign_id="camp-1"),
        coupon_row("F", "m2", "gift_a", "d-f", "10.00", T + 4 * DAY),  # another member's
        coupon_row("G", "m1", "gift_a", "d-g", "10.00", T + 4 * DAY, shop="shop-2"),  # another shop's
        coupon_row("H", "m-no-row", "gift_a", "d-h", "10.00", T),  # a member known by its coupons alone
    )


async def test_a_members_coupons_newest_issued_first_then_by_code(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _wallet(engine)
    pages = await _pages(client, f"{MEMBER}/m1/coupons", limit=2)
    assert [[item["code"] for item in page] for page in pages] == [["E", "A"], ["B", "C"], ["D"]]
    assert pages[0][1] == {
        "code": "A",
        "rule": "gift_a",
        "campaign_id": None,
        "value": "10.00",
        "min_spend": "99.00",
        "issued_at": "2026-03-04T00:00:00Z",
        "expires_at": "2026-04-03T00:00:00Z",
        "status": "redeemed",
        "order_id": "o-1",
        "redeemed_at": "2026-03-05T00:00:00Z",
    }
    assert (pages[0][0]["campaign_id"], pages[1][1]["min_spend"], pages[2][0]["value"]) == ("camp-1", None, "5.50")
    whole = await client.get(f"{MEMBER}/m1/coupons")
    assert [item["code"] for item in whole.json()["items"]] == ["E", "A", "B", "C", "D"]
    assert whole.json()["next_cursor"] is None


async def test_a_members_coupons_filtered_by_status(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _wallet(engine)
    found = {
        status: [
            [item["code"] for item in page]
            for page in await _pages(client, f"{MEMBER}/m1/coupons", limit=1, status=status)
        ]
        for status in ("issued", "redeemed", "expired")
    }
    assert found == {"issued": [["E"], ["B"]], "redeemed": [["A"], ["D"]], "expired": [["C"]]}
    empty = await client.get(f"{MEMBER}/m-no-row/coupons", params={"status": "expired"})
    assert empty.json() == {"items": [], "next_cursor": None}  # known by its coupons, none expired
    _error(await client.get(f"{MEMBER}/m1/coupons", params={"status": "lost"}), 422, "invalid_request")
    _error(await client.get(f"{MEMBER}/m1/coupons", params={"status": ""}), 422, "invalid_request")


async def _decisions(engine: AsyncEngine) -> None:
    """m1's decisions, and others'; m-empty (a members row, from ``_wallet``) has none."""
    await insert_rows(
        engine,
        decision_row("d-a", "m1", "gift_a", "emitted", T, value="10.00", order_id="o-9"),
        decision_row("d-b", "m1", "gift_a", "holdout", T),
        decision_row("d-c", "m1", "gift_b", "emitted", T + DAY, kind="points", value="2.00", points=200),
        decision_row("d-z", "m1", "gift_c", "budget_exhausted", T - DAY, campaign_id="camp-1"),
        decision_row("d-y", "m2", "gift_a", "emitted", T + 2 * DAY),  # another member's
        decision_row("d-x", "m1", "gift_a", "emitted", T + 2 * DAY, shop="shop-2"),  # another shop's
    )


async def test_a_members_decisions_newest_first(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _wallet(engine)
    await _decisions(engine)
    pages = await _pages(client, f"{MEMBER}/m1/decisions", limit=3)
    # The same business time: by decision_id, descending.
    assert [[(item["rule"], item["outcome"]) for item in page] for page in pages] == [
        [("gift_b", "emitted"), ("gift_a", "holdout"), ("gift_a", "emitted")],
        [("gift_c", "budget_exhausted")],
    ]
    assert pages[0][2] == {
        "rule": "gift_a",
        "campaign_id": None,
        "outcome": "emitted",
        "reason": "decided",
        "at": "2026-03-02T00:00:00Z",
        "action_id": "d-a",
        "playbook_version": 3,
        "value": "10.00",
        "kind": "coupon",
        "order_id": "o-9",
    }
    assert (pages[0][0]["kind"], pages[0][0]["value"], pages[0][1]["action_id"]) == ("points", "2.00", None)
    assert pages[1][0]["campaign_id"] == "camp-1"
    one_by_one = await _pages(client, f"{MEMBER}/m1/decisions", limit=1)
    assert [page[0] for page in one_by_one] == [item for page in pages for item in page]


async def test_unknown_members_and_foreign_cursors(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await _wallet(engine)
    await _decisions(engine)
    for listing in ("coupons", "decisions"):
        _error(await client.get(f"{MEMBER}/nobody/{listing}"), 404, "member_not_found")
        known = await client.get(f"{MEMBER}/m-empty/{listing}")  # a members row, nothing listed
        assert known.json() == {"items": [], "next_cursor": None}
        _error(await client.get(f"{MEMBER}/m1/{listing}", params={"cursor": "garbage"}), 422, "invalid_cursor")
        _error(await client.get(f"{MEMBER}/m1/{listing}", params={"limit": 0}), 422, "invalid_request")
    assert [item["code"] for item in (await client.get(f"{MEMBER}/m-no-row/coupons")).json()["items"]] == ["H"]
    coupon_cursor = (await client.get(f"{MEMBER}/m1/coupons", params={"limit": 1})).json()["next_cursor"]
    decision_cursor = (await client.get(f"{MEMBER}/m1/decisions", params={"limit": 1})).json()["next_cursor"]
    _error(await client.get(f"{MEMBER}/m1/decisions", params={"cursor": coupon_cursor}), 422, "invalid_cursor")
    _error(await client.get(f"{MEMBER}/m1/coupons", params={"cursor": decision_cursor}), 422, "invalid_cursor")


async def test_member_lists_need_a_token_and_any_token_reads_them(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _wallet(engine)
    await _decisions(engine)
    for listing in ("coupons", "decisions"):
        path = f"{MEMBER}/m1/{listing}"
        _error(await client.get(path, headers={"Authorization": ""}), 401, "unauthorized")
        assert (await client.get(path, headers=READ)).status_code == 200
        assert (await client.get(path, headers=FULL)).status_code == 200
