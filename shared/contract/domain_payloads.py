"""A validated payload as the domain's typed value, whichever validator accepted it.

The pydantic models (``events``) and the fast-path structs (``event_structs``) expose the
same fields; this is the one place that maps them to ``shared.domain.events``. Money may
arrive as a Decimal, decimal text or an integer, and is a Decimal after.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from shared.domain import events as domain

SHIPMENT_STATUS: dict[str, domain.ShipmentStatus] = {f"shipment.{s}": s for s in domain.SHIPMENT_STATUSES}
REFUND_STATUS: dict[str, domain.RefundStatus] = {f"refund.{s}": s for s in domain.REFUND_STATUSES}
REVIEW_KIND: dict[str, domain.ReviewKind] = {f"review.{k}": k for k in domain.REVIEW_KINDS}


def _optional_tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    return tuple(values) if values is not None else None


def _items(items: list[Any] | None) -> tuple[domain.OrderItem, ...] | None:
    if items is None:
        return None
    return tuple(domain.OrderItem(item.sku, item.quantity, Decimal(item.unit_price), item.category) for item in items)


def _profile(p: Any) -> dict[str, Any]:
    """The profile fields of ``member.joined`` or ``member.profile_updated``, by their shared names."""
    return {name: getattr(p, name) for name in domain.PROFILE_FIELDS}


def _order_created(event_type: str, p: Any) -> domain.Payload:
    return domain.OrderCreated(
        p.order_id, Decimal(p.amount), p.currency, _items(p.items), _optional_tuple(p.coupon_codes), p.channel
    )


def _order_paid(event_type: str, p: Any) -> domain.Payload:
    return domain.OrderPaid(p.order_id, Decimal(p.amount), p.currency, _optional_tuple(p.coupon_codes), _items(p.items))


def _review(event_type: str, p: Any) -> domain.Payload:
    return domain.ReviewEvent(
        REVIEW_KIND[event_type], p.order_id, p.review_id, p.rating, p.text_length, p.photo_count, p.video_count
    )


_CONVERTERS: dict[str, Callable[[str, Any], domain.Payload]] = {
    "member.joined": lambda _, p: domain.MemberJoined(marketing_consent=p.marketing_consent, **_profile(p)),
    "member.profile_updated": lambda _, p: domain.ProfileUpdated(**_profile(p)),
    "member.consent_changed": lambda _, p: domain.ConsentChanged(p.marketing_consent),
    "member.tags_changed": lambda _, p: domain.TagsChanged(tuple(p.add or ()), tuple(p.remove or ())),
    "order.created": _order_created,
    "order.paid": _order_paid,
    "order.cancelled": lambda _, p: domain.OrderCancelled(p.order_id),
    "order.completed": lambda _, p: domain.OrderCompleted(p.order_id),
    **{
        event_type: lambda t, p: domain.ShipmentEvent(
            SHIPMENT_STATUS[t], p.order_id, p.shipment_id, p.carrier, p.tracking_no
        )
        for event_type in SHIPMENT_STATUS
    },
    **{
        event_type: lambda t, p: domain.RefundEvent(
            REFUND_STATUS[t], p.order_id, p.refund_id, Decimal(p.amount), p.currency
        )
        for event_type in REFUND_STATUS
    },
    **dict.fromkeys(REVIEW_KIND, _review),
}


def to_domain(event_type: str, payload: Any) -> domain.Payload:
    """The domain's value of a payload of an event of ``event_type``; free text (``reason``) is left behind."""
    return _CONVERTERS[event_type](event_type, payload)
