"""RFM: quintile edges as PostgreSQL computes them, scores against the edges, and the default segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.playbook import RfmSegment
from shared.domain.rfm import OTHERS, RfmEdges, quintile_edges, rfm_scores, rfm_segment
from shared.playbook_file import load_playbook

SEGMENTS = load_playbook().default.rfm.segments
AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
EDGES = RfmEdges(
    as_of=AS_OF,
    recency_days=(10.0, 30.0, 90.0, 180.0),
    frequency=(1.0, 2.0, 3.0, 5.0),
    monetary=(50.0, 120.0, 300.0, 800.0),
)


# Quintile edges (expected values are what SELECT percentile_cont(ARRAY[0.2,0.4,0.6,0.8]) gives)


def test_quintile_edges_interpolate_like_percentile_cont() -> None:
    assert quintile_edges([10, 3, 1, 8, 2, 7, 4, 9, 6, 5]) == pytest.approx((2.8, 4.6, 6.4, 8.2))


def test_quintile_edges_of_five_values_fall_between_neighbours() -> None:
    # positions 0.8, 1.6, 2.4, 3.2 over [10, 20, 30, 40, 50]
    assert quintile_edges([50.0, 10.0, 40.0, 20.0, 30.0]) == pytest.approx((18.0, 26.0, 34.0, 42.0))


def test_quintile_edges_on_exact_positions() -> None:
    # n = 6: positions 1, 2, 3, 4 fall on values exactly
    assert quintile_edges([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]) == (1.0, 2.0, 3.0, 4.0)


def test_quintile_edges_of_a_single_value() -> None:
    assert quintile_edges([7.5]) == (7.5, 7.5, 7.5, 7.5)


def test_quintile_edges_with_ties() -> None:
    assert quintile_edges([1, 1, 1, 1, 1, 1, 1, 1, 2, 9]) == pytest.approx((1.0, 1.0, 1.0, 1.2))
    assert quintile_edges([1, 1, 1, 1, 1, 3, 3, 3, 3, 3]) == pytest.approx((1.0, 1.0, 3.0, 3.0))


def test_quintile_edges_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        quintile_edges([])


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50))
def test_quintile_edges_are_ascending_and_within_the_values(values: list[float]) -> None:
    edges = quintile_edges(values)
    assert list(edges) == sorted(edges)
    assert min(values) <= edges[0]
    assert edges[-1] <= max(values)


def test_edges_must_be_four_ascending_cut_points() -> None:
    with pytest.raises(ValueError, match="frequency"):
        RfmEdges(AS_OF, (1.0, 2.0, 3.0, 4.0), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0, 4.0))
    with pytest.raises(ValueError, match="monetary"):
        RfmEdges(AS_OF, (1.0, 2.0, 3.0, 4.0), (1.0, 2.0, 3.0, 4.0), (1.0, 3.0, 2.0, 4.0))


# Scores


def scores(days_ago: float, orders: int = 1, spend: str = "0", edges: RfmEdges = EDGES) -> tuple[int, int, int]:
    result = rfm_scores(edges, AS_OF - timedelta(days=days_ago), orders, Decimal(spend))
    assert result is not None
    return result


def test_a_member_who_never_paid_has_no_scores() -> None:
    assert rfm_scores(EDGES, None, 0, Decimal("0")) is None


@pytest.mark.parametrize(
    ("days_ago", "r"),
    [(0, 5), (9.5, 5), (10, 5), (10.01, 4), (30, 4), (31, 3), (90, 3), (91, 2), (180, 2), (180.5, 1), (999, 1)],
)
def test_recency_fewer_days_is_better_and_an_edge_keeps_the_higher_score(days_ago: float, r: int) -> None:
    assert scores(days_ago)[0] == r


def test_a_last_order_after_as_of_counts_as_today() -> None:
    assert scores(-2)[0] == 5


@pytest.mark.parametrize(("orders", "f"), [(0, 1), (1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 5), (100, 5)])
def test_frequency_an_edge_falls_in_the_lower_score(orders: int, f: int) -> None:
    assert scores(1, orders)[1] == f


@pytest.mark.parametrize(
    ("spend", "m"),
    [
        ("-10", 1),
        ("49.99", 1),
        ("50", 1),
        ("50.01", 2),
        ("120", 2),
        ("300", 3),
        ("300.01", 4),
        ("800", 4),
        ("800.01", 5),
    ],
)
def test_monetary_an_edge_falls_in_the_lower_score(spend: str, m: int) -> None:
    assert scores(1, 1, spend)[2] == m


def test_a_spend_that_is_an_edge_ties_with_it_despite_float_rounding() -> None:
    spends = [Decimal("0.10"), Decimal("0.20"), Decimal("0.30"), Decimal("0.40"), Decimal("0.50"), Decimal("0.60")]
    monetary = quintile_edges([float(spend) for spend in spends])  # 0.2, 0.3, 0.4, 0.5 exactly as floats
    edges = RfmEdges(AS_OF, (1.0, 2.0, 3.0, 4.0), (1.0, 2.0, 3.0, 4.0), monetary)
    # float 0.3 is just below Decimal 0.30: compared as Decimal, 0.30 would wrongly be above its own edge.
    assert scores(0, 1, "0.30", edges)[2] == 2


@given(
    recency=st.lists(st.floats(min_value=0, max_value=1000), min_size=4, max_size=4),
    frequency=st.lists(st.floats(min_value=0, max_value=100), min_size=4, max_size=4),
    monetary=st.lists(st.floats(min_value=0, max_value=1e6), min_size=4, max_size=4),
    days_ago=st.floats(min_value=-30, max_value=5000),
    orders=st.integers(min_value=0, max_value=1000),
    spend=st.decimals(min_value=Decimal("-1000"), max_value=Decimal("10000000"), places=2),
)
def test_scores_are_always_within_one_to_five(
    recency: list[float], frequency: list[float], monetary: list[float], days_ago: float, orders: int, spend: Decimal
) -> None:
    edges = RfmEdges(AS_OF, tuple(sorted(recency)), tuple(sorted(frequency)), tuple(sorted(monetary)))
    result = rfm_scores(edges, AS_OF - timedelta(days=days_ago), orders, spend)
    assert result is not None
    assert all(1 <= score <= 5 for score in result)


# Segments


@pytest.mark.parametrize(
    ("rfm", "segment"),
    [
        ((5, 5, 5), "champions"),
        ((3, 4, 2), "loyal"),
        ((4, 2, 3), "potential"),
        ((5, 1, 1), "new"),
        ((1, 4, 4), "at_risk"),
        ((2, 1, 1), "hibernating"),
        ((1, 1, 1), "lost"),
    ],
)
def test_default_segments(rfm: tuple[int, int, int], segment: str) -> None:
    assert rfm_segment(*rfm, SEGMENTS) == segment


def test_the_first_matching_segment_wins() -> None:
    # (4, 4, 4) fits both champions and loyal; champions is listed first.
    assert rfm_segment(4, 4, 4, SEGMENTS) == "champions"
    assert rfm_segment(4, 4, 3, SEGMENTS) == "loyal"


def test_no_matching_segment_gives_others() -> None:
    assert rfm_segment(1, 1, 1, (RfmSegment("top", r=(5, 5)),)) == OTHERS == "others"
    assert rfm_segment(3, 3, 3, ()) == "others"


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5))
def test_every_score_combination_has_a_default_segment(r: int, f: int, m: int) -> None:
    assert rfm_segment(r, f, m, SEGMENTS) in {segment.name for segment in SEGMENTS}


def test_the_default_segments_cover_all_125_combinations() -> None:
    names = {segment.name for segment in SEGMENTS}
    combos = [(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)]
    assert all(rfm_segment(*combo, SEGMENTS) in names for combo in combos)
