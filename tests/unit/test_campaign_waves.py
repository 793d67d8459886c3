"""One member of a campaign wave, decided without I/O: holdout, filter, budget, lateness, stable ids."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.domain.budgets import BudgetBook, SpendRow
from shared.domain.campaign_waves import (
    MEMBER_UNKNOWN,
    NOT_CONVERTED_FILTER,
    DueWave,
    WaveRun,
    budget_scope,
    conversion_windows,
    decide_batch,
    decide_member,
    wave_action_id,
)
from shared.domain.campaigns import HOLDOUT, assign, parse_plan, plan_document
from shared.domain.decisions import MemberContext, incentive_code
from shared.domain.model import Member
from shared.playbook_file import parse_playbook

AT = datetime(2026, 11, 1, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
SHOP = "shop-1"
CAMPAIGN = "cmp_1"
MEMBERS = [f"m-{i}" for i in range(200)]


def body(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": "Double 11",
        "definition": {"field": "score", "op": ">=", "value": 1},
        "strategies": [
            {"code": "coupon", "weight": 1, "template": "d11_a", "variables": {"headline": "11"},
             "incentive": {"kind": "coupon", "value": "20.00", "min_spend": "100.00", "valid_for": "P1M"}},
            {"code": "points", "weight": 1, "template": "d11_b", "incentive": {"kind": "points", "points": 500}},
            {"code": "sample", "weight": 1, "template": "d11_c", "incentive": {"kind": "sample", "value": "3.00"}},
        ],
        "holdout_percent": 10,
        "waves": [{"at": AT.isoformat()}, {"at": (AT + timedelta(days=10)).isoformat(), "audience": "not_converted"}],
        "attribution_window": "P7D",
    }  # fmt: skip
    plan.update(changes)
    return plan


def run(wave: int = 1, as_of: datetime | None = None, **changes: Any) -> WaveRun:
    plan = parse_plan(body(**changes))
    due = DueWave(SHOP, CAMPAIGN, wave, plan.waves[wave - 1].at, plan.waves[wave - 1].audience, plan_document(plan))
    return WaveRun.of(due, plan, parse_playbook({}).for_shop(SHOP), as_of or due.at)


def member_of(strategy: str) -> str:
    plan = parse_plan(body())
    return next(m for m in MEMBERS if assign(CAMPAIGN, m, plan.strategies, plan.holdout_percent) == strategy)


def context(member_id: str) -> MemberContext:
    return MemberContext(member=Member(shop_id=SHOP, member_id=member_id), ledger=[])


def test_a_coupon_member_gets_one_action_with_a_wallet_coupon_and_stable_ids() -> None:
    member = member_of("coupon")
    outcome = decide_member(run(), member)
    again = decide_member(run(), member)
    ident = wave_action_id(SHOP, member, CAMPAIGN, 1)
    assert outcome.action is not None
    assert outcome.coupon is not None
    assert outcome.action == again.action
    assert outcome.decision == again.decision
    assert outcome.action.action_id == outcome.decision.decision_id == ident
    assert (outcome.action.rule, outcome.action.category, outcome.action.template) == ("campaign", "incentive", "d11_a")
    assert outcome.action.campaign == {"campaign_id": CAMPAIGN, "wave": 1, "strategy": "coupon"}
    assert outcome.action.trigger == {"schedule": "campaign", "due_at": AT.isoformat()}
    assert outcome.action.occurred_at == AT
    assert outcome.action.incentive is not None
    assert outcome.action.incentive["code"] == outcome.coupon.code == incentive_code("coupon", ident)
    assert outcome.coupon.expires_at == datetime(2026, 12, 1, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert (outcome.coupon.campaign_id, outcome.coupon.value) == (CAMPAIGN, Decimal("20.00"))
    decision = outcome.decision
    assert (decision.outcome, decision.campaign_id, decision.wave, decision.strategy) == (
        "emitted",
        CAMPAIGN,
        1,
        "coupon",
    )
    assert decide_member(run(2), member).action.action_id != ident  # type: ignore[union-attr]


def test_a_held_out_member_gets_a_holdout_decision_and_no_action() -> None:
    member = member_of(HOLDOUT)
    outcome = decide_member(run(), member)
    assert outcome.action is None
    assert outcome.coupon is None
    assert (outcome.decision.outcome, outcome.decision.strategy, outcome.decision.wave) == ("holdout", None, 1)


def test_a_member_who_converted_is_filtered_out_of_a_not_converted_wave_only() -> None:
    member = member_of("coupon")
    filtered = decide_member(run(2), member, converted=True)
    assert filtered.action is None
    assert (filtered.decision.outcome, filtered.decision.strategy) == (NOT_CONVERTED_FILTER, "coupon")
    assert decide_member(run(1), member, converted=True).action is not None  # an "all" wave does not ask


def test_a_wave_handled_too_late_sends_nothing() -> None:
    member = member_of("coupon")
    late = decide_member(run(1, AT + timedelta(days=7, seconds=1)), member)
    assert late.action is None
    assert late.decision.outcome == "late_skipped"
    assert "schedule.max_lateness" in late.decision.reason
    assert decide_member(run(1, AT + timedelta(days=7)), member).action is not None  # exactly at the edge: sent


def test_the_total_budget_is_spent_up_to_its_last_cent_and_no_further() -> None:
    member = member_of("coupon")
    scope = budget_scope(CAMPAIGN)
    book = BudgetBook(spend={(SHOP, scope, datetime(1970, 1, 1).date()): SpendRow(Decimal("80.00"), 4)})
    book.since[(SHOP, scope)] = datetime(1970, 1, 1).date()
    fits = decide_member(run(budget="100.00"), member, budgets=book)  # 80 + 20 = 100: fits
    assert fits.decision.outcome == "emitted"
    over = decide_member(run(budget="100.00"), member_of("sample"), budgets=book)  # 100 + 3 > 100
    assert over.action is None
    assert over.decision.outcome == "budget_exhausted"
    assert over.decision.reason == "100.00 of the campaign's total budget of 100.00 spent; this incentive is 3.00"
    assert book.total_spent(SHOP, scope) == Decimal("100.00")


def test_points_are_credited_on_the_member_ledger_and_need_the_member() -> None:
    member = member_of("points")
    loaded = context(member)
    outcome = decide_member(run(), member, context=loaded)
    assert outcome.action is not None
    assert outcome.action.incentive is not None
    assert outcome.action.incentive["points"] == 500
    assert loaded.member.points_balance == 500
    assert [entry.entry_id for entry in loaded.new_ledger] == [f"campaign:{CAMPAIGN}|1"]
    assert outcome.decision.points == 500
    assert outcome.decision.value == Decimal("5.00")
    assert decide_member(run(), member).decision.outcome == MEMBER_UNKNOWN


def test_conversion_windows_start_at_each_earlier_wave_and_stop_at_this_one() -> None:
    plan = parse_plan(body(attribution_window="P30D"))
    (window,) = conversion_windows(plan, 2)
    assert (window.wave, window.start, window.stop) == (1, AT, AT + timedelta(days=10))
    assert conversion_windows(parse_plan(body()), 2)[0].stop == AT + timedelta(days=7)


def book(spent: str) -> BudgetBook:
    scope = budget_scope(CAMPAIGN)
    start = datetime(1970, 1, 1).date()
    budgets = BudgetBook(spend={(SHOP, scope, start): SpendRow(Decimal(spent), 0)})
    budgets.since[(SHOP, scope)] = start
    return budgets


@pytest.mark.parametrize(
    ("wave", "late", "budget", "spent"),
    [
        (1, False, None, "0"),
        (2, False, None, "0"),  # not_converted: converted members filtered
        (1, True, None, "0"),  # too late: everyone skipped
        (1, False, "400.00", "300.00"),  # the budget runs out part-way, then a cheaper sample still fits
    ],
)
def test_a_batch_decides_every_member_as_one_by_one_decisions_would(
    wave: int, late: bool, budget: str | None, spent: str
) -> None:
    changes: dict[str, Any] = {} if budget is None else {"budget": budget}
    probe = run(wave, **changes)
    wave_run = run(wave, probe.wave.at + timedelta(days=30) if late else None, **changes)
    claimed = [(member, index % 4 == 0) for index, member in enumerate(MEMBERS)]
    contexts = {m: context(m) for m, _ in claimed if m.endswith("7")}  # some points members are loaded, some not
    batch = decide_batch(wave_run, claimed, budgets=book(spent), contexts=contexts)
    one_by_one_book, loaded_again = book(spent), {m: context(m) for m in contexts}
    expected = [
        decide_member(wave_run, m, converted=c, budgets=one_by_one_book, context=loaded_again.get(m))
        for m, c in claimed
    ]
    by_member = {outcome.decision.member_id: outcome for outcome in batch.expand() + batch.credited}
    assert [by_member[m] for m, _ in claimed] == expected
    assert sorted(batch.outcomes()) == sorted(outcome.decision.outcome for outcome in expected)
    assert len(batch.examples) <= 3 * 5  # a variant per strategy (or the holdout) and outcome, not per member
    assert len(batch) == len(MEMBERS)
    if budget is not None:
        assert {o.decision.outcome for o in expected} >= {"emitted", "budget_exhausted"}
