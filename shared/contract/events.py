"""Input events: CloudEvents 1.0 envelopes (structured JSON mode) and their payloads.

One pydantic model per event type, joined in a union discriminated by ``type``, so a
raw Kafka record is parsed and validated in a single pass by pydantic-core. Each payload
model becomes the domain's typed payload through ``domain_payloads.to_domain``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
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
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails

from shared.contract.domain_payloads import REFUND_STATUS, REVIEW_KIND, SHIPMENT_STATUS
from shared.domain.events import PROFILE_FIELDS, Gender

Identifier = Annotated[str, Field(min_length=1, max_length=200)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Count = Annotated[int, Field(ge=0, strict=True)]
BirthYear = Annotated[int, Field(ge=1900, strict=True)]  # and not after the event's year (``Envelope``)
# Free text the database keeps and audiences match on: never empty, bounded, without NUL.
Place = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]
StoreId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]*$")]
Category = Annotated[str, Field(min_length=1, max_length=64)]
ExternalTagId = Annotated[str, Field(pattern=r"^external\.[a-z0-9_]{1,64}$")]
TagIds = Annotated[list[ExternalTagId], Field(max_length=100)]

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


def check_birth_year(birth_year: int | None, time: datetime) -> None:
    """A member is not born after the event that states the birth year (the year of ``time`` as given)."""
    if birth_year is not None and birth_year > time.year:
        raise ValueError("must not be after the year of the event's time")


def check_profile_update(payload: object) -> None:
    """A profile update changes something: at least one profile field is given."""
    if all(getattr(payload, name) is None for name in PROFILE_FIELDS):
        raise ValueError(f"member.profile_updated needs at least one of {', '.join(PROFILE_FIELDS)}")


def check_tag_changes(add: Sequence[str] | None, remove: Sequence[str] | None) -> None:
    """A tag change names a tag, and never sets and removes the same tag at once."""
    if not add and not remove:
        raise ValueError("member.tags_changed needs at least one tag id in add or remove")
    if set(add or ()) & set(remove or ()):
        raise ValueError("a tag id may not be in both add and remove")


Birthday = Annotated[str, AfterValidator(check_birthday)]
TimeZoneName = Annotated[str, AfterValidator(check_timezone)]


class Payload(BaseModel):
    """Fields not named by the contract are ignored, so producers may add their own."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ProfileAttributes(Payload):
    """The profile attributes ``member.joined`` and ``member.profile_updated`` may both carry."""

    gender: Gender | None = None
    birth_year: BirthYear | None = None
    province: Place | None = None
    city: Place | None = None
    store_id: StoreId | None = None


class MemberJoined(ProfileAttributes):
    channel: Identifier
    birthday: Birthday | None = None
    timezone: TimeZoneName | None = None
    marketing_consent: StrictBool = True


class MemberProfileUpdated(ProfileAttributes):
    birthday: Birthday | None = None
    timezone: TimeZoneName | None = None
    channel: Identifier | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> MemberProfileUpdated:
        check_profile_update(self)
        return self


class MemberConsentChanged(Payload):
    marketing_consent: StrictBool


class MemberTagsChanged(Payload):
    add: TagIds | None = None
    remove: TagIds | None = None

    @model_validator(mode="after")
    def _some_change(self) -> MemberTagsChanged:
        check_tag_changes(self.add, self.remove)
        return self


class OrderItem(Payload):
    sku: Identifier
    quantity: Annotated[int, Field(ge=1, strict=True)]
    unit_price: Money
    category: Category | None = None


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
    items: list[OrderItem] | None = None
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

    @model_validator(mode="after")
    def _born_by_the_event(self) -> Envelope:
        """A birth year is checked against the event's time, which the payload alone does not know."""
        data = getattr(self, "data", None)
        if isinstance(data, ProfileAttributes):
            try:
                check_birth_year(data.birth_year, self.time)
            except ValueError as error:
                raise _payload_error("birth_year", data.birth_year, error) from None
        return self


def _payload_error(field: str, value: object, error: ValueError) -> ValidationError:
    """The error of one payload field found by an envelope check, located at ``data.<field>`` like the others."""
    detail = InitErrorDetails(type="value_error", loc=("data", field), input=value, ctx={"error": error})
    return ValidationError.from_exception_data("Envelope", [detail])


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
    "member.tags_changed": MemberTagsChanged,
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
