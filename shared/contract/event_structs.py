"""A fast path for the input contract: msgspec structs that accept a strict subset of it.

``shared.contract.events`` (pydantic) is the contract: its models generate the JSON
Schemas and word every rejection. These structs decode the common shape of a valid
record several times faster, straight into the domain's typed payloads, and are
stricter on purpose: money as a plain decimal string (``"129.00"``) or an integer,
``time`` as ``YYYY-MM-DDThh:mm:ss[.ffffff](Z|±hh:mm)``. Whatever they refuse, including
every invalid record, is decoded again by the pydantic models, which accept it or say
why not; so a record is accepted with the same values, or rejected with the same
reason, whichever path it takes (tests/unit/test_decode_paths.py holds them to it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct

from shared.contract.domain_payloads import to_domain
from shared.contract.events import (
    PAYLOAD_BY_TYPE,
    check_birth_year,
    check_birthday,
    check_profile_update,
    check_tag_changes,
    check_timezone,
)
from shared.domain import events as domain

Identifier = Annotated[str, Meta(min_length=1, max_length=200)]
# What the contract's Money accepts without rounding or rewriting: at most 12 whole digits and 2 places.
MoneyText = Annotated[str, Meta(pattern=r"^(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?\Z")]
MoneyInteger = Annotated[int, Meta(ge=0, le=999_999_999_999)]
Money = MoneyText | MoneyInteger
Currency = Annotated[str, Meta(pattern=r"^[A-Z]{3}\Z")]
Count = Annotated[int, Meta(ge=0)]
BirthYear = Annotated[int, Meta(ge=1900)]  # and not after the event's year, checked in ``decode_fast``
Place = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^\x00]*\Z")]
StoreId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[^\x00]*\Z")]
Category = Annotated[str, Meta(min_length=1, max_length=64)]
ExternalTagId = Annotated[str, Meta(pattern=r"^external\.[a-z0-9_]{1,64}\Z")]
TagIds = Annotated[list[ExternalTagId], Meta(max_length=100)]
# RFC 3339 with an offset and at most microseconds, so ``datetime.fromisoformat`` reads the
# instant pydantic does (pydantic truncates further digits; the pydantic path handles them).
TimeText = Annotated[
    str,
    Meta(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
        r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
    ),
]


class NotOnTheFastPathError(Exception):
    """The record may still be valid: the pydantic models decide."""


class Payload(Struct, frozen=True):
    """A payload the fast path accepts; ``domain_payloads.to_domain`` turns it into the domain's value."""


def _check_profile(birthday: str | None, timezone: str | None) -> None:
    """The contract's own checks (a ``ValueError`` becomes a ``msgspec.ValidationError``)."""
    if birthday is not None:
        check_birthday(birthday)
    if timezone is not None:
        check_timezone(timezone)


class ProfileAttributes(Payload, frozen=True, kw_only=True):
    gender: domain.Gender | None = None
    birth_year: BirthYear | None = None
    province: Place | None = None
    city: Place | None = None
    store_id: StoreId | None = None


class MemberJoined(ProfileAttributes, frozen=True):
    channel: Identifier
    birthday: str | None = None
    timezone: str | None = None
    marketing_consent: bool = True

    def __post_init__(self) -> None:
        _check_profile(self.birthday, self.timezone)


class MemberProfileUpdated(ProfileAttributes, frozen=True):
    birthday: str | None = None
    timezone: str | None = None
    channel: Identifier | None = None

    def __post_init__(self) -> None:
        check_profile_update(self)
        _check_profile(self.birthday, self.timezone)


class MemberConsentChanged(Payload, frozen=True):
    marketing_consent: bool


class MemberTagsChanged(Payload, frozen=True):
    add: TagIds | None = None
    remove: TagIds | None = None

    def __post_init__(self) -> None:
        check_tag_changes(self.add, self.remove)


class OrderItem(Struct, frozen=True):
    sku: Identifier
    quantity: Annotated[int, Meta(ge=1)]
    unit_price: Money
    category: Category | None = None


class OrderCreated(Payload, frozen=True):
    order_id: Identifier
    amount: Money
    currency: Currency
    items: list[OrderItem] | None = None
    coupon_codes: list[Identifier] | None = None
    channel: Identifier | None = None


class OrderPaid(Payload, frozen=True):
    order_id: Identifier
    amount: Money
    currency: Currency
    items: list[OrderItem] | None = None
    coupon_codes: list[Identifier] | None = None


class OrderRef(Payload, frozen=True):
    order_id: Identifier


class Shipment(Payload, frozen=True):
    order_id: Identifier
    shipment_id: Identifier
    carrier: str | None = None
    tracking_no: str | None = None
    reason: str | None = None


class Refund(Payload, frozen=True):
    order_id: Identifier
    refund_id: Identifier
    amount: Money
    currency: Currency
    reason: str | None = None


class Review(Payload, frozen=True):
    order_id: Identifier
    review_id: Identifier
    rating: Annotated[int, Meta(ge=1, le=5)]
    text_length: Count
    photo_count: Count
    video_count: Count | None = None


STRUCT_BY_PAYLOAD: dict[str, type[Payload]] = {
    "MemberJoined": MemberJoined,
    "MemberProfileUpdated": MemberProfileUpdated,
    "MemberConsentChanged": MemberConsentChanged,
    "MemberTagsChanged": MemberTagsChanged,
    "OrderCreated": OrderCreated,
    "OrderPaid": OrderPaid,
    "OrderRef": OrderRef,
    "Shipment": Shipment,
    "Refund": Refund,
    "Review": Review,
}
"""The struct standing for each of the contract's payload models, by the model's name."""


class Envelope(Struct, frozen=True, kw_only=True, tag_field="type"):
    """The CloudEvents attributes; ``type`` is the tag that picks the struct, ``data`` its payload."""

    specversion: Literal["1.0"]
    id: Identifier
    source: Identifier
    time: TimeText
    shopid: Identifier
    memberid: Identifier
    datacontenttype: str | None = None


def _envelope(event_type: str, payload: type[Payload]) -> type[Envelope]:
    name = "Event_" + event_type.replace(".", "_")
    made = msgspec.defstruct(name, [("data", payload)], bases=(Envelope,), tag=event_type, frozen=True, kw_only=True)
    assert issubclass(made, Envelope)
    return made


EVENT_STRUCTS: dict[str, type[Envelope]] = {
    event_type: _envelope(event_type, STRUCT_BY_PAYLOAD[model.__name__])
    for event_type, model in PAYLOAD_BY_TYPE.items()
}

_TYPE_OF: dict[type[Envelope], str] = {struct: event_type for event_type, struct in EVENT_STRUCTS.items()}
DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Union[tuple(EVENT_STRUCTS.values())])  # noqa: UP007


def decode_fast(value: bytes) -> domain.Event:
    """The record as a domain event, or ``NotOnTheFastPathError`` for anything outside the strict subset."""
    try:
        parsed = DECODER.decode(value)
        time = datetime.fromisoformat(parsed.time)
        if isinstance(parsed.data, ProfileAttributes):
            check_birth_year(parsed.data.birth_year, time)  # the models word the rejection
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, ValueError) as error:
        raise NotOnTheFastPathError from error
    event_type = _TYPE_OF[type(parsed)]
    data = to_domain(event_type, parsed.data)
    return domain.Event(parsed.source, parsed.id, time, parsed.shopid, parsed.memberid, data)
