"""The SQL a definition compiles to selects exactly the members the domain's evaluator accepts.

One batch of generated members (edge values on purpose: spends that divide unevenly,
times a microsecond either side of a day boundary, zones on both sides of New Year, RFM
figures equal to the shop's edges, manual tags expiring at the evaluation time) is written
to the real PostgreSQL; generated definitions are then evaluated both ways.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.audience.segment_query import count_members, prepare
from shared.db.schema import member_manual_tags, members, rfm_edges
from shared.domain.lifecycle import STAGES
from shared.domain.rfm import RfmEdges
from shared.domain.segments import FIELDS, OPS_BY_KIND, MemberView, matches, parse_definition
from shared.playbook_file import load_playbook
from shared.store.rfm_edges import compute_rfm_edges

pytestmark = pytest.mark.integration

SHOP, OTHER_SHOP = "shop-1", "shop-2"
PLAYBOOK = load_playbook()
RULES = PLAYBOOK.for_shop(SHOP)
# 2025-12-31 17:00 UTC is already 2026 in Shanghai (the shop's zone) and Kiritimati, still 2025 in New York.
NEW_YEAR = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
MID_YEAR = datetime(2026, 6, 15, 9, 30, tzinfo=UTC)
TIMES = (NEW_YEAR, MID_YEAR)
RFM_AS_OF = datetime(2025, 12, 1, tzinfo=UTC)
MEMBERS = 300

SPENDS = ["0.00", "0.01", "33.33", "50.00", "99.99", "100.00", "100.01", "250.50", "1000.00", "12345.67"]
ZONES = [None, "Asia/Shanghai", "America/New_York", "Pacific/Kiritimati", "Etc/GMT+12", "Mars/Olympus"]
CITIES = [None, "杭州", "上海", "O'Brien", "a,b", 'say "hi"', "back\\slash", "'; DROP TABLE members; --"]
TAGS = [
    "profile.female",
    "profile.male",
    "purchase.repeat_buyer",
    "purchase.category_女装",
    "engagement.score_gold",
    "lifecycle.tier_vip",
    "dynamic.birthday_month",
    "external.crm_vip",
]
MANUAL = ["manual.vip", "manual.blocked"]
EXPIRIES = [None, NEW_YEAR, NEW_YEAR + timedelta(microseconds=1), MID_YEAR - timedelta(hours=1), MID_YEAR]


def _near(rng: random.Random, most: int) -> datetime:
    """Some days before one of the evaluation times, often exactly on a day boundary or a microsecond off."""
    days = rng.choice([0, 0, 1, 29, 30, 31, 365, rng.randint(0, most)])
    offset = rng.choice([timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1), timedelta(hours=12)])
    return rng.choice(TIMES) - timedelta(days=days) + offset


def _member(rng: random.Random, number: int, shop: str) -> tuple[dict[str, Any], dict[str, datetime | None]]:
    paid_orders = rng.choice([0, 0, 1, 2, 3, 3, 5, 8])
    spend = Decimal(rng.choice(SPENDS)) if paid_orders or rng.random() < 0.1 else Decimal("0.00")
    # Paid members mostly have a last order; some refunded ones keep it with no paid order left.
    last_order_at = _near(rng, 500) if paid_orders or rng.random() < 0.15 else None
    row = {
        "shop_id": shop,
        "member_id": f"m-{number:03d}",
        "net_spend": spend,
        "paid_orders": paid_orders,
        "points_balance": rng.choice([0, 10, 100, 500, 1000, rng.randint(0, 5000)]),
        "score": rng.choice([0, 100, 299, 300, 1000, rng.randint(0, 3000)]),
        "tier": rng.choice([None, "member", "advanced", "vip", "supreme", "retired"]),
        "stage": rng.choice([None, *STAGES]),
        "gender": rng.choice([None, "female", "male", ""]),
        "birth_year": rng.choice([None, 1960, 1999, 2000, 2001, 2006, 2007, rng.randint(1950, 2012)]),
        "province": rng.choice([None, "浙江", "上海", "Ontario"]),
        "city": rng.choice(CITIES),
        "channel": rng.choice([None, "online", "offline", "wechat"]),
        "store_id": rng.choice([None, "s-1", "s-2"]),
        "marketing_consent": rng.random() < 0.7,
        "timezone": rng.choice(ZONES),
        "joined_at": None if rng.random() < 0.1 else _near(rng, 800),
        "last_order_at": last_order_at,
        "tags": sorted(rng.sample(TAGS, rng.randint(0, 4))),
    }
    manual = {tag: rng.choice(EXPIRIES) for tag in MANUAL if rng.random() < 0.4}
    return row, manual


def _view(row: dict[str, Any], manual: dict[str, datetime | None]) -> MemberView:
    """The member as the evaluator sees it: the row's columns of the same names."""
    columns = {field.name: row[field.name] for field in fields(MemberView) if field.name not in ("tags", "manual_tags")}
    return MemberView(**columns, tags=frozenset(row["tags"]), manual_tags=manual)


