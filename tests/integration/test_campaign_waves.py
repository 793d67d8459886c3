"""Campaign waves run by the scheduler on PostgreSQL: once per (wave, member), whatever runs them."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import (
    actions,
    budget_spend,
    campaign_waves,
    campaigns,
    coupons,
    decisions,
    members,
    orders,
    outbox,
    points_ledger,
)
from shared.domain.budgets import BudgetBook, SpendRow
from shared.domain.campaign_waves import (
    NOT_CONVERTED_FILTER,
    DueWave,
    WaveRun,
    budget_scope,
    decide_batch,
    decide_member,
)
from shared.domain.campaigns import HOLDOUT, assign, parse_plan, plan_document
from shared.domain.playbook import Playbook
from shared.playbook_file import parse_playbook
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler

pytestmark = pytest.mark.integration

SHOP = "shop-1"
CAMPAIGN = "cmp_1"
T1 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T2 = T1 + timedelta(days=10)
AUDIENCE = [f"m-{i:03d}" for i in range(60)]  # score 1: in the segment
OTHERS = [f"x-{i:03d}" for i in range(10)]  # score 0: not


def body(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": "Double 11",
        "definition": {"field": "score", "op": ">=", "value": 1},
        "strategies": [
            {"code": "coupon", "weight": 1, "template": "d11_a", "incentive": {"kind": "coupon", "value": "10.00"}},
            {"code": "points", "weight": 1, "template": "d11_b", "incentive": {"kind": "points", "points": 100}},
            {"code": "plain", "weight": 1, "template": "d11_c"},
        ],
        "holdout_percent": 20,
        "waves": [{"at": T1.isoformat()}, {"at": T2.isoformat(), "audience": "not_converted"}],
        "attribution_window": "P7D",
    }
    plan.update(changes)
    return plan


def playbook() -> Playbook:
    return parse_playbook({})


def scheduler(engine: AsyncEngine, wave_batch_size: int = 7) -> Scheduler:
    return Scheduler(SqlUnitOfWork.factory(engine), playbook(), wave_batch_size=wave_batch_size)


async def seed(engine: AsyncEngine, plan_body: dict[str, Any], status: str = "scheduled") -> None:
    """The audience's members and the campaign with one pending row per wave, as the API creates them."""
    plan = parse_plan(plan_body)
    async with engine.begin() as connection:
        rows = [{"shop_id": SHOP, "member_id": m, "score": 1} for m in AUDIENCE]
        rows += [{"shop_id": SHOP, "member_id": m, "score": 0} for m in OTHERS]
        await connection.execute(insert(members), rows)
        await connection.execute(
            insert(campaigns),
            {
                "shop_id": SHOP,
                "campaign_id": CAMPAIGN,
                "name": plan.name,
                "status": status,
                "plan": plan_document(plan),
                "created_at": T1 - timedelta(days=1),
                "created_by": "ops",
            },
        )
        await connection.execute(
            insert(campaign_waves),
            [
                {"shop_id": SHOP, "campaign_id": CAMPAIGN, "wave": w.number, "at": w.at, "audience": w.audience}
                for w in plan.waves
            ],
        )


async def rows(engine: AsyncEngine, query: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(query)).all())


def strategy_of(member: str, plan_body: dict[str, Any] | None = None) -> str:
    plan = parse_plan(plan_body or body())
    return assign(CAMPAIGN, member, plan.strategies, plan.holdout_percent)


async def outcomes(engine: AsyncEngine, wave: int) -> dict[str, str]:
    found = await rows(engine, select(decisions.c.member_id, decisions.c.outcome).where(decisions.c.wave == wave))
    assert len(found) == len({member for member, _ in found})  # one decision per member and wave
    return dict(found)


async def campaign_actions(engine: AsyncEngine) -> list[tuple[str, int]]:
    found = await rows(
        engine,
        select(actions.c.member_id, text("(payload->'campaign'->>'wave')::int")).where(actions.c.rule == "campaign"),
    )
    return [(member, wave) for member, wave in found]


