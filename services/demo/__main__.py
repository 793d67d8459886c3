"""``python -m services.demo``: publishes a short story of three members and shows the result.

Run by ``make run`` against the stack ``make up`` started; reads the same settings as
the services (``.local/env``) plus ``API_URL`` and ``API_TOKEN``. Event ids carry a run
id, so running the demo twice tells the story again for new members.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.kafka_io import member_key
from shared.settings import Settings

SHOP = "demo-shop"


def _story(run: str, now: datetime) -> list[dict[str, Any]]:
    """A regular reaching Advanced, a first-time buyer without consent, a refund that overtakes its order."""
    start = now - timedelta(days=3)
    events: list[dict[str, Any]] = []

    def add(event_type: str, member: str, minutes: int, **data: Any) -> None:
        events.append(
            {
                "specversion": "1.0",
                "id": f"demo-{run}-{len(events)}",
                "source": "demo",
                "type": event_type,
                "time": (start + timedelta(minutes=minutes)).isoformat(),
                "datacontenttype": "application/json",
                "shopid": SHOP,
                "memberid": f"{member}-{run}",
                "data": data,
            }
        )

    add("member.joined", "alice", 0, channel="online", birthday="05-20")
    for index, amount in enumerate(("129.00", "89.00", "99.00")):
        order = f"alice-{run}-{index}"
        add("order.paid", "alice", 60 + index * 600, order_id=order, amount=amount, currency="CNY")
        shipment = {"order_id": order, "shipment_id": f"{order}-s", "carrier": "SF"}
        add("shipment.shipped", "alice", 240 + index * 600, **shipment)
        add("shipment.delivered", "alice", 480 + index * 600, **shipment)
    add("member.joined", "bob", 30, channel="offline", marketing_consent=False)
    add("order.paid", "bob", 90, order_id=f"bob-{run}-0", amount="59.90", currency="CNY")
    refund = {"order_id": f"carol-{run}-0", "refund_id": f"carol-{run}-r", "amount": "40.00", "currency": "CNY"}
    add("refund.completed", "carol", 200, **refund)  # arrives before its order: parked, then applied
    add("order.paid", "carol", 120, order_id=f"carol-{run}-0", amount="320.00", currency="CNY")
    add("member.joined", "mallory", 10, channel="online", birthday="02-30")  # invalid: goes to the DLQ
    return events


def _topic(settings: Settings, event_type: str) -> str:
    topics = settings.topics
    family = event_type.split(".", 1)[0]
    return {"member": topics.members, "order": topics.orders, "shipment": topics.shipments, "refund": topics.refunds}[
        family
    ]


async def _publish(settings: Settings, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send(
                _topic(settings, event["type"]),
                value=json.dumps(event).encode(),
                key=member_key(event["shopid"], event["memberid"]),
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _show(api_url: str, token: str, members: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=5) as client:
        deadline = time.monotonic() + 60
        for member in members:
            base = f"/v1/shops/{SHOP}/members/{member}"
            while True:
                status = await client.get(base)
                actions = (await client.get(f"{base}/actions", params={"limit": 200})).json().get("items", [])
                notes = await client.get(f"{base}/notifications", params={"limit": 200})
                # Deferred is an interim outcome: wait for what followed it.
                notified = {n["action_id"] for n in notes.json().get("items", []) if n["status"] != "deferred"}
                if status.status_code == 200 and actions and {a["action_id"] for a in actions} <= notified:
                    break
                if time.monotonic() > deadline:
                    print(f"  {member}: not complete yet (HTTP {status.status_code}); see the service logs")
                    break
                await asyncio.sleep(0.5)
            if status.status_code != 200:
                continue
            body = status.json()
            metrics = body["metrics"]
            print(
                f"  {member}: tier {body['tier']['code'] if body['tier'] else '-'}, "
                f"net spend {metrics['net_spend']} over {metrics['paid_orders']} orders, next tier "
                f"{(body['next_tier'] or {}).get('code', '-')}, stage {body['lifecycle']['stage']}, "
                f"{body['points']['balance']} points, score {body['score']['value']} ({body['score']['band']})"
            )
            for action in reversed(actions):
                outcomes = [
                    f"{n['channel']}:{n['status']}{'/' + n['reason'] if n['reason'] else ''}"
                    for n in reversed(notes.json()["items"])
                    if n["action_id"] == action["action_id"]
                ]
                print(f"      {action['category']:9s} {action['rule']:24s} {' -> '.join(outcomes) or 'pending'}")


async def main() -> None:
    settings = Settings()
    api_url = os.environ.get("API_URL", f"http://{settings.api_host}:{settings.api_port}")
    token = os.environ.get("API_TOKEN") or next((t.get_secret_value() for t in settings.api_tokens), "")
    run = uuid.uuid4().hex[:6]
    events = _story(run, datetime.now(UTC))
    await _publish(settings, events)
    print(f"Published {len(events)} demo events for shop {SHOP} (one invalid, sent to {settings.topics.dlq}).")
    print("Member status, actions and what the notifier did with them:")
    await _show(api_url, token, [f"{name}-{run}" for name in ("alice", "bob", "carol")])


if __name__ == "__main__":
    asyncio.run(main())
