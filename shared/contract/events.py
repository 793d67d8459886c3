"""Input events: CloudEvents 1.0 envelopes (structured JSON mode) and their payloads.

One pydantic model per event type, joined in a union discriminated by ``type``, so a
raw Kafka record is parsed and validated in a single pass by pydantic-core. Each payload
model becomes the domain's typed payload through ``domain_payloads.to_domain``.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    model_validator,
)

from shared.contract.domain_payloads import REFUND_STATUS, REVIEW_KIND, SHIPMENT_STATUS

Identifier = Annotated[str, Field(min_length=1, max_length=200)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Count = Annotated[int, Field(ge=0, strict=True)]

_BIRTHDAY = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})$")


def check_birthday(value: str) -> str:
    match = _BIRTHDAY.match(value)
    if match is None:
        raise ValueError("birthday must be MM-DD or YYYY-MM-DD")
    year, month, day = match.groups()
    # 2000 is a leap year, so a year-less 02-29 is accepted.
    date(int(year) if year else 2000, int(month), int(day))
    return value


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not a known IANA time zone") from exc
    return value


Birthday = Annotated[str, AfterValidator(check_birthday)]
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]


class Payload(BaseModel):
    """Fields not named by the contract are ignored, so producers may add their own."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class MemberJoined(Payload):
    channel: Identifier
    birthday: Birthday | None = None
    timezone: TimeZoneName | None = None
    marketing_consent: StrictBool = True


class MemberProfileUpdated(Payload):
    birthday: Birthday | None = None
    timezone: TimeZoneName | None = None
    channel: Identifier | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> MemberProfileUpdated:
        if self.birthday is None and self.timezone is None and self.channel is None:
            raise ValueError("member.profile_updated needs at least one of birthday, timezone, channel")
        return self


class MemberConsentChanged(Payload):
    marketing_consent: StrictBool


class OrderItem(Payload):
    sku: Identifier
    quantity: Annotated[int, Field(ge=1, strict=True)]
    unit_price: Money


class OrderCreated(Payload):
    order_id: Identifier
    amount: Money
    currency: Currency
    items: list[OrderItem] | None = None
    coupon_codes: list[Identifier] | None = None
    channel: Identifier | None = None


class OrderPaid(Payload):
    order_id: Identifier
    amount: Money
    currency: Currency
    coupon_codes: list[Identifier] | None = None


class OrderRef(Payload):  # order.cancelled and order.completed
    order_id: Identifier


class Shipment(Payload):
    order_id: Identifier
    shipment_id: Identifier
    carrier: str | None = None
    tracking_no: str | None = None
    reason: str | None = None


class Refund(Payload):
    order_id: Identifier
    refund_id: Identifier
    amount: Money
    currency: Currency
    reason: str | None = None


class Review(Payload):
    order_id: Identifier
    review_id: Identifier
    rating: Annotated[int, Field(ge=1, le=5, strict=True)]
    text_length: Count
    photo_count: Count
    video_count: Count | None = None


class Envelope(BaseModel):
    """CloudEvents attributes every input carries; extension attributes are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: Identifier
    source: Identifier
    time: AwareDatetime
    datacontenttype: str | None = None
    shopid: Identifier
    memberid: Identifier


def _event(type_name: str, payload: type[Payload]) -> Any:
    """An envelope model whose ``type`` is fixed and whose ``data`` is ``payload``."""
    return type(
        "Event_" + type_name.replace(".", "_"),
        (Envelope,),
        {"__annotations__": {"type": Literal[type_name], "data": payload}},
    )


PAYLOAD_BY_TYPE: dict[str, type[Payload]] = {
    "member.joined": MemberJoined,
    "member.profile_updated": MemberProfileUpdated,
    "member.consent_changed": MemberConsentChanged,
    "order.created": OrderCreated,
    "order.paid": OrderPaid,
    "order.cancelled": OrderRef,
    "order.completed": OrderRef,
    **dict.fromkeys(SHIPMENT_STATUS, Shipment),
    **dict.fromkeys(REFUND_STATUS, Refund),
    **dict.fromkeys(REVIEW_KIND, Review),
}

EVENT_MODELS: dict[str, type[Envelope]] = {name: _event(name, model) for name, model in PAYLOAD_BY_TYPE.items()}

AnyEvent = Annotated[Union[tuple(EVENT_MODELS.values())], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
"""Any valid input event; ``event.type`` tells which, ``event.data`` is its payload."""

EVENT_ADAPTER: TypeAdapter[Envelope] = TypeAdapter(AnyEvent)  # type: ignore[arg-type]
