"""Stopping a scheduler run between batches, its batch hook, and how long work shows its progress."""

from __future__ import annotations

import io
import signal
from datetime import timedelta

from rich.console import Console

from services.ops.output import counted
from services.ops.progress import ProgressDisplay
from services.ops.running import Stop
from shared.usecases.scheduler_run import Scheduler, SchedulerReport
from tests.builders import Stream, consumer_records, first_order
from tests.fakes import InMemoryStore
from tests.unit.test_batch_processor import PLAYBOOK, processor

MEMBERS = [f"m-{n}" for n in range(6)]


async def members_after_first_orders(store: InMemoryStore) -> Stream:
    stream = Stream()
    for member in MEMBERS:
        first_order(stream, member)
    await processor(store).process(consumer_records(stream.events))
    return stream


async def test_a_run_asked_to_stop_ends_after_the_batch_in_progress_and_the_next_run_does_the_rest() -> None:
    store = InMemoryStore()
    stream = await members_after_first_orders(store)
    as_of = stream.start + timedelta(days=30, hours=1)  # every member's one-month gift is due
    queued = len(store.outbox)
    scheduler = Scheduler(store.units(), PLAYBOOK, batch_size=2)
    seen: list[tuple[int, int]] = []

    def after_batch(report: SchedulerReport) -> None:
        seen.append((report.batches, report.members))
        scheduler.stop()  # as Ctrl-C does, while the first batch is being written

    stopped = await scheduler.run(as_of, wait_for_locked_s=0, on_batch=after_batch)

    assert scheduler.stopped
    assert seen == [(1, 2)]  # one whole batch, reported once it committed
    assert (stopped.batches, stopped.members) == (1, 2)
    assert len(store.outbox) - queued == stopped.actions > 0
    still_due = [m for m in store.members.values() if m.next_due_at is not None and m.next_due_at <= as_of]
    assert len(still_due) == len(MEMBERS) - 2

    rest = await Scheduler(store.units(), PLAYBOOK, batch_size=2).run(as_of, wait_for_locked_s=0)
    assert rest.members == len(MEMBERS) - 2  # then the coupons that came due, in batches of their own

    # The two runs together did what one run does, each action once.
    whole = InMemoryStore()
    await members_after_first_orders(whole)
    once = await Scheduler(whole.units(), PLAYBOOK, batch_size=2).run(as_of, wait_for_locked_s=0)
    assert stopped.actions + rest.actions == once.actions
    assert sorted(a.action_id for a in store.outbox) == sorted(a.action_id for a in whole.outbox)


async def test_the_hook_hears_every_batch_of_a_run() -> None:
    store = InMemoryStore()
    stream = await members_after_first_orders(store)
    heard: list[int] = []
    report = await Scheduler(store.units(), PLAYBOOK, batch_size=4).run(
        stream.start + timedelta(days=30, hours=1), wait_for_locked_s=0, on_batch=lambda r: heard.append(r.batches)
    )
    assert heard == list(range(1, report.batches + 1))
    assert report.batches >= 2


def test_the_first_signal_asks_to_stop_once_and_the_exit_code_names_it() -> None:
    stop, heard = Stop(), []
    stop.on_request(lambda: heard.append("first"))
    assert not stop.requested
    stop.request(signal.SIGTERM)
    stop.request(signal.SIGINT)
    assert heard == ["first"]
    assert (stop.requested, stop.exit_code) == (True, 143)
    late: list[str] = []
    stop.on_request(lambda: late.append("late"))  # a listener added after the request hears it at once
    assert late == ["late"]
    assert Stop().exit_code == 130


def test_progress_away_from_a_terminal_is_a_line_at_the_first_update_and_one_at_the_end() -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=False, width=200)
    with ProgressDisplay(console, "scheduler", None, "batch", interval_s=3600) as progress:
        progress.update(1, "5 members")
        progress.update(2, "10 members")  # within the interval: not printed
        progress.update(3, "15 members")
    assert output.getvalue().splitlines() == [
        "scheduler: 1 batch (5 members)",
        "scheduler: 3 batches (15 members)",
    ]


def test_progress_with_a_total_counts_towards_it() -> None:
    output = io.StringIO()
    with ProgressDisplay(Console(file=output, force_terminal=False), "segment s-1", 2500, "member") as progress:
        progress.update(1000)
        progress.update(2500)
    assert output.getvalue().splitlines() == ["segment s-1: 1,000/2,500 members", "segment s-1: 2,500/2,500 members"]


def test_counts_agree_with_their_nouns() -> None:
    assert [counted(n, "batch") for n in (0, 1, 2, 1200)] == ["0 batches", "1 batch", "2 batches", "1,200 batches"]
    assert (counted(1, "record"), counted(3, "quarantined member")) == ("1 record", "3 quarantined members")
