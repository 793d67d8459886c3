"""Lifecycle stages: every threshold boundary, win-backs, time-driven transitions, who applies them."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from shared.domain.due_rules import run_due
from shared.domain.engagement import MemberContext, apply_event, settle
from shared.domain.lifecycle import (
    ACTIVE,
    AT_RISK,
    CHURNED,
    DORMANT,
    NEW,
    PROSPECT,
    next_transition,
    stage_at,
    transitions,
)
from shared.domain.model import Member
from shared.domain.playbook import LifecyclePolicy
from shared.playbook_file import load_playbook
from tests.builders import event, joined

SHANGHAI = ZoneInfo("Asia/Shanghai")
JOINED = datetime(2024, 1, 10, 9, 0, tzinfo=SHANGHAI)
PAID = datetime(2024, 2, 1, 12, 0, tzinfo=SHANGHAI)
POLICY = LifecyclePolicy()
DEFAULT = load_playbook().default
SECOND = timedelta(seconds=1)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def test_default_thresholds_are_30_90_180_365_days() -> None:
    assert (POLICY.new_days, POLICY.active_days, POLICY.at_risk_days, POLICY.dormant_days) == (30, 90, 180, 365)
    assert DEFAULT.lifecycle == POLICY


# --- boundaries with a single paid order ------------------------------------------------------


def test_joined_without_payment_is_a_prospect_since_the_join_for_ever() -> None:
    for moment in (JOINED, JOINED + days(1), JOINED + days(5000)):
        stage = stage_at([], JOINED, moment, POLICY)
        assert (stage.name, stage.since, stage.win_backs) == (PROSPECT, JOINED, 0)


def test_a_payment_later_than_the_moment_looked_at_is_ignored() -> None:
    stage = stage_at([PAID], JOINED, PAID - SECOND, POLICY)
    assert (stage.name, stage.since) == (PROSPECT, JOINED)


@pytest.mark.parametrize(
    ("offset", "name", "since"),
    [
        (timedelta(0), NEW, PAID),
        (days(30) - SECOND, NEW, PAID),
        (days(30), ACTIVE, PAID + days(30)),
        (days(90) - SECOND, ACTIVE, PAID + days(30)),
        (days(90), AT_RISK, PAID + days(90)),
        (days(180) - SECOND, AT_RISK, PAID + days(90)),
        (days(180), DORMANT, PAID + days(180)),
        (days(365) - SECOND, DORMANT, PAID + days(180)),
        (days(365), CHURNED, PAID + days(365)),
        (days(3650), CHURNED, PAID + days(365)),
    ],
)
def test_stage_one_second_before_and_at_each_threshold(offset: timedelta, name: str, since: datetime) -> None:
    stage = stage_at([PAID], JOINED, PAID + offset, POLICY)
    assert (stage.name, stage.since, stage.win_backs) == (name, since, 0)


def test_new_counts_from_the_first_payment_even_when_more_follow() -> None:
    times = [PAID, PAID + days(10), PAID + days(29)]
    assert stage_at(times, JOINED, PAID + days(30) - SECOND, POLICY).name == NEW
    stage = stage_at(times, JOINED, PAID + days(30), POLICY)
    assert (stage.name, stage.since) == (ACTIVE, PAID + days(30))
    # the quiet period counts from the last payment
    assert stage_at(times, JOINED, PAID + days(29 + 90) - SECOND, POLICY).name == ACTIVE
    assert stage_at(times, JOINED, PAID + days(29 + 90), POLICY).name == AT_RISK


# --- win-backs --------------------------------------------------------------------------------


def test_a_payment_after_exactly_the_at_risk_threshold_is_a_win_back_and_activates() -> None:
    back = PAID + days(180)
    stage = stage_at([PAID, back], JOINED, back, POLICY)
    assert (stage.name, stage.since, stage.win_backs) == (ACTIVE, back, 1)


def test_a_payment_one_second_before_the_gap_reaches_180_days_is_no_win_back() -> None:
    back = PAID + days(180) - SECOND
    stage = stage_at([PAID, back], JOINED, back, POLICY)
    assert (stage.name, stage.win_backs) == (ACTIVE, 0)
    assert stage.since == back  # it ended an at_risk spell, so a new active spell starts with it


def test_a_churned_member_paying_again_is_won_back_and_active_since_that_payment() -> None:
    back = PAID + days(400)
    assert stage_at([PAID, back], JOINED, back - SECOND, POLICY).name == CHURNED
    stage = stage_at([PAID, back], JOINED, back, POLICY)
    assert (stage.name, stage.since, stage.win_backs) == (ACTIVE, back, 1)
    later = stage_at([PAID, back], JOINED, back + days(90), POLICY)
    assert (later.name, later.since, later.win_backs) == (AT_RISK, back + days(90), 1)


def test_win_backs_accumulate_and_only_count_payments_known_at_the_moment() -> None:
    times = [PAID, PAID + days(200), PAID + days(210), PAID + days(600)]
    assert stage_at(times, JOINED, PAID + days(599), POLICY).win_backs == 1
    assert stage_at(times, JOINED, PAID + days(600), POLICY).win_backs == 2
    stage = stage_at(times, JOINED, PAID + days(600) + days(30), POLICY)
    assert (stage.name, stage.since) == (ACTIVE, PAID + days(600))


# --- transitions ------------------------------------------------------------------------------


def test_transitions_of_a_single_payment_are_its_four_thresholds() -> None:
    assert transitions([PAID], POLICY) == [PAID + days(n) for n in (30, 90, 180, 365)]
    assert transitions([], POLICY) == []


def test_transitions_skip_thresholds_that_a_later_payment_came_before() -> None:
    second = PAID + days(100)
    assert transitions([PAID, second], POLICY) == [
        PAID + days(30),
        PAID + days(90),
        second + days(90),
        second + days(180),
        second + days(365),
    ]


def test_a_threshold_at_the_very_instant_of_the_next_payment_is_not_a_time_transition() -> None:
    second = PAID + days(90)
    assert PAID + days(90) not in transitions([PAID, second], POLICY)


@pytest.mark.parametrize(
    "gaps",
    [[0], [0, 10], [0, 50, 130], [0, 200, 205, 700], [0, 29, 119, 299, 664], [0, 400, 401]],
)
def test_stage_changes_by_time_exactly_at_the_listed_transitions(gaps: list[int]) -> None:
    times = [PAID + days(gap) for gap in gaps]
    listed = transitions(times, POLICY)
    for moment in listed:
        before = stage_at(times, JOINED, moment - SECOND, POLICY)
        now = stage_at(times, JOINED, moment, POLICY)
        assert (before.name, before.since) != (now.name, now.since), moment
        assert now.since == moment
    # between two consecutive instants of change (payments or transitions) the stage stays put
    edges = sorted({*listed, *times, times[-1] + days(800)})
    for start, end in itertools.pairwise(edges):
        first, last = stage_at(times, JOINED, start, POLICY), stage_at(times, JOINED, end - SECOND, POLICY)
        assert (first.name, first.since, first.win_backs) == (last.name, last.since, last.win_backs)


def test_next_transition_is_strictly_after_the_given_instant() -> None:
    assert next_transition([PAID], None, POLICY) == PAID + days(30)
    assert next_transition([PAID], PAID + days(30), POLICY) == PAID + days(90)
    assert next_transition([PAID], PAID + days(365), POLICY) is None


# --- who applies time-driven changes --------------------------------------------------------------


def test_events_only_evaluate_the_stage_at_the_latest_join_or_payment_and_the_scheduler_moves_it() -> None:
    context = MemberContext(member=Member(shop_id="shop-1", member_id="m-1"))
    history = [
        event("member.joined", JOINED, event_id="j", channel="app"),
        event("order.paid", PAID, event_id="p", order_id="o-1", amount=Decimal("50.00"), currency="CNY"),
        # a later event that is not a payment does not move the stage clock
        event("member.profile_updated", PAID + days(200), event_id="u", channel="web"),
        event("order.created", PAID + days(201), event_id="c", order_id="o-2", amount=Decimal("10.00"), currency="CNY"),
    ]
    for item in history:
        apply_event(context, item, DEFAULT)
    settle(context, DEFAULT)
    assert (context.member.stage, context.member.stage_since) == (NEW, PAID)

    context.ledger = list(context.new_ledger)
    run_due(context, DEFAULT, PAID + days(180) - SECOND)
    assert (context.member.stage, context.member.stage_since) == (AT_RISK, PAID + days(90))
    run_due(context, DEFAULT, PAID + days(180))
    assert (context.member.stage, context.member.stage_since) == (DORMANT, PAID + days(180))


def test_a_prospect_stays_a_prospect_through_the_scheduler() -> None:
    context = MemberContext(member=Member(shop_id="shop-1", member_id="m-1"))
    apply_event(context, joined(JOINED, event_id="j"), DEFAULT)
    settle(context, DEFAULT)
    assert (context.member.stage, context.member.stage_since) == (PROSPECT, JOINED)
    context.ledger = list(context.new_ledger)
    run_due(context, DEFAULT, JOINED + days(800))
    assert (context.member.stage, context.member.stage_since, context.member.win_backs) == (PROSPECT, JOINED, 0)


def test_a_win_back_payment_consumed_after_the_scheduler_churned_the_member_activates_it() -> None:
    context = MemberContext(member=Member(shop_id="shop-1", member_id="m-1"))
    apply_event(
        context, event("order.paid", PAID, event_id="p1", order_id="o-1", amount=Decimal("50"), currency="CNY"), DEFAULT
    )
    settle(context, DEFAULT)
    context.ledger = list(context.new_ledger)
    run_due(context, DEFAULT, PAID + days(400))
    assert context.member.stage == CHURNED
    back = PAID + days(401)
    apply_event(
        context, event("order.paid", back, event_id="p2", order_id="o-2", amount=Decimal("50"), currency="CNY"), DEFAULT
    )
    settle(context, DEFAULT)
    member = context.member
    assert (member.stage, member.stage_since, member.win_backs) == (ACTIVE, back, 1)