@dataclass(frozen=True)
class Population:
    views: list[MemberView]
    edges: RfmEdges


@pytest_asyncio.fixture
async def population(engine: AsyncEngine) -> AsyncIterator[Population]:
    rng = random.Random(20251231)
    rows, manual_rows, views = [], [], []
    for number in range(MEMBERS + 20):
        shop = SHOP if number < MEMBERS else OTHER_SHOP
        row, manual = _member(rng, number, shop)
        rows.append(row)
        manual_rows += [
            {"shop_id": shop, "member_id": row["member_id"], "tag": tag, "expires_at": expires_at}
            for tag, expires_at in manual.items()
        ]
        if shop == SHOP:
            views.append(_view(row, manual))
    async with engine.begin() as connection:
        await connection.execute(insert(members), rows)
        await connection.execute(insert(member_manual_tags), manual_rows)
        # Edges from the members' own figures, as the scheduler computes them: members tie with them.
        await compute_rfm_edges(connection, [SHOP], RFM_AS_OF)
        stored = (await connection.execute(select(rfm_edges).where(rfm_edges.c.shop_id == SHOP))).one()
    edges = RfmEdges(stored.as_of, tuple(stored.recency_days), tuple(stored.frequency), tuple(stored.monetary))
    yield Population(views, edges)


# --- generated definitions ----------------------------------------------------------------------

_TIME_VALUES = [
    (moment - timedelta(days=days) + delta).isoformat()
    for moment in TIMES
    for days in (30, 365)
    for delta in (timedelta(0), timedelta(microseconds=1))
]
_POOLS: dict[str, list[Any]] = {
    "net_spend": ["0", 0, "33.33", 50, "100.00", 100.01, 250.5, "1000", 12345.67],
    "average_order_value": [0.01, "11.11", "16.665", 33.33, "33.34", 50, "100", 125.25],
    "paid_orders": [0, 1, 2, 3, 5, 8, 2.5],
    "points_balance": [0, 10, 100, 500, 1000, 2500],
    "score": [0, 100, 299, 300, 1000, 1500],
    "age": [17, 19, 20, 24, 25, 26, 40, 65],
    "days_since_last_order": [-1, 0, 1, 29, 29.5, 30, 31, 90, 365, 366],
    "days_since_joined": [0, 1, 30, 100, 365, 730, 731],
    "tier": ["member", "advanced", "vip", "supreme", "gold"],
    "stage": list(STAGES),
    "rfm_segment": [segment.name for segment in RULES.rfm.segments] + ["others", "whales"],
    "gender": ["female", "male", "", "Female"],
    "province": ["浙江", "上海", "Ontario"],
    "city": [city for city in CITIES if city is not None] + ["北京"],
    "channel": ["online", "offline", "wechat"],
    "store_id": ["s-1", "s-2", "s-3"],
    "marketing_consent": [True, False],
    "joined_at": _TIME_VALUES,
    "last_order_at": _TIME_VALUES,
}


@st.composite
def comparisons(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(FIELDS)))
    op = draw(st.sampled_from(OPS_BY_KIND[FIELDS[name]]))
    pool = st.sampled_from(_POOLS[name])
    if op == "in":
        value: Any = draw(st.lists(pool, min_size=1, max_size=4))
    elif op == "between":
        value = [draw(pool), draw(pool)]
    else:
        value = draw(pool)
    return {"field": name, "op": op, "value": value}


