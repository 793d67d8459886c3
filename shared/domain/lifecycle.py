"""Lifecycle stages from the history of paid orders, evaluated at a business time.

A stage is a pure function of the paid orders' times and the moment it is looked at,
so whatever order events arrive in, the same history gives the same stage. Stage
changes caused by payments happen when the payment is applied; changes caused by the
passage of time are applied by the scheduler at the instants ``transitions`` lists.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from shared.domain.playbook import LifecyclePolicy

PROSPECT, NEW, ACTIVE, AT_RISK, DORMANT, CHURNED = "prospect", "new", "active", "at_risk", "dormant", "churned"
STAGES = (PROSPECT, NEW, ACTIVE, AT_RISK, DORMANT, CHURNED)


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    since: datetime | None
    win_backs: int


@lru_cache(maxsize=64)
def _days(n: int) -> timedelta:
    return timedelta(days=n)


def stage_at(
    paid_times: Sequence[datetime], joined_at: datetime | None, at: datetime, policy: LifecyclePolicy
) -> Stage:
    """The stage at business time ``at``; ``paid_times`` sorted ascending (later ones are ignored).

    A paid order after a gap of at least ``at_risk_days`` (the member was dormant or
    churned) reactivates the member and counts as a win-back.
    """
    known = paid_times[: bisect_right(paid_times, at)]
    if not known:
        return Stage(PROSPECT, joined_at, 0)
    win_backs = sum(1 for before, after in itertools.pairwise(known) if after - before >= _days(policy.at_risk_days))
    first, last = known[0], known[-1]
    if at - first < _days(policy.new_days):
        return Stage(NEW, first, win_backs)
    quiet = at - last
    if quiet < _days(policy.active_days):
        return Stage(ACTIVE, _active_since(known, policy), win_backs)
    if quiet < _days(policy.at_risk_days):
        return Stage(AT_RISK, last + _days(policy.active_days), win_backs)
    if quiet < _days(policy.dormant_days):
        return Stage(DORMANT, last + _days(policy.at_risk_days), win_backs)
    return Stage(CHURNED, last + _days(policy.dormant_days), win_backs)


def _active_since(known: Sequence[datetime], policy: LifecyclePolicy) -> datetime:
    """When the current active spell began: a payment after a lapse, else the end of ``new``."""
    for index in range(len(known) - 1, 0, -1):
        if known[index] - known[index - 1] >= _days(policy.active_days):
            return known[index]
    return known[0] + _days(policy.new_days)


def transitions(paid_times: Sequence[datetime], policy: LifecyclePolicy) -> list[datetime]:
    """Every instant at which time alone changes the stage, given the known payments.

    A threshold after the last payment of a spell is a transition only if no later
    payment came first; the end of ``new`` counts once, from the first payment.
    """
    if not paid_times:
        return []
    found = {paid_times[0] + _days(policy.new_days)}
    thresholds = [_days(policy.active_days), _days(policy.at_risk_days), _days(policy.dormant_days)]
    for index, paid in enumerate(paid_times):
        following = paid_times[index + 1] if index + 1 < len(paid_times) else None
        for threshold in thresholds:
            moment = paid + threshold
            if following is None or moment < following:
                found.add(moment)
    return sorted(found)


def next_transition(paid_times: Sequence[datetime], after: datetime | None, policy: LifecyclePolicy) -> datetime | None:
    """The first time-driven transition strictly after ``after`` (all of them when None)."""
    for moment in transitions(paid_times, policy):
        if after is None or moment > after:
            return moment
    return None