async def test_two_waves_leave_out_the_members_who_converted_in_between(engine: AsyncEngine) -> None:
    await seed(engine, body())
    report = await scheduler(engine).run(T1 + timedelta(hours=1))
    assert (report.waves_started, report.waves_run, report.wave_members) == (1, 1, len(AUDIENCE))

    first = await outcomes(engine, 1)
    assert sorted(first) == AUDIENCE  # the segment, and only it
    for member, outcome in first.items():
        assert outcome == ("holdout" if strategy_of(member) == HOLDOUT else "emitted")
    given = [m for m in AUDIENCE if strategy_of(m) != HOLDOUT]
    assert report.by_rule["campaign"] == len(given)
    assert sorted(await campaign_actions(engine)) == [(m, 1) for m in given]
    coupon_members = sorted(m for m in given if strategy_of(m) == "coupon")
    wallet = await rows(engine, select(coupons.c.member_id, coupons.c.campaign_id, coupons.c.expires_at))
    assert sorted(wallet) == [(m, CAMPAIGN, T1 + timedelta(days=30)) for m in coupon_members]
    credited = await rows(engine, select(points_ledger.c.member_id, points_ledger.c.points))
    assert sorted(credited) == [(m, 100) for m in given if strategy_of(m) == "points"]
    ((payload,),) = await rows(
        engine, select(outbox.c.payload).where(text(f"payload::jsonb->>'member_id' = '{coupon_members[0]}'"))
    )
    action = json.loads(payload)
    assert action["campaign"] == {"campaign_id": CAMPAIGN, "wave": 1, "strategy": "coupon"}
    assert (action["category"], action["trigger"]) == ("incentive", {"schedule": "campaign", "due_at": T1.isoformat()})
    assert await rows(engine, select(campaigns.c.status)) == [("running",)]

    # Some convert between the waves: paid inside the first wave's window; one paid after it (still targeted).
    converters = given[:4] + [m for m in AUDIENCE if strategy_of(m) == HOLDOUT][:1]
    late_buyer = given[4]
    paid = [(m, T1 + timedelta(days=2)) for m in converters] + [(late_buyer, T1 + timedelta(days=8))]
    async with engine.begin() as connection:
        await connection.execute(
            insert(orders),
            [
                {"shop_id": SHOP, "order_id": f"o-{m}", "member_id": m, "status": "paid", "paid_at": at}
                for m, at in paid
            ],
        )
    report = await scheduler(engine).run(T2)
    assert report.waves_run == 1
    second = await outcomes(engine, 2)
    assert sorted(second) == AUDIENCE
    for member, outcome in second.items():
        if strategy_of(member) == HOLDOUT:
            assert outcome == "holdout"
        elif member in converters:
            assert outcome == "not_converted_filter"
        else:
            assert outcome == "emitted"
    assert late_buyer not in converters
    assert second[late_buyer] == "emitted"
    waves = await rows(engine, select(campaign_waves.c.wave, campaign_waves.c.status, campaign_waves.c.members))
    assert sorted(waves) == [(1, "done", len(given)), (2, "done", len(given) - 4)]
    assert await rows(engine, select(campaigns.c.status)) == [("completed",)]

    again = await scheduler(engine).run(T2)  # the same as_of again: nothing left
    assert (again.actions, again.wave_members, again.waves_started) == (0, 0, 0)
    assert len(await campaign_actions(engine)) == 2 * len(given) - 4


async def test_two_schedulers_at_once_give_one_action_per_wave_and_member(engine: AsyncEngine) -> None:
    second = T1 + timedelta(days=3)  # both waves within the lateness guard of one run
    await seed(engine, body(waves=[{"at": T1.isoformat()}, {"at": second.isoformat(), "audience": "not_converted"}]))
    reports = await asyncio.gather(*(scheduler(engine, 3).run(second) for _ in range(3)))
    assert sum(report.waves_started for report in reports) == 2
    assert sum(report.wave_members for report in reports) == 2 * len(AUDIENCE)
    found = await campaign_actions(engine)
    assert max(Counter(found).values()) == 1
    given = [m for m in AUDIENCE if strategy_of(m) != HOLDOUT]
    assert sorted(found) == sorted([(m, 1) for m in given] + [(m, 2) for m in given])
    assert len(await outcomes(engine, 1)) == len(await outcomes(engine, 2)) == len(AUDIENCE)
    statuses = await rows(engine, select(campaign_waves.c.status, func.count()).group_by(campaign_waves.c.status))
    assert statuses == [("done", 2)]


