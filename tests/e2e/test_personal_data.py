"""Personal data stays where it belongs: free text typed by buyers or service staff, and
rejected values, never reach actions, notifications, dead-letter reasons or logs."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.builders import Stream
from tests.support import (
    ServiceProcess,
    end_offsets,
    produce,
    read_to_end,
    wait_until_committed,
    wait_until_outbox_empty,
    wait_until_processed,
)

pytestmark = pytest.mark.integration

INPUTS = ("TOPIC_MEMBERS", "TOPIC_ORDERS", "TOPIC_SHIPMENTS", "TOPIC_REFUNDS", "TOPIC_REVIEWS")


def marker(name: str) -> str:
    """Looks like what a careless upstream system would pass on: a phone number, an e-mail, an address."""
    return {
        "phone": "MARKER-13800138000",
        "email": "marker.buyer@example.com",
        "address": "MARKER 88 Nanjing Road, Huangpu",
    }.get(name, f"MARKER-{name}")


MARKERS = [marker(name) for name in ("phone", "email", "address", "note", "comment", "type", "birthday", "channel")]


async def test_free_text_and_rejected_values_never_reach_actions_notifications_dead_letter_reasons_or_logs(
    engine: AsyncEngine, topic_env: dict[str, str], start_service: Callable[..., ServiceProcess]
) -> None:
    money = {"amount": "300.00", "currency": "CNY"}
    good = Stream()
    good.add("member.joined", "m-1", 0, channel="online")
    paid = good.add("order.paid", "m-1", 5, order_id="o-1", note=marker("note"), **money)
    paid["comment"] = marker("comment")  # an envelope extension attribute
    good.add("shipment.shipped", "m-1", 60, order_id="o-1", shipment_id="s-1", carrier="SF", tracking_no="SF1")
    exception = good.add(
        "shipment.exception", "m-1", 120, order_id="o-1", shipment_id="s-1", reason=f"call {marker('phone')}"
    )
    refund = {"order_id": "o-1", "refund_id": "r-1", "amount": "20.00", "currency": "CNY"}
    good.add("refund.requested", "m-1", 180, reason=f"write to {marker('email')}", **refund)
    good.add("refund.completed", "m-1", 240, reason=f"collect at {marker('address')}", **refund)

    bad = Stream()
    bad.add("member.joined", "m-2", 0, channel="online", timezone=marker("email"))
    bad.add("member.joined", "m-3", 0, channel="online", birthday=marker("birthday"))
    bad.add("member.joined", "m-4", 0, channel=marker("channel") * 40)  # over the 200-character limit
    unknown = bad.add("member.joined", "m-5", 0, channel="online")
    unknown["type"] = f"order.{marker('type')}"
    bad.add("member.profile_updated", "m-6", 0, timezone=marker("address"))

    engagement = start_service("engagement")
    notifier = start_service("notifier")
    await produce(topic_env, [*good.events, *bad.events])

    await wait_until_processed(engine, len(good.events))
    inputs = [topic_env[name] for name in INPUTS]
    await wait_until_committed(engagement.env["ENGAGEMENT_GROUP_ID"], await end_offsets(inputs))
    await wait_until_committed(notifier.env["NOTIFIER_GROUP_ID"], await end_offsets([topic_env["TOPIC_ACTIONS"]]))
    await wait_until_outbox_empty(engine)

    actions = await read_to_end(topic_env["TOPIC_ACTIONS"])
    notifications = await read_to_end(topic_env["TOPIC_NOTIFICATIONS"])
    dead = await read_to_end(topic_env["TOPIC_DLQ"])

    # The events were applied (so their text had every chance to leak) ...
    care = {action["rule"]: action for action in actions}
    exception_care = care["logistics_exception_care"]
    assert exception_care["trigger"]["event_id"] == exception["id"]
    assert exception_care["message"]["variables"] == {"order_id": "o-1", "shipment_id": "s-1"}
    assert {"refund_requested_ack", "refund_completed_notice"} <= care.keys()
    assert {n["action_id"] for n in notifications} == {a["action_id"] for a in actions}
    # ... and every bad record was dead-lettered with its original bytes, but a reason of its own.
    assert len(dead) == len(bad.events)
    assert {json.loads(base64.b64decode(record["value"]))["id"] for record in dead} == {e["id"] for e in bad.events}

    places: dict[str, str] = {
        "actions": json.dumps(actions, ensure_ascii=False),
        "notifications": json.dumps(notifications, ensure_ascii=False),
        "dead-letter reasons": json.dumps([record["error"] for record in dead], ensure_ascii=False),
        "engagement log": engagement.log_path.read_text(errors="replace"),
        "notifier log": notifier.log_path.read_text(errors="replace"),
    }
    leaks = {(where, text) for where, body in places.items() for text in MARKERS if text in body}
    assert not leaks, leaks
    assert "marker" not in places["dead-letter reasons"].lower()
