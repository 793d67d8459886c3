"""A member whose stored state the scheduler cannot run is quarantined; the run goes on for everyone else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.schema import actions, members, quarantined_members
from shared.playbook_file import load_playbook
from shared.store.unit_of_work import SqlUnitOfWork
from shared.usecases.scheduler_run import Scheduler
from tests.builders import insert_rows, joined_member_row

pytestmark = pytest.mark.integration

SHOP = "shop-1"
JOINED = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


async def test_a_member_the_scheduler_cannot_run_is_quarantined_and_the_others_are_served(
    engine: AsyncEngine,
) -> None:
    for member in ("m-ok-1", "m-broken", "m-ok-2"):
        await insert_rows(engine, (members, joined_member_row(member, JOINED)))
    async with engine.begin() as connection:  # a value an older release could store
        await connection.execute(text("UPDATE members SET joined_at = '-infinity' WHERE member_id = 'm-broken'"))

    scheduler = Scheduler(SqlUnitOfWork.factory(engine), load_playbook(), batch_size=2)
    report = await scheduler.run(JOINED + timedelta(days=31))

    assert report.failed_members == 1
    async with engine.connect() as connection:
        gifted = set(
            (await connection.execute(select(actions.c.member_id).where(actions.c.rule == "one_month_gift"))).scalars()
        )
        quarantined = (await connection.execute(select(quarantined_members))).one()
        broken_due = await connection.scalar(select(members.c.next_due_at).where(members.c.member_id == "m-broken"))
    assert gifted == {"m-ok-1", "m-ok-2"}
    assert (quarantined.member_id, quarantined.reason) == ("m-broken", "processing_error")
    assert quarantined.detail.endswith("while running the member's due items")
    assert broken_due is None  # off the schedule: later runs do not trip over it again

    again = await scheduler.run(JOINED + timedelta(days=40))
    assert (again.failed_members, again.members) == (0, 0)
