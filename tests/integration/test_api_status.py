"""The member status over HTTP: its figures agree with the pure domain, its bytes with the documented shape."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import actions, member_manual_tags, members, notifications, points_ledger, rfm_edges
from shared.domain import points
from shared.domain.model import LedgerEntry, LedgerKind
from shared.domain.rfm import RfmEdges, rfm_scores, rfm_segment
from shared.playbook_file import load_playbook
from shared.settings import Settings
from tests.support import api_in_process

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer test-token"}
SHOP = "shop-1"
AS_OF = datetime(2026, 1, 11, 1, 0, tzinfo=UTC)
LEAD = timedelta(days=14)  # the default playbook's points_expiry_reminder lead
PLAYBOOK = load_playbook(None)


@pytest_asyncio.fixture
async def client(engine: AsyncEngine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_in_process(settings, playbook=PLAYBOOK, headers=AUTH) as http:
        yield http


def _ledger(rng: random.Random, as_of: datetime) -> list[LedgerEntry]:
    """Credits expiring on, just inside and just outside the window's edges, and FIFO debits between them."""
    expiries = [as_of, as_of + timedelta(seconds=1), as_of + LEAD, as_of + LEAD + timedelta(seconds=1)]
    expiries += [as_of - timedelta(days=3), as_of + timedelta(days=200)]
    lines = []
    for index in range(rng.randint(0, 8)):
        at = as_of - timedelta(days=rng.randint(1, 400))
        if rng.random() < 0.65:
            expires_at = rng.choice([*expiries, None]) if rng.random() < 0.9 else None
            lines.append(LedgerEntry(f"earn:{index}", "earn", rng.randint(1, 300), at, expires_at))
        else:
            kind: LedgerKind = rng.choice(["redeem", "expire", "reverse"])
            lines.append(LedgerEntry(f"{kind}:{index}", kind, -rng.randint(0, 200), at, None, rng.randint(0, 5)))
    return lines