leaves = st.one_of(
    comparisons(), st.sampled_from([*TAGS, *MANUAL, "profile.nobody", "manual.none"]).map(lambda tag: {"tag": tag})
)
definitions = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda parts: {"all": parts}),
        st.lists(children, max_size=3).map(lambda parts: {"any": parts}),
        children.map(lambda part: {"not": part}),
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=definitions, at=st.sampled_from(TIMES))
async def test_the_sql_selects_exactly_the_members_the_evaluator_accepts(
    population: Population, engine: AsyncEngine, document: dict[str, Any], at: datetime
) -> None:
    definition = parse_definition(document)  # tier "gold" and segment "whales" only parse without the vocabulary
    expected = {view.member_id for view in population.views if matches(definition, view, at, RULES, population.edges)}
    async with engine.connect() as connection:
        audience = await prepare(connection, definition, SHOP, RULES, at)
        rows = await connection.execute(audience.members(members.c.member_id))
        selected = {row.member_id for row in rows}
        size = await count_members(connection, audience)
    assert selected == expected, (document, at, sorted(selected ^ expected))
    assert size == len(expected)


def _field(name: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": name, "op": op, "value": value}


# Definitions on the edges the compiler handles specially, checked every run (the generated ones may miss them).
EDGE_CASES = [
    _field("days_since_last_order", "=", -1),  # a last order half a day after the evaluation time
    _field("days_since_last_order", "=", 0),
    _field("days_since_joined", "in", [29, 30, 31]),
    _field("days_since_joined", "between", [0, 30]),
    _field("days_since_last_order", ">", 29.5),
    _field("days_since_last_order", ">", 30),
    _field("days_since_last_order", "<", 31),
    _field("days_since_joined", "<=", 30),
    _field("days_since_joined", "!=", 30),
    _field("days_since_joined", "!=", 29.5),
    _field("days_since_last_order", ">=", 10**15),
    _field("days_since_last_order", "<", -(10**15)),
    _field("paid_orders", "!=", 2.5),
    _field("paid_orders", "in", [2.5, 3]),
    _field("score", ">", 299.5),
    _field("score", "<=", 299.5),
    _field("points_balance", "between", [99.5, 500.5]),
    _field("age", "!=", 25.5),
    _field("age", "=", 26),
    _field("age", "in", [25, 26]),
    {"not": _field("age", "<", 26)},
    _field("average_order_value", "=", "33.33"),
    _field("average_order_value", "in", ["33.33", "16.665", 50]),
    _field("average_order_value", "between", ["11.11", "33.34"]),
    _field("tier", ">=", "vip"),
    _field("tier", "!=", "vip"),
    _field("tier", "<", "gold"),
    *(_field("rfm_segment", "=", segment.name) for segment in RULES.rfm.segments),
    _field("rfm_segment", "!=", "others"),
    _field("marketing_consent", "!=", True),
    _field("city", "in", [city for city in CITIES if city is not None]),
    _field("last_order_at", ">=", (NEW_YEAR - timedelta(days=30)).isoformat()),
    {"tag": "manual.vip"},
    {"not": {"tag": "manual.blocked"}},
    {"all": [{"tag": "purchase.category_女装"}, {"not": {"tag": "profile.female"}}]},
]


@pytest.mark.parametrize("document", EDGE_CASES)
async def test_edge_definitions_agree(population: Population, engine: AsyncEngine, document: dict[str, Any]) -> None:
    definition = parse_definition(document)
    for at in TIMES:
        expected = {v.member_id for v in population.views if matches(definition, v, at, RULES, population.edges)}
        async with engine.connect() as connection:
            audience = await prepare(connection, definition, SHOP, RULES, at)
            rows = await connection.execute(audience.members(members.c.member_id))
            assert {row.member_id for row in rows} == expected, (document, at)


@pytest.mark.parametrize(
    "document",
    [
        {"field": "rfm_segment", "op": "in", "value": [segment.name for segment in RULES.rfm.segments] + ["others"]},
        {"field": "age", "op": ">=", "value": 0},
        {"field": "average_order_value", "op": ">", "value": 0},
        {"tag": "manual.vip"},
        {"not": {"field": "gender", "op": "=", "value": "female"}},
    ],
)
async def test_the_population_exercises_each_special_field(
    population: Population, engine: AsyncEngine, document: dict[str, Any]
) -> None:
    """The generated members are not trivially all-in or all-out for the fields compiled specially."""
    definition = parse_definition(document)
    for at in TIMES:
        selected = [v for v in population.views if matches(definition, v, at, RULES, population.edges)]
        assert 10 < len(selected) < MEMBERS - 10, (document, at, len(selected))
        async with engine.connect() as connection:
            audience = await prepare(connection, definition, SHOP, RULES, at)
            assert await count_members(connection, audience) == len(selected)
