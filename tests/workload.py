"""A deterministic synthetic workload: members joining, ordering, shipping, refunding, reviewing.

Used by the end-to-end tests (small sizes) and by ``make bench`` (large sizes). The mix
follows a shop's ordinary day: most members order once or twice, a few are regulars,
about one member in five has their last order refunded and one in three gets a review.
Two in five later payments use the member's first-purchase coupon, and one in thirty names
the previous member's code (shared, not redeemed); whether they do is a hash of the order,
so the random stream, and every other event, is the same as without coupons.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from shared.domain.decisions import action_id
from tests.builders import SHANGHAI, envelope

START = datetime(2026, 1, 5, 9, 0, tzinfo=SHANGHAI)


def member_story(rng: random.Random, shop: str, member: str, start: datetime) -> list[dict[str, Any]]:
    """Every event of one member, in business-time order."""
    events: list[dict[str, Any]] = []
    clock = start

    def add(event_type: str, data: dict[str, Any], after_minutes: float) -> None:
        nonlocal clock
        clock = clock + timedelta(minutes=after_minutes)
        events.append(
            envelope(
                event_type,
                data,
                event_id=f"{shop}/{member}-{len(events)}",
                at=clock,
                member=member,
                shop=shop,
                source="bench",
            )
        )

    add("member.joined", {"channel": rng.choice(["online", "offline", "mini-program"])}, 0)
    orders = rng.choices([0, 1, 2, 3, 5, 8], weights=[10, 40, 25, 12, 8, 5])[0]
    for index in range(orders):
        order_id = f"{member}-o{index}"
        amount = f"{rng.randint(3000, 40000) / 100:.2f}"
        add("order.created", {"order_id": order_id, "amount": amount, "currency": "CNY"}, rng.uniform(60, 20000))
        if rng.random() < 0.05:
            add("order.cancelled", {"order_id": order_id}, rng.uniform(1, 30))
            continue
        paid: dict[str, Any] = {"order_id": order_id, "amount": amount, "currency": "CNY"}
        codes = _coupon_codes(shop, member, order_id, index)
        if codes:
            paid["coupon_codes"] = codes
        add("order.paid", paid, rng.uniform(1, 25))
        shipment = {"order_id": order_id, "shipment_id": f"{order_id}-s", "carrier": "SF"}
        add("shipment.shipped", shipment, rng.uniform(120, 1440))
        add("shipment.in_transit", shipment, rng.uniform(60, 600))
        if rng.random() < 0.03:
            add("shipment.exception", {**shipment, "reason": "address unreachable"}, rng.uniform(60, 600))
        add("shipment.out_for_delivery", shipment, rng.uniform(600, 2000))
        add("shipment.delivered", shipment, rng.uniform(30, 300))
        # Refunds only on a member's last order: a refund consumed after a later payment
        # it preceded in business time would make tier decisions depend on consumption order.
        if index == orders - 1 and rng.random() < 0.25:
            refund = {"order_id": order_id, "refund_id": f"{order_id}-r", "amount": amount, "currency": "CNY"}
            add("refund.requested", refund, rng.uniform(60, 4000))
            add("refund.approved", refund, rng.uniform(60, 600))
            add("refund.completed", refund, rng.uniform(60, 600))
        else:
            add("order.completed", {"order_id": order_id}, rng.uniform(1000, 8000))
            if rng.random() < 0.35:
                review = {
                    "order_id": order_id,
                    "review_id": f"{order_id}-v",
                    "rating": rng.randint(3, 5),
                    "text_length": rng.randint(0, 200),
                    "photo_count": rng.choice([0, 0, 1, 3]),
                }
                add("review.posted", review, rng.uniform(60, 4000))
    return events


def first_purchase_code(shop: str, member: str) -> str:
    """The code of the member's first-purchase coupon, as the service derives it from the gift's action id."""
    ident = action_id(shop, member, "first_purchase_gift", "once")
    return "C" + hashlib.sha256(ident.encode()).hexdigest()[:12].upper()


def _chance(*parts: str) -> float:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big") / 2**64


def _coupon_codes(shop: str, member: str, order_id: str, index: int) -> list[str]:
    if index == 0:
        return []
    draw = _chance(order_id, "coupon")
    if draw < 0.4:
        return [first_purchase_code(shop, member)]
    if draw < 0.4 + 1 / 30 and member[1:].isdigit() and int(member[1:]) > 0:
        previous = f"{member[0]}{int(member[1:]) - 1:0{len(member) - 1}d}"
        return [first_purchase_code(shop, previous)]
    return []


def workload(members: int, *, seed: int = 7, shop: str = "shop-1") -> list[dict[str, Any]]:
    """All events of ``members`` members, interleaved across members as a live stream would be."""
    rng = random.Random(seed)
    stories = [
        member_story(rng, shop, f"m{index:07d}", START + timedelta(minutes=rng.uniform(0, 60 * 24 * 30)))
        for index in range(members)
    ]
    return list(_interleave(stories))


def _interleave(stories: list[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Merges the stories by business time, keeping each member's own order."""
    flat = [
        (event["time"], story_index, position)
        for story_index, story in enumerate(stories)
        for position, event in enumerate(story)
    ]
    flat.sort()
    for _, story_index, position in flat:
        yield stories[story_index][position]
