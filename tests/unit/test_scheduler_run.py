"""The scheduler run's use case on an in-memory unit of work: due items once, failures quarantined."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.model import Member
from shared.usecases.scheduler_run import Scheduler
from tests.builders import Stream, consumer_records, first_order
from tests.fakes import InMemoryStore
from tests.unit.test_batch_processor import PLAYBOOK, processor


async def member_after_first_order(store: InMemoryStore) -> Stream:
    stream = Stream()
    first_order(stream, "m-1")
    await processor(store).process(consumer_records(stream.events))
    return stream


async def test_a_run_sends_what_fell_due_and_a_second_run_at_the_same_time_sends_nothing() -> None:
    store = InMemoryStore()
    stream = await member_after_first_order(store)
    as_of = stream.start + timedelta(days=30, hours=1)  # the one-month gift, within its lateness
    queued = len(store.outbox)

    report = await Scheduler(store.units(), PLAYBOOK, batch_size=10).run(as_of, wait_for_locked_s=0)
    again = await Scheduler(store.units(), PLAYBOOK, batch_size=10).run(as_of, wait_for_locked_s=0)

    assert report.members == 1
    assert report.actions == len(store.outbox) - queued > 0
    assert sum(report.by_rule.values()) == report.actions
    assert (again.members, again.actions) == (0, 0)
    due = store.members[("shop-1", "m-1")].next_due_at
    assert due is not None
    assert due > as_of


async def test_a_member_the_run_cannot_handle_is_quarantined_off_the_schedule_and_the_others_are_served() -> None:
    store = InMemoryStore()
    stream = await member_after_first_order(store)
    as_of = stream.start + timedelta(days=30, hours=1)
    broken = Member(
        shop_id="shop-1", member_id="m-bad", joined_at=datetime(2026, 1, 1), next_due_at=stream.start
    )  # a naive time: the domain cannot compare it
    store.members[("shop-1", "m-bad")] = broken

    report = await Scheduler(store.units(), PLAYBOOK, batch_size=10).run(as_of, wait_for_locked_s=0)

    assert report.failed_members == 1
    assert store.quarantined[("shop-1", "m-bad")]["reason"] == "processing_error"
    assert store.members[("shop-1", "m-bad")].next_due_at is None
    assert report.actions > 0
    assert all(action.member_id == "m-1" for action in store.outbox)
