"""Campaign plans: validation with paths, durations, and assignment to strategies and the holdout."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.domain.campaigns import (
    HOLDOUT,
    InvalidCampaignError,
    Strategy,
    assign,
    parse_duration,
    parse_plan,
    plan_document,
    stored_plan,
)
from tests.builders import SHANGHAI

AT = datetime(2026, 11, 1, 20, 0, tzinfo=SHANGHAI)


def body(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": "Double 11",
        "definition": {"tag": "lifecycle.stage_dormant"},
        "strategies": [
            {"code": "copy-a", "weight": 1, "template": "d11_a", "incentive": {"kind": "coupon", "value": "20.00"}},
            {"code": "copy-b", "weight": 1, "template": "d11_b", "variables": {"headline": "双11"}},
        ],
        "holdout_percent": 10,
        "waves": [{"at": AT.isoformat(), "audience": "all"}, {"at": (AT + timedelta(days=10)).isoformat(),
                                                             "audience": "not_converted"}],
        "attribution_window": "P7D",
    }  # fmt: skip
    plan.update(changes)
    return plan


def test_a_plan_is_parsed_with_its_waves_numbered_from_one() -> None:
    plan = parse_plan(body(budget="5000.00"))
    assert [(w.number, w.at, w.audience) for w in plan.waves] == [
        (1, AT, "all"),
        (2, AT + timedelta(days=10), "not_converted"),
    ]
    assert plan.budget == Decimal("5000.00")
    assert plan.strategy("copy-a").incentive is not None
    assert plan.strategy("copy-a").incentive.valid_for == parse_duration("P30D", "x")  # type: ignore[union-attr]
    assert plan.attribution_window.after(AT) == AT + timedelta(days=7)


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"name": ""}, "name"),
        ({"segment_id": "s-1"}, "segment_id"),  # and a definition: exactly one
        ({"definition": None}, "segment_id"),  # neither
        ({"definition": {"tag": "nonsense"}}, "definition.tag"),
        ({"holdout_percent": 51}, "holdout_percent"),
        ({"holdout_percent": -1}, "holdout_percent"),
        ({"holdout_percent": True}, "holdout_percent"),
        ({"strategies": []}, "strategies"),
        ({"strategies": [{"code": "a", "weight": 0, "template": "t"}]}, "strategies[0].weight"),
        ({"strategies": [{"code": "a", "weight": -2, "template": "t"}]}, "strategies[0].weight"),
        ({"strategies": [{"code": "a", "weight": "x", "template": "t"}]}, "strategies[0].weight"),
        ({"strategies": [{"code": "a", "weight": 1, "template": "t"}, {"code": "a", "weight": 1, "template": "t"}]},
         "strategies[1].code"),
        ({"strategies": [{"code": "holdout", "weight": 1, "template": "t"}]}, "strategies[0].code"),
        ({"strategies": [{"code": "a", "weight": 1}]}, "strategies[0].template"),
        ({"strategies": [{"code": "a", "weight": 1, "template": "t", "incentive": {"kind": "cash"}}]},
         "strategies[0].incentive.kind"),
        ({"strategies": [{"code": "a", "weight": 1, "template": "t", "incentive": {"kind": "coupon"}}]},
         "strategies[0].incentive.value"),
        ({"strategies": [{"code": "a", "weight": 1, "template": "t", "incentive": {"kind": "points", "points": 0}}]},
         "strategies[0].incentive.points"),
        ({"strategies": [{"code": "a", "weight": 1, "template": "t",
                          "incentive": {"kind": "coupon", "value": "5.00", "valid_for": "P0D"}}]},
         "strategies[0].incentive.valid_for"),
        ({"waves": []}, "waves"),
        ({"waves": [{"at": AT.isoformat()}, {"at": AT.isoformat()}]}, "waves[1].at"),
        ({"waves": [{"at": AT.isoformat()}, {"at": (AT - timedelta(days=1)).isoformat()}]}, "waves[1].at"),
        ({"waves": [{"at": "2026-11-01T20:00:00"}]}, "waves[0].at"),
        ({"waves": [{"at": AT.isoformat(), "audience": "some"}]}, "waves[0].audience"),
        ({"waves": [{"at": AT.isoformat(), "audience": "not_converted"}]}, "waves[0].audience"),
        ({"attribution_window": "14 days"}, "attribution_window"),
        ({"budget": 100}, "budget"),
        ({"budget": "0.00"}, "budget"),
        ({"budget": "1.005"}, "budget"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named_by_its_path(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidCampaignError) as raised:
        parse_plan(body(**changes))
    assert raised.value.path == path


@pytest.mark.parametrize(
    ("text", "months", "fixed"),
    [
        ("P14D", 0, timedelta(days=14)),
        ("P1M", 1, timedelta(0)),
        ("P1Y2M3DT4H", 14, timedelta(days=3, hours=4)),
        ("PT90M", 0, timedelta(minutes=90)),
        ("P2W", 0, timedelta(days=14)),
    ],
)
def test_durations_count_months_as_calendar_months_and_days_as_24_hours(
    text: str, months: int, fixed: timedelta
) -> None:
    duration = parse_duration(text, "d")
    assert (duration.months, duration.fixed) == (months, fixed)


def test_a_month_is_a_calendar_month_clamped_to_its_end() -> None:
    jan31 = datetime(2026, 1, 31, 10, 0, tzinfo=SHANGHAI)
    assert parse_duration("P1M", "d").after(jan31) == datetime(2026, 2, 28, 10, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("text", ["", "P", "PT", "14D", "P-1D", "P1.5D", "P0D", "PT0S", 14])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(InvalidCampaignError):
        parse_duration(text, "d")


STRATEGIES = (
    Strategy("a", Decimal(1), "t"),
    Strategy("b", Decimal(2), "t"),
    Strategy("c", Decimal(1), "t"),
)


def test_assignment_is_a_function_of_campaign_and_member() -> None:
    members = [f"m-{i}" for i in range(2_000)]
    first = [assign("camp-1", m, STRATEGIES, 10) for m in members]
    assert first == [assign("camp-1", m, STRATEGIES, 10) for m in members]  # every wave, every process
    assert first != [assign("camp-2", m, STRATEGIES, 10) for m in members]  # another campaign draws anew


def test_shares_follow_the_weights_and_the_holdout_within_binomial_bounds() -> None:
    n = 40_000
    counts = Counter(assign("camp-9", f"member-{i}", STRATEGIES, 20) for i in range(n))
    expected = {HOLDOUT: 0.2, "a": 0.8 * 0.25, "b": 0.8 * 0.5, "c": 0.8 * 0.25}
    for group, p in expected.items():
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[group] - n * p) < 4 * sigma, group


def test_no_holdout_holds_nobody_out_and_one_strategy_takes_everyone_else() -> None:
    assert {assign("c", f"m-{i}", STRATEGIES[:1], 0) for i in range(1_000)} == {"a"}


def test_a_stored_plan_reads_back_as_the_plan_it_was() -> None:
    plan = parse_plan(body(budget="5000.00"))
    document = plan_document(plan)
    assert json.loads(json.dumps(document)) == document  # plain JSON
    again = stored_plan(document)
    assert again == plan
    with_segment = stored_plan({**document, "segment_id": "seg-1"})
    assert (with_segment.segment_id, with_segment.definition) == ("seg-1", plan.definition)
