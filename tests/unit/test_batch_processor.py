"""The event path's use case on an in-memory unit of work: claims, parking, containment, quarantine."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from services.engagement.processor import BatchProcessor
from shared.domain.model import Member
from shared.playbook_file import load_playbook
from tests.builders import Stream, consumer_records, first_order
from tests.fakes import InMemoryStore
from tests.workload import workload

PLAYBOOK = load_playbook()


def processor(store: InMemoryStore) -> BatchProcessor:
    return BatchProcessor(store.units(), PLAYBOOK, max_record_bytes=1 << 20)


async def test_a_batch_changes_the_member_and_queues_its_actions_in_one_commit() -> None:
    store, stream = InMemoryStore(), Stream()
    first_order(stream, "m-1")

    result = await processor(store).process(consumer_records(stream.events))

    member = store.members[("shop-1", "m-1")]
    assert (member.paid_orders, member.net_spend, member.joined_by_event) == (1, Decimal("300.00"), True)
    assert store.orders[("shop-1", "m-1-o1")].status == "paid"
    assert result.accepted == 3
    assert {"payment_confirmation", "first_purchase_gift"} <= {action.rule for action in store.outbox}
    assert sorted(result.new_actions) == sorted(action.rule for action in store.outbox)
    assert store.commits == 1
    assert len(store.processed) == 3


async def test_a_redelivered_batch_changes_nothing_and_queues_nothing_again() -> None:
    store, stream = InMemoryStore(), Stream()
    first_order(stream, "m-1")
    batch = consumer_records(stream.events)
    await processor(store).process(batch)
    before = (dict(store.members), len(store.outbox))

    again = await processor(store).process(batch)

    assert (again.accepted, again.duplicates, again.new_actions) == (0, 3, [])
    assert (dict(store.members), len(store.outbox)) == before


async def test_an_event_ahead_of_its_order_waits_parked_and_is_applied_when_the_order_is_paid() -> None:
    store, stream = InMemoryStore(), Stream()
    stream.add("shipment.shipped", "m-1", 5, order_id="o-1", shipment_id="s-1", carrier="SF", tracking_no="SF1")
    parked = await processor(store).process(consumer_records(stream.events))
    assert (parked.parked, len(store.parked), store.outbox) == (1, 1, [])

    later = Stream()
    later.add("order.paid", "m-1", 2, order_id="o-1", amount="99.00", currency="CNY")
    await processor(store).process(consumer_records(later.events))

    assert store.parked == []
    assert "shipped_notice" in {action.rule for action in store.outbox}


async def test_a_member_whose_stored_state_cannot_be_settled_is_quarantined_and_the_rest_of_the_batch_commits() -> None:
    store, stream = InMemoryStore(), Stream()
    broken = Member(shop_id="shop-1", member_id="m-bad", joined_at=datetime(2026, 1, 1))  # naive: cannot be compared
    store.members[("shop-1", "m-bad")] = broken
    first_order(stream, "m-bad")
    first_order(stream, "m-ok")

    result = await processor(store).process(consumer_records(stream.events))

    assert store.members[("shop-1", "m-ok")].paid_orders == 1
    assert store.members[("shop-1", "m-bad")] == broken  # left as it was
    assert store.quarantined[("shop-1", "m-bad")]["reason"] == "processing_error"
    assert result.quarantined == 1
    rejected = [(json.loads(record.value or b"")["memberid"], why.reason) for record, why in result.dead_letters]
    assert rejected == [("m-bad", "processing_error")] * 3
    assert len(store.processed) == 3
    assert all("-m-ok-" in event_id for _, event_id in store.processed)  # the failed member's stay unclaimed


async def test_a_quarantined_members_events_are_dead_lettered_unclaimed_and_counted() -> None:
    store, stream = InMemoryStore(), Stream()
    store.members[("shop-1", "m-1")] = Member(shop_id="shop-1", member_id="m-1")
    store.quarantined[("shop-1", "m-1")] = {"reason": "processing_error", "detail": "x", "events": 0}
    first_order(stream, "m-1")

    result = await processor(store).process(consumer_records(stream.events))

    assert [why.reason for _, why in result.dead_letters] == ["member_quarantined"] * 3
    assert store.processed == set()  # publishable again once released
    assert store.quarantined[("shop-1", "m-1")]["events"] == 3
    assert store.members[("shop-1", "m-1")].paid_orders == 0


async def test_an_order_of_another_member_is_refused_and_the_batch_goes_on() -> None:
    store, stream = InMemoryStore(), Stream()
    first_order(stream, "m-1")
    stream.add("order.completed", "m-2", 10, order_id="m-1-o1")

    result = await processor(store).process(consumer_records(stream.events))

    assert [why.reason for _, why in result.dead_letters] == ["order_member_mismatch"]
    assert store.orders[("shop-1", "m-1-o1")].completed_at is None


async def test_lanes_change_nothing_but_speed_the_same_batches_give_the_same_state_and_actions() -> None:
    stories = workload(40, seed=11)
    batches = [consumer_records(stories[start : start + 97]) for start in range(0, len(stories), 97)]
    stores = {}
    for lanes in (1, 3):
        store = stores[lanes] = InMemoryStore()
        lane_processor = BatchProcessor(store.units(), PLAYBOOK, max_record_bytes=1 << 20, lanes=lanes)
        for batch in batches:
            await lane_processor.process(batch)

    one, three = stores[1], stores[3]
    assert len(one.members) == 40
    assert one.members == three.members
    assert one.orders == three.orders
    assert sorted(one.actions) == sorted(three.actions)
    assert one.parked == three.parked
    assert three.commits > one.commits  # the lanes did run as separate transactions
