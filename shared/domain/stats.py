"""Confidence intervals for proportions, so the incentives report can say how sure an uplift is.

Score intervals rather than the textbook normal approximation: they stay inside [0, 1]
and keep close to their nominal coverage with the few dozen members a rule's holdout
often has, where p ± z·sqrt(p(1-p)/n) collapses to a point at 0 or n successes.

- ``wilson_interval``: Wilson's score interval for one proportion (Wilson 1927).
- ``newcombe_difference``: Newcombe's hybrid score interval for the difference of two
  independent proportions (Newcombe 1998, method 10), built from the two Wilson intervals.

Both take counts and return plain floats; with no trials there is no proportion, and
they return None.
"""

from __future__ import annotations

from math import sqrt
from typing import NamedTuple

# The 97.5th percentile of the standard normal distribution: a two-sided 95 % interval.
Z95 = 1.959963984540054


class Interval(NamedTuple):
    """Bounds of a proportion, inside [0, 1]."""

    low: float
    high: float


class Difference(NamedTuple):
    """p1 - p2 and its bounds, inside [-1, 1]."""

    estimate: float
    low: float
    high: float


def _check(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError("successes must lie between 0 and trials, and trials must not be negative")


def wilson_interval(successes: int, trials: int, z: float = Z95) -> Interval | None:
    """Wilson's score interval for ``successes`` out of ``trials``; None when ``trials`` is 0.

    (2np + z² ∓ z·sqrt(z² + 4np(1-p))) / (2(n + z²)) with p = successes / n. At 0 successes the
    low bound is exactly 0, at n successes the high bound exactly 1; floating-point error is
    never allowed to put a bound on the wrong side of p or outside [0, 1].
    """
    _check(successes, trials)
    if trials == 0:
        return None
    n = float(trials)
    p = successes / n
    z2 = z * z
    centre = 2 * n * p + z2
    spread = z * sqrt(z2 + 4 * n * p * (1 - p))
    denominator = 2 * (n + z2)
    low = 0.0 if successes == 0 else max(0.0, min(p, (centre - spread) / denominator))
    high = 1.0 if successes == trials else min(1.0, max(p, (centre + spread) / denominator))
    return Interval(low, high)


def newcombe_difference(
    successes_1: int, trials_1: int, successes_2: int, trials_2: int, z: float = Z95
) -> Difference | None:
    """Newcombe's hybrid score interval for p1 - p2 (method 10); None when either group has no trials.

    With (l1, u1) and (l2, u2) the Wilson intervals of p1 and p2:
    low = (p1 - p2) - sqrt((p1 - l1)² + (u2 - p2)²), high = (p1 - p2) + sqrt((u1 - p1)² + (p2 - l2)²).
    """
    first = wilson_interval(successes_1, trials_1, z)
    second = wilson_interval(successes_2, trials_2, z)
    if first is None or second is None:
        return None
    p1 = successes_1 / trials_1
    p2 = successes_2 / trials_2
    estimate = p1 - p2
    below = sqrt((p1 - first.low) ** 2 + (second.high - p2) ** 2)
    above = sqrt((first.high - p1) ** 2 + (p2 - second.low) ** 2)
    return Difference(estimate, max(-1.0, min(estimate, estimate - below)), min(1.0, max(estimate, estimate + above)))