@pytest.mark.parametrize("same_scheduler", [False, True], ids=["restarted", "running-on"])
async def test_an_interrupted_wave_resumes_where_it_stopped(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, same_scheduler: bool
) -> None:
    """Resumed by a new process, or by the same scheduler, whose claims had gone past the failed batch."""
    await seed(engine, body(waves=[{"at": T1.isoformat()}]))
    commit = SqlUnitOfWork.commit
    batches = 0

    async def failing(self: SqlUnitOfWork) -> list[str]:
        nonlocal batches
        if self.changes.wave_batches:
            batches += 1
            if batches == 3:  # the third batch's transaction dies before it commits
                raise ConnectionError("the database went away")
        return await commit(self)

    monkeypatch.setattr(SqlUnitOfWork, "commit", failing)
    first = scheduler(engine, 5)
    with pytest.raises(ConnectionError):
        await first.run(T1)
    # Two lanes: the two batches committed first are kept, and the one the other lane was in when
    # the third failed, if it had begun one.
    kept = len(await outcomes(engine, 1))
    assert kept in (10, 15)
    assert await rows(engine, select(campaign_waves.c.status)) == [("running",)]

    monkeypatch.setattr(SqlUnitOfWork, "commit", commit)
    report = await (first if same_scheduler else scheduler(engine, 5)).run(T1 + timedelta(hours=2))
    assert (report.waves_started, report.waves_run, report.wave_members) == (0, 1, len(AUDIENCE) - kept)
    assert sorted(await outcomes(engine, 1)) == AUDIENCE
    found = await campaign_actions(engine)
    assert len(found) == len(set(found)) == len([m for m in AUDIENCE if strategy_of(m) != HOLDOUT])
    assert await rows(engine, select(campaign_waves.c.status)) == [("done",)]


async def test_the_campaign_budget_runs_out_and_is_never_overspent(engine: AsyncEngine) -> None:
    coupon_only = body(
        strategies=[{"code": "c", "weight": 1, "template": "t", "incentive": {"kind": "coupon", "value": "10.00"}}],
        holdout_percent=0,
        waves=[{"at": T1.isoformat()}],
        budget="95.00",
    )
    await seed(engine, coupon_only)
    await asyncio.gather(scheduler(engine, 4).run(T1), scheduler(engine, 4).run(T1))
    counted = Counter((await outcomes(engine, 1)).values())
    assert counted == {"emitted": 9, "budget_exhausted": len(AUDIENCE) - 9}
    assert await rows(engine, select(budget_spend.c.scope, budget_spend.c.spent, budget_spend.c.issued)) == [
        (f"campaign:{CAMPAIGN}", Decimal("90.00"), 9)
    ]
    reasons = await rows(engine, select(decisions.c.reason).where(decisions.c.outcome == "budget_exhausted"))
    assert {reason for (reason,) in reasons} == {
        "90.00 of the campaign's total budget of 95.00 spent; this incentive is 10.00"
    }
    assert len(await rows(engine, select(coupons.c.code))) == 9


async def test_a_wave_handled_past_the_lateness_guard_sends_nothing(engine: AsyncEngine) -> None:
    await seed(engine, body(waves=[{"at": T1.isoformat()}]))
    report = await scheduler(engine).run(T1 + timedelta(days=8))
    assert report.waves_run == 1
    assert report.actions == 0
    assert report.late_skipped == len(AUDIENCE)
    assert set((await outcomes(engine, 1)).values()) == {"late_skipped"}
    assert await campaign_actions(engine) == []
    assert await rows(engine, select(points_ledger.c.member_id)) == []