async def test_expiring_points_and_rfm_agree_with_the_domain(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    rng = random.Random(2026)
    edges = RfmEdges(AS_OF, (10.0, 30.0, 90.0, 200.0), (1.0, 2.0, 3.0, 5.0), (50.0, 120.0, 300.0, 800.0))
    cases: dict[str, tuple[datetime | None, list[LedgerEntry], datetime | None]] = {}
    async with engine.begin() as connection:
        await connection.execute(
            insert(rfm_edges).values(
                shop_id=SHOP,
                as_of=edges.as_of,
                buyers=100,
                recency_days=list(edges.recency_days),
                frequency=list(edges.frequency),
                monetary=list(edges.monetary),
            )
        )
        for number in range(60):
            member_id = f"m-{number}"
            # as_of is the later of the latest event and the latest scheduler run; either may be missing.
            event_at = rng.choice([None, AS_OF, AS_OF - timedelta(days=2)])
            scheduled = rng.choice([None, AS_OF, AS_OF - timedelta(hours=5)])
            known = [t for t in (event_at, scheduled) if t is not None]
            as_of = max(known) if known else None
            ledger = _ledger(rng, as_of or AS_OF)
            last_order_at = rng.choice([None, AS_OF - timedelta(days=rng.randint(0, 500))])
            cases[member_id] = (as_of, ledger, last_order_at)
            await connection.execute(
                insert(members).values(
                    shop_id=SHOP,
                    member_id=member_id,
                    last_event_at=event_at,
                    scheduled_until=scheduled,
                    last_order_at=last_order_at,
                    paid_orders=number % 7,
                    net_spend=Decimal(number * 37) / 4,
                    points_balance=points.balance(ledger),
                )
            )
            for line in ledger:
                await connection.execute(
                    insert(points_ledger).values(
                        shop_id=SHOP,
                        member_id=member_id,
                        entry_id=line.entry_id,
                        kind=line.kind,
                        points=line.points,
                        shortfall=line.shortfall,
                        at=line.at,
                        expires_at=line.expires_at,
                    )
                )
    soon_seen = 0
    shop = PLAYBOOK.for_shop(SHOP)
    for member_id, (as_of, ledger, last_order_at) in cases.items():
        response = await client.get(f"/v1/shops/{SHOP}/members/{member_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        expected_soon = points.expiring_within(ledger, as_of, as_of + LEAD) if as_of is not None else 0
        assert body["points"]["expiring_soon"] == expected_soon, (member_id, as_of, ledger)
        assert body["points"]["balance"] == points.balance(ledger)
        assert body["as_of"] == (None if as_of is None else as_of.isoformat().replace("+00:00", "Z"))
        number = int(member_id.removeprefix("m-"))
        scores = rfm_scores(edges, last_order_at, number % 7, Decimal(number * 37) / 4)
        if scores is None:
            assert body["rfm"] is None
        else:
            r, f, m = scores
            segment = rfm_segment(r, f, m, shop.rfm.segments)
            assert body["rfm"] == {"r": r, "f": f, "m": m, "segment": segment, "as_of": "2026-01-11T01:00:00Z"}
        soon_seen += expected_soon > 0
    assert soon_seen >= 5  # the window's edges were exercised, not only empty ledgers


async def test_status_bytes_are_the_documented_shape(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    base = datetime(2025, 1, 10, 1, 0, tzinfo=UTC)
    async with engine.begin() as connection:
        await connection.execute(
            insert(members).values(
                shop_id=SHOP,
                member_id="m-1001",
                joined_at=base,
                tier="advanced",
                tier_since=base + timedelta(days=250, minutes=3),
                net_spend=Decimal("250.00"),
                paid_orders=3,
                first_order_at=base + timedelta(hours=1, minutes=6),
                last_order_at=base + timedelta(days=250, minutes=3),
                stage="at_risk",
                stage_since=base + timedelta(days=340, minutes=3),
                win_backs=1,
                qualifying_net_spend=Decimal("130.00"),
                qualifying_orders=2,
                points_balance=250,
                points_next_expiry_at=datetime(2026, 1, 14, 1, 0, tzinfo=UTC),
                score=530,
                score_band="silver",
                score_parts={"purchase": 230, "interaction": 30, "base": 270},
                last_event_at=base + timedelta(days=250, minutes=3),
                scheduled_until=AS_OF,
                updated_at=datetime(2026, 1, 11, 1, 0, 2, 120000, tzinfo=UTC),
                tags=["purchase.repeat_buyer", "lifecycle.stage_at_risk"],
            )
        )
        await connection.execute(
            insert(member_manual_tags).values(shop_id=SHOP, member_id="m-1001", tag="manual.gala", expires_at=None)
        )
        lines = [
            ("earn:o-1", "earn", 230, base, base.replace(year=2027)),
            ("gift:1", "gift", 20, base + timedelta(days=4), datetime(2026, 1, 14, 1, 0, tzinfo=UTC)),
        ]
        for entry_id, kind, amount, at, expires_at in lines:
            await connection.execute(
                insert(points_ledger).values(
                    shop_id=SHOP,
                    member_id="m-1001",
                    entry_id=entry_id,
                    kind=kind,
                    points=amount,
                    at=at,
                    expires_at=expires_at,
                )
            )
    response = await client.get(f"/v1/shops/{SHOP}/members/m-1001")
    assert response.status_code == 200
    # Score parts come in JSONB's key order (shorter keys first), as stored.
    assert response.headers["content-type"] == "application/json"
    assert (
        response.content
        == (
            '{"shop_id":"shop-1","member_id":"m-1001","joined_at":"2025-01-10T01:00:00Z",'
            '"tier":{"code":"advanced","name":"高级会员 Advanced","since":"2025-09-17T01:03:00Z"},'
            '"metrics":{"net_spend":"250.00","paid_orders":3,"average_order_value":"83.33",'
            '"first_order_at":"2025-01-10T02:06:00Z","last_order_at":"2025-09-17T01:03:00Z"},'
            '"next_tier":{"code":"vip","spend_needed":"370.00","orders_needed":3},'
            '"qualifying":{"window_days":365,"net_spend":"130.00","paid_orders":2},'
            '"lifecycle":{"stage":"at_risk","since":"2025-12-16T01:03:00Z","win_backs":1},'
            '"points":{"balance":250,"expiring_soon":20,"next_expiry_at":"2026-01-14T01:00:00Z"},'
            '"score":{"value":530,"band":"silver","parts":{"base":270,"purchase":230,"interaction":30}},'
            '"rfm":null,"tags":["lifecycle.stage_at_risk","manual.gala","purchase.repeat_buyer"],'
            '"as_of":"2026-01-11T01:00:00Z","updated_at":"2026-01-11T01:00:02.120000Z"}'
        ).encode()
    )


def _compact(document: Any) -> bytes:
    """What Starlette's JSONResponse sends for ``document``."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def test_list_pages_are_compact_json_in_stored_key_order(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    at = datetime(2025, 3, 6, 10, 0, tzinfo=UTC)
    action = {
        "action_id": "act-1",
        "shop_id": SHOP,
        "member_id": "m-7",
        "rule": "payment_confirmation",
        "category": "care",
        "trigger": {"event_id": "evt-9", "event_type": "order.paid"},
        "occurred_at": "2025-03-06T10:00:00Z",
        "created_at": "2025-03-06T10:00:01Z",
        "message": {"template": "payment_confirmation", "variables": {"order_id": "o-7", "note": "签收 \u2028 ✓"}},
        "incentive": None,
    }
    outcome = {
        "notification_id": "n-3",
        "action_id": "act-1",
        "shop_id": SHOP,
        "member_id": "m-7",
        "channel": "log",
        "status": "sent",
        "reason": None,
        "at": "2025-03-06T10:00:02Z",
    }
    async with engine.begin() as connection:
        await connection.execute(insert(members).values(shop_id=SHOP, member_id="m-7"))
        await connection.execute(
            insert(actions).values(
                action_id="act-1",
                shop_id=SHOP,
                member_id="m-7",
                rule="payment_confirmation",
                category="care",
                occurred_at=at,
                created_at=at + timedelta(seconds=1),
                payload=action,
            )
        )
        await connection.execute(
            insert(notifications).values(
                notification_id="n-3",
                action_id="act-1",
                channel="log",
                shop_id=SHOP,
                member_id="m-7",
                status="sent",
                at=at + timedelta(seconds=2),
                payload=outcome,
            )
        )
        await connection.execute(
            insert(points_ledger).values(
                shop_id=SHOP, member_id="m-7", entry_id="earn:o-7", kind="earn", points=50, at=at, expires_at=at
            )
        )
    for suffix in ("/actions", "/notifications", "/points/ledger"):
        response = await client.get(f"/v1/shops/{SHOP}/members/m-7{suffix}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.content == _compact(response.json())
    body = (await client.get(f"/v1/shops/{SHOP}/members/m-7/actions")).json()
    assert body == {"items": [action], "next_cursor": None}
    # JSONB keeps keys shorter first, then in byte order; the page shows them as stored.
    assert list(body["items"][0]) == sorted(action, key=lambda key: (len(key.encode()), key.encode()))
