"""The bytes the API sends: the member status as its documented model gives it, list pages as before.

Routes serialise with orjson (``services.api.responses``) rather than through FastAPI's
response model or Starlette's ``JSONResponse``; these properties hold the bytes to what
those gave.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from services.api import repository
from services.api.repository import MemberRecord
from services.api.responses import json_response
from services.api.schemas import MemberStatus
from services.api.status import member_status
from shared.domain.business_time import BusinessTimeBounds
from shared.domain.model import LedgerEntry
from shared.domain.rfm import RfmEdges
from shared.playbook_file import load_playbook
from shared.usecases.campaigns import CampaignKey

PLAYBOOK = load_playbook(None).default

times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))
maybe_times = st.none() | times
money = st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10_000)
text = st.text(min_size=1, max_size=30)


@st.composite
def members(draw: st.DrawFn) -> MemberRecord:
    return MemberRecord(
        shop_id=draw(text),
        member_id=draw(text),
        joined_at=draw(maybe_times),
        tier=draw(st.none() | st.sampled_from(["member", "advanced", "vip", "supreme", "retired-tier"])),
        tier_since=draw(maybe_times),
        net_spend=draw(money),
        paid_orders=draw(counts),
        first_order_at=draw(maybe_times),
        last_order_at=draw(maybe_times),
        updated_at=draw(times),
        stage=draw(st.none() | st.sampled_from(["prospect", "new", "active", "at_risk", "dormant", "churned"])),
        stage_since=draw(maybe_times),
        win_backs=draw(counts),
        qualifying_net_spend=draw(money),
        qualifying_orders=draw(counts),
        points_balance=draw(st.integers(min_value=0, max_value=10**12)),
        points_next_expiry_at=draw(maybe_times),
        score=draw(counts),
        score_band=draw(st.none() | st.sampled_from(["basic", "silver", "gold", "diamond"])),
        score_parts=draw(st.dictionaries(st.sampled_from(["purchase", "interaction", "base"]), counts)),
        last_event_at=draw(maybe_times),
        scheduled_until=draw(maybe_times),
        tags=sorted(draw(st.sets(st.text(min_size=3, max_size=40), max_size=6))),
    )


@st.composite
def ledgers(draw: st.DrawFn) -> list[LedgerEntry] | None:
    lines = draw(st.lists(st.tuples(st.integers(min_value=-500, max_value=500), times, maybe_times), max_size=8))
    if not lines and draw(st.booleans()):
        return None
    return [
        LedgerEntry(f"line:{index}", "earn" if points > 0 else "redeem", points, at, expires if points > 0 else None)
        for index, (points, at, expires) in enumerate(lines)
    ]


@st.composite
def edges(draw: st.DrawFn) -> RfmEdges | None:
    if draw(st.booleans()):
        return None
    quartet = st.lists(st.floats(min_value=0, max_value=1e6), min_size=4, max_size=4).map(sorted).map(tuple)
    return RfmEdges(as_of=draw(times), recency_days=draw(quartet), frequency=draw(quartet), monetary=draw(quartet))


@settings(max_examples=300, deadline=None)
@given(members(), ledgers(), edges())
def test_status_bytes_are_the_documented_models_bytes(
    member: MemberRecord, ledger: list[LedgerEntry] | None, rfm: RfmEdges | None
) -> None:
    body = bytes(json_response(member_status(member, PLAYBOOK, ledger, rfm)).body)
    # Same fields in the same order, same formats (money, datetimes with Z), nothing the model would coerce.
    assert MemberStatus.model_validate_json(body).model_dump_json().encode() == body


def test_status_document_in_the_documented_order_and_formats() -> None:
    base = datetime(2025, 1, 10, 1, 0, tzinfo=UTC)
    member = MemberRecord(
        shop_id="shop-1",
        member_id="m-1001",
        joined_at=base,
        tier="advanced",
        tier_since=base + timedelta(days=250, minutes=3),
        net_spend=Decimal("250.00"),
        paid_orders=3,
        first_order_at=base + timedelta(hours=1, minutes=6),
        last_order_at=base + timedelta(days=250, minutes=3),
        updated_at=datetime(2026, 1, 11, 1, 0, 2, 120000, tzinfo=UTC),
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
        scheduled_until=datetime(2026, 1, 11, 1, 0, tzinfo=UTC),
        tags=["lifecycle.stage_at_risk", "manual.vip_event_2026", "profile.female"],
    )
    expires = datetime(2026, 1, 14, 1, 0, tzinfo=UTC)
    ledger = [LedgerEntry("gift:1", "gift", 20, expires - timedelta(days=365), expires)]
    body = bytes(json_response(member_status(member, PLAYBOOK, ledger, None)).body)
    assert body == (
        b'{"shop_id":"shop-1","member_id":"m-1001","joined_at":"2025-01-10T01:00:00Z",'
        b'"tier":{"code":"advanced","name":"\xe9\xab\x98\xe7\xba\xa7\xe4\xbc\x9a\xe5\x91\x98 Advanced",'
        b'"since":"2025-09-17T01:03:00Z"},'
        b'"metrics":{"net_spend":"250.00","paid_orders":3,"average_order_value":"83.33",'
        b'"first_order_at":"2025-01-10T02:06:00Z","last_order_at":"2025-09-17T01:03:00Z"},'
        b'"next_tier":{"code":"vip","spend_needed":"370.00","orders_needed":3},'
        b'"qualifying":{"window_days":365,"net_spend":"130.00","paid_orders":2},'
        b'"lifecycle":{"stage":"at_risk","since":"2025-12-16T01:03:00Z","win_backs":1},'
        b'"points":{"balance":250,"expiring_soon":20,"next_expiry_at":"2026-01-14T01:00:00Z"},'
        b'"score":{"value":530,"band":"silver","parts":{"purchase":230,"interaction":30,"base":270}},'
        b'"rfm":null,"tags":["lifecycle.stage_at_risk","manual.vip_event_2026","profile.female"],"as_of":"2026-01-11T01:00:00Z","updated_at":"2026-01-11T01:00:02.120000Z"}'
    )
    assert orjson.loads(body)["tier"]["name"] == "高级会员 Advanced"


# What a stored contract document (JSONB decoded by orjson) can hold: contract amounts are decimal strings, not floats.
json_documents = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(st.lists(json_documents, max_size=5), st.none() | st.text(alphabet="abcdefABCDEF0123456789-_", min_size=1))
def test_list_pages_are_the_bytes_starlette_sent(items: list[Any], next_cursor: str | None) -> None:
    page = {"items": items, "next_cursor": next_cursor}
    assert json_response(page).body == JSONResponse(page).body


def test_a_cursor_of_one_list_is_refused_by_another() -> None:
    at, bounds = datetime(2026, 11, 1, tzinfo=UTC), BusinessTimeBounds()
    coupon = repository.encode_coupon_cursor(repository.CouponKey(at, "C123"))
    campaign = repository.encode_campaign_cursor(CampaignKey(at, "camp-1"))
    with pytest.raises(repository.InvalidCursorError):
        repository.decode_campaign_cursor(coupon, bounds)
    with pytest.raises(repository.InvalidCursorError):
        repository.decode_coupon_cursor(campaign, bounds)
