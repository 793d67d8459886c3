"""The segment compiler without a database: RFM thresholds agree with ``rfm_scores``, values are bound parameters."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import assume, example, given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from shared.audience.segment_query import Audience, RfmBounds, count_statement, export_statement, preview_statement
from shared.domain.rfm import RfmEdges, rfm_scores
from shared.domain.segments import parse_definition
from shared.playbook_file import load_playbook

SHOP = load_playbook().default
AS_OF = datetime(2025, 12, 1, 6, 30, tzinfo=UTC)


def _from_bounds(bounds: RfmBounds, last_order_at: datetime, paid_orders: int, net_spend: Decimal) -> tuple[int, ...]:
    """(r, f, m) as the SQL computes them: counts of thresholds at or below the stored values (width_bucket)."""
    r = 1 + bounds.recency_passed + bisect.bisect_right(bounds.recency, last_order_at)
    f = 1 + bisect.bisect_right(bounds.frequency, paid_orders)
    m = 1 + bisect.bisect_right(bounds.monetary, net_spend)
    return r, f, m


quartets = st.lists(
    st.one_of(
        st.floats(min_value=-5, max_value=5000, allow_nan=False),
        st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 30.0, 30.000000011574074, 99.99, 100.0, 1e-300]),
    ),
    min_size=4,
    max_size=4,
).map(lambda edges: tuple(sorted(edges)))


@given(
    recency=quartets,
    frequency=quartets,
    monetary=quartets,
    age=st.one_of(st.integers(min_value=-(10**11), max_value=10**15), st.sampled_from([0, 1, -1, 86_400_000_000])),
    paid_orders=st.integers(min_value=0, max_value=10_000),
    cents=st.integers(min_value=-(10**8), max_value=10**12),
    tie=st.sampled_from([None, "recency", "frequency", "monetary"]),
    index=st.integers(min_value=0, max_value=3),
)
@example(
    recency=(30.0, 30.0, 90.0, 180.0),
    frequency=(1.0, 2.0, 2.0, 5.0),
    monetary=(0.1, 0.3, 33.33, 100.0),
    age=30 * 86_400_000_000,
    paid_orders=2,
    cents=3333,
    tie=None,
    index=0,
)
def test_rfm_bounds_give_the_scores_rfm_scores_gives(
    recency: tuple[float, ...],
    frequency: tuple[float, ...],
    monetary: tuple[float, ...],
    age: int,
    paid_orders: int,
    cents: int,
    tie: str | None,
    index: int,
) -> None:
    edges = RfmEdges(AS_OF, recency, frequency, monetary)
    net_spend = Decimal(cents) / 100
    # Members whose figures equal an edge, as when the edges come from their own figures.
    if tie == "recency" and recency[index] >= 0:
        age = round(recency[index] * 86400 * 10**6)
    elif tie == "frequency" and frequency[index] >= 0 and frequency[index] == int(frequency[index]):
        paid_orders = int(frequency[index])
    elif tie == "monetary":
        net_spend = Decimal(monetary[index]).quantize(Decimal("0.01"))
    try:
        last_order_at = AS_OF - timedelta(microseconds=age)
    except OverflowError:
        assume(False)
    expected = rfm_scores(edges, last_order_at, paid_orders, net_spend)
    assert expected is not None
    assert _from_bounds(RfmBounds.of(edges), last_order_at, paid_orders, net_spend) == expected


def _sql(document: object) -> str:
    audience = Audience(parse_definition(document), "shop-1", SHOP, AS_OF, None)
    statements = (count_statement(audience), preview_statement(audience, 20), export_statement(audience))
    dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
    return "\n".join(str(statement.compile(dialect=dialect)) for statement in statements)


def test_values_and_tags_travel_as_bound_parameters() -> None:
    hostile = "x'); DROP TABLE members; --"
    sql = _sql(
        {
            "all": [
                {"field": "city", "op": "=", "value": hostile},
                {"field": "gender", "op": "in", "value": [hostile, "a"]},
                {"tag": "purchase.category_drop_table_members"},
                {"tag": "manual.drop_table"},
                {"field": "joined_at", "op": ">", "value": "2025-01-01T00:00:00Z"},
            ]
        }
    )
    assert "DROP" not in sql
    assert "drop_table" not in sql
    assert "2025" not in sql
    assert "members.tags @> $" in sql  # the form the GIN index serves
    assert "EXISTS (SELECT" in sql