async def test_a_cancelled_campaign_pending_waves_never_run(engine: AsyncEngine) -> None:
    await seed(engine, body(), status="cancelled")
    report = await scheduler(engine).run(T2)
    assert (report.waves_started, report.waves_cancelled) == (0, 2)
    assert await rows(engine, select(campaign_waves.c.status)) == [("cancelled",), ("cancelled",)]
    assert await rows(engine, select(decisions.c.member_id)) == []


async def test_a_wave_not_yet_due_waits(engine: AsyncEngine) -> None:
    await seed(engine, body())
    report = await scheduler(engine).run(T1 - timedelta(seconds=1))
    assert report.waves_started == 0
    assert await rows(engine, select(campaign_waves.c.status)) == [("pending",), ("pending",)]


async def written(engine: AsyncEngine) -> dict[str, list[Any]]:
    """The rows a batch wrote, less the times of writing (``decided_at``, ``created_at``)."""

    def payload(document: Any) -> Any:
        parsed = json.loads(document) if isinstance(document, str) else dict(document)
        parsed.pop("created_at")
        return parsed

    found = {
        "decisions": sorted(
            tuple(r) for r in await rows(engine, select(*[c for c in decisions.c if c.name != "decided_at"]))
        ),
        "coupons": sorted(tuple(r) for r in await rows(engine, select(coupons))),
        "actions": sorted(
            (r.action_id, r.shop_id, r.member_id, r.rule, r.category, r.occurred_at, json.dumps(payload(r.payload)))
            for r in await rows(engine, select(actions))
        ),
        "outbox": sorted(
            (r.stream, r.key, r.event_time, json.dumps(payload(r.payload), sort_keys=True))
            for r in await rows(engine, select(outbox))
        ),
    }
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE decisions, coupons, actions, outbox"))
    return found


async def test_a_batch_written_set_based_holds_the_rows_each_member_would_have_been_written_with(
    engine: AsyncEngine,
) -> None:
    plan = parse_plan(
        body(
            strategies=[
                {"code": "coupon", "weight": 2, "template": "d11_a", "variables": {"headline": "双11", "n": 2},
                 "incentive": {"kind": "coupon", "value": "10.00", "min_spend": "99.00", "valid_for": "P7D"}},
                {"code": "sample", "weight": 1, "template": "d11_b", "incentive": {"kind": "sample", "value": "3.00"}},
                {"code": "plain", "weight": 1, "template": "d11_c"},
            ],
            budget="150.00",
        )
    )  # fmt: skip
    due = DueWave(SHOP, CAMPAIGN, 2, plan.waves[1].at, plan.waves[1].audience, plan_document(plan))
    wave_run = WaveRun.of(due, plan, playbook().for_shop(SHOP), due.at)
    claimed = [(member, index % 5 == 0) for index, member in enumerate(AUDIENCE)]

    def spend() -> BudgetBook:
        scope, start = budget_scope(CAMPAIGN), datetime(1970, 1, 1).date()
        book = BudgetBook(spend={(SHOP, scope, start): SpendRow(Decimal("0"), 0)})
        book.since[(SHOP, scope)] = start
        return book

    batch = decide_batch(wave_run, claimed, budgets=spend())
    assert {"emitted", "holdout", "budget_exhausted", NOT_CONVERTED_FILTER} <= set(batch.outcomes())
    async with SqlUnitOfWork(engine) as uow:
        uow.add_wave_batch(batch)
        assert await uow.commit() == ["campaign"] * batch.outcomes().count("emitted")
    set_based = await written(engine)

    one_by_one, book = [], spend()
    for member, converted in claimed:
        one_by_one.append(decide_member(wave_run, member, converted=converted, budgets=book))
    async with SqlUnitOfWork(engine) as uow:
        uow.add_decisions(outcome.decision for outcome in one_by_one)
        uow.add_coupons(outcome.coupon for outcome in one_by_one if outcome.coupon is not None)
        uow.add_actions(outcome.action for outcome in one_by_one if outcome.action is not None)
        await uow.commit()
    assert set_based == await written(engine)
    assert len(set_based["decisions"]) == len(AUDIENCE)
    assert set_based["coupons"]
    assert set_based["actions"]
