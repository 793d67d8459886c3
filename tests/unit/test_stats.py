"""Wilson and Newcombe intervals against published and hand-computed values, edge cases and properties.

Throughout, z = 1.959963984540054 and z² = 3.8414588.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.stats import Z95, newcombe_difference, wilson_interval


def test_z_is_the_two_sided_95_percent_quantile() -> None:
    z_squared = Z95 * Z95
    assert z_squared == pytest.approx(3.8414588206941254)


def test_wilson_81_of_263_matches_newcombe_1998() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", 81/263: 0.2553 to 0.3662.
    # By hand: p = 0.307985, 2np + z² = 162 + 3.84146 = 165.84146, 4np(1-p) = 4·81·182/263 = 224.21293,
    # z·sqrt(z² + 224.21293) = 1.95996 · 15.10148 = 29.59834, 2(n + z²) = 533.68292;
    # low = (165.84146 - 29.59834) / 533.68292 = 0.25529, high = (165.84146 + 29.59834) / 533.68292 = 0.36621.
    interval = wilson_interval(81, 263)
    assert interval is not None
    assert interval.low == pytest.approx(0.2552885, abs=1e-7)
    assert interval.high == pytest.approx(0.3662096, abs=1e-7)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.2553, 0.3662)


def test_wilson_of_the_two_groups_of_newcombes_example() -> None:
    # 56/70: p = 0.8, 2np + z² = 115.84146, z·sqrt(z² + 44.8) = 13.66946, 2(n + z²) = 147.68292
    #        -> (102.17200 / 147.68292, 129.51092 / 147.68292) = (0.69183, 0.87695).
    # 48/80: p = 0.6, 2np + z² = 99.84146, z·sqrt(z² + 76.8) = 17.60059, 2(n + z²) = 167.68292
    #        -> (82.24087 / 167.68292, 117.44205 / 167.68292) = (0.49045, 0.70038).
    assert wilson_interval(56, 70) == pytest.approx((0.6918336, 0.8769526), abs=1e-7)
    assert wilson_interval(48, 80) == pytest.approx((0.4904547, 0.7003817), abs=1e-7)


def test_newcombe_56_of_70_against_48_of_80_matches_the_published_example() -> None:
    # Newcombe (1998), "Interval estimation for the difference between independent proportions",
    # example (a), method 10: 0.0524 to 0.3339. The estimate is 0.8 - 0.6 = 0.2.
    # By hand, from the Wilson bounds above:
    #   below = sqrt((0.8 - 0.69183)² + (0.70038 - 0.6)²) = sqrt(0.011700 + 0.010076) = 0.147569
    #   above = sqrt((0.87695 - 0.8)² + (0.6 - 0.49045)²) = sqrt(0.005922 + 0.012000) = 0.133873
    #   -> (0.2 - 0.147569, 0.2 + 0.133873) = (0.052431, 0.333873).
    difference = newcombe_difference(56, 70, 48, 80)
    assert difference is not None
    assert difference.estimate == pytest.approx(0.2)
    assert (round(difference.low, 4), round(difference.high, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # The other examples of Newcombe (1998), method 10, as published (to 4 places).
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
        ((10, 10, 0, 20), (0.6791, 1.0)),
    ],
)
def test_newcombe_published_examples(counts: tuple[int, int, int, int], expected: tuple[float, float]) -> None:
    difference = newcombe_difference(*counts)
    assert difference is not None
    assert (round(difference.low, 4), round(difference.high, 4)) == expected


def test_wilson_at_no_successes_starts_at_zero() -> None:
    # 0/10: p = 0, so the low bound is (z² - z·z) / ... = 0 exactly; high = 2z² / (2(n + z²)) = z² / (n + z²)
    # = 3.84146 / 13.84146 = 0.27753.
    interval = wilson_interval(0, 10)
    assert interval is not None
    assert interval.low == 0.0
    assert interval.high == pytest.approx(0.2775328, abs=1e-7)


def test_wilson_at_all_successes_ends_at_one() -> None:
    # 10/10: p = 1, high = (2n + z² + z²) / (2(n + z²)) = 1 exactly; low = n / (n + z²) = 10 / 13.84146 = 0.72247.
    interval = wilson_interval(10, 10)
    assert interval is not None
    assert interval.high == 1.0
    assert interval.low == pytest.approx(0.7224672, abs=1e-7)


def test_no_trials_has_no_interval() -> None:
    assert wilson_interval(0, 0) is None
    assert newcombe_difference(0, 0, 3, 10) is None
    assert newcombe_difference(3, 10, 0, 0) is None


@pytest.mark.parametrize(("successes", "trials"), [(-1, 10), (11, 10), (0, -1)])
def test_counts_that_are_not_a_proportion_are_refused(successes: int, trials: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(successes, trials)


@st.composite
def counts(draw: st.DrawFn) -> tuple[int, int]:
    trials = draw(st.integers(min_value=1, max_value=100_000))
    return draw(st.integers(min_value=0, max_value=trials)), trials


@given(counts())
def test_wilson_brackets_the_proportion_inside_zero_and_one(count: tuple[int, int]) -> None:
    successes, trials = count
    interval = wilson_interval(successes, trials)
    assert interval is not None
    assert 0.0 <= interval.low <= successes / trials <= interval.high <= 1.0


@given(counts(), counts())
def test_newcombe_brackets_the_difference_inside_minus_one_and_one(
    first: tuple[int, int], second: tuple[int, int]
) -> None:
    difference = newcombe_difference(*first, *second)
    assert difference is not None
    assert difference.estimate == first[0] / first[1] - second[0] / second[1]
    assert -1.0 <= difference.low <= difference.estimate <= difference.high <= 1.0


@given(counts(), counts())
def test_swapping_the_groups_mirrors_the_interval(first: tuple[int, int], second: tuple[int, int]) -> None:
    forward = newcombe_difference(*first, *second)
    backward = newcombe_difference(*second, *first)
    assert forward is not None
    assert backward is not None
    assert backward.low == pytest.approx(-forward.high, abs=1e-12)
    assert backward.high == pytest.approx(-forward.low, abs=1e-12)
