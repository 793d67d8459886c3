"""Where an input record enters: bytes to a validated domain event, or a dead-letter reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.contract.domain_payloads import to_domain
from shared.contract.event_structs import NotOnTheFastPathError, decode_fast
from shared.contract.events import EVENT_ADAPTER
from shared.domain.events import Event, OrderCreated, OrderPaid, RefundEvent
from shared.domain.playbook import Playbook


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was not accepted: ``reason`` is a stable code, ``detail`` says what to fix."""

    reason: str
    detail: str

    @property
    def error(self) -> str:
        return f"{self.reason}: {self.detail}"


def _rule(error: Any) -> str:
    """What the value broke, in words that never quote the value itself.

    pydantic's own messages state the expectation ("String should have at most 200
    characters"); the messages of the contract's validators are written the same way.
    Only the discriminator's message quotes its input, and it is handled apart.
    """
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return str(error["msg"])


def _describe(error: ValidationError) -> Rejection:
    """The field and the rule it broke; never the rejected value, which may be personal data."""
    first = error.errors(include_url=False, include_input=False)[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid":
        return Rejection("invalid_json", "the record is not valid JSON")
    if kind == "union_tag_invalid":
        return Rejection("unknown_type", "type: not an event type of the contract")
    if kind in ("union_tag_not_found", "model_type", "model_attributes_type"):
        return Rejection("invalid_envelope", "the record is not a CloudEvents envelope with a type")
    path = ".".join(str(part) for part in loc[1:])
    if not path:
        return Rejection("invalid_envelope", f"the record is not a CloudEvents envelope: {_rule(first)}")
    reason = "invalid_payload" if len(loc) > 1 and loc[1] == "data" else "invalid_envelope"
    return Rejection(reason, f"{path}: {_rule(first)}")


def validate_with_models(value: bytes) -> Event | Rejection:
    """The record checked by the contract's pydantic models alone, which word every rejection."""
    try:
        parsed: Any = EVENT_ADAPTER.validate_json(value)
    except ValidationError as error:
        return _describe(error)
    data = to_domain(parsed.type, parsed.data)
    return Event(parsed.source, parsed.id, parsed.time, parsed.shopid, parsed.memberid, data)


def validate(value: bytes) -> Event | Rejection:
    """The record checked against the contract: the msgspec fast path, then the models for what it leaves.

    The fast path takes the common shape of a valid record; the models decide the rest, so
    the result is the same either way (tests/unit/test_decode_paths.py).
    """
    try:
        return decode_fast(value)
    except NotOnTheFastPathError:
        return validate_with_models(value)


def decode(
    value: bytes | None,
    playbook: Playbook,
    max_bytes: int,
    now: datetime | None = None,
    validator: Callable[[bytes], Event | Rejection] = validate,
) -> Event | Rejection:
    """Validates one record against the contract, including the shop's currency and time window.

    ``now`` is the wall clock the time window is measured from (the current time when None).
    """
    if value is None:
        return Rejection("invalid_json", "the record has no value")
    if len(value) > max_bytes:
        return Rejection("too_large", f"{len(value)} bytes exceeds the maximum of {max_bytes}")
    if b"\\u0000" in value:
        return Rejection("invalid_envelope", "text may not contain NUL characters (\\u0000)")
    event = validator(value)
    if isinstance(event, Rejection):
        return event
    shop = playbook.for_shop(event.shop_id)
    if not shop.business_time.contains(event.time, now or datetime.now(UTC)):
        return Rejection("time_out_of_range", f"time: {shop.business_time.describe()}")
    data = event.data
    if isinstance(data, OrderCreated | OrderPaid | RefundEvent) and data.currency != shop.currency:
        return Rejection("wrong_currency", f"currency {data.currency} differs from the shop's {shop.currency}")
    return event
