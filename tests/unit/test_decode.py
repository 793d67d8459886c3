"""Decoding a raw record: a validated domain event, or a rejection with a stable reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from services.engagement.decode import Rejection, decode
from shared.domain.events import (
    Event,
    MemberJoined,
    OrderCreated,
    OrderItem,
    OrderPaid,
    Payload,
    ProfileUpdated,
    ReviewEvent,
    TagsChanged,
)
from shared.playbook_file import parse_playbook
from tests.builders import envelope

PLAYBOOK = parse_playbook({"shops": {"shop-usd": {"currency": "USD"}}})
MAX_BYTES = 64 * 1024
P = TypeVar("P", bound=Payload)


def raw(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode()


def reject(value: bytes, max_bytes: int = MAX_BYTES) -> Rejection:
    result = decode(value, PLAYBOOK, max_bytes)
    assert isinstance(result, Rejection), result
    return result


def accept(value: bytes) -> Event:
    result = decode(value, PLAYBOOK, MAX_BYTES)
    assert isinstance(result, Event), result
    return result


def payload_of(value: bytes, kind: type[P]) -> P:
    data = accept(value).data
    assert isinstance(data, kind), data
    return data


def without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != key}


def review(rating: int) -> dict[str, Any]:
    return {"order_id": "o-1", "review_id": "rv-1", "rating": rating, "text_length": 10, "photo_count": 0}


def line(**fields: Any) -> dict[str, Any]:
    """An order item of 129.00; ``fields`` add or replace its fields."""
    return {"sku": "TEA-001", "quantity": 1, "unit_price": "129.00", **fields}


def test_a_valid_order_paid_becomes_an_event_with_decimal_money_and_aware_time() -> None:
    event = accept(raw(envelope()))
    assert (event.source, event.id, event.type) == ("shop-system", "evt-1", "order.paid")
    assert (event.shop_id, event.member_id, event.order_id) == ("shop-1", "m-1", "o-1")
    assert event.time == datetime(2024, 5, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert event.data == OrderPaid("o-1", Decimal("129.00"), "CNY")
    assert isinstance(event.data.amount, Decimal)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(b"not json at all", "invalid_json", id="bytes_not_json"),
        pytest.param(b'{"specversion": "1.0",', "invalid_json", id="truncated_json"),
        pytest.param(raw(without(envelope(), "specversion")), "invalid_envelope", id="missing_specversion"),
        pytest.param(raw(envelope(specversion="0.3")), "invalid_envelope", id="wrong_specversion"),
        pytest.param(raw(without(envelope(), "type")), "invalid_envelope", id="missing_type"),
        pytest.param(b"[1, 2]", "invalid_envelope", id="not_an_object"),
        pytest.param(raw(envelope(time="2024-05-01T10:00:00")), "invalid_envelope", id="time_without_offset"),
        pytest.param(raw(envelope(memberid="")), "invalid_envelope", id="empty_member_id"),
        pytest.param(raw(envelope("order.teleported")), "unknown_type", id="unknown_type"),
        pytest.param(
            raw(envelope(data={"order_id": "o-1", "amount": "129.001", "currency": "CNY"})),
            "invalid_payload",
            id="amount_with_three_decimals",
        ),
        pytest.param(
            raw(envelope(data={"order_id": "o-1", "amount": "-1.00", "currency": "CNY"})),
            "invalid_payload",
            id="negative_amount",
        ),
        pytest.param(raw(envelope(data={"order_id": "o-1", "currency": "CNY"})), "invalid_payload", id="no_amount"),
        pytest.param(
            raw(envelope(data={"order_id": "o-1", "amount": "129.00", "currency": "USD"})),
            "wrong_currency",
            id="wrong_currency",
        ),
        pytest.param(raw(envelope("review.posted", review(6))), "invalid_payload", id="rating_6"),
        pytest.param(raw(envelope("review.posted", review(0))), "invalid_payload", id="rating_0"),
        pytest.param(
            raw(envelope("member.joined", {"channel": "app", "birthday": "02-30"})),
            "invalid_payload",
            id="birthday_02_30",
        ),
        pytest.param(
            raw(envelope("member.joined", {"channel": "app", "birthday": "2023-02-29"})),
            "invalid_payload",
            id="birthday_02_29_in_a_common_year",
        ),
        pytest.param(
            raw(envelope("member.joined", {"channel": "app", "timezone": "Mars/Olympus_Mons"})),
            "invalid_payload",
            id="unknown_timezone",
        ),
        pytest.param(raw(envelope("member.profile_updated", {})), "invalid_payload", id="empty_profile_update"),
        pytest.param(
            raw(envelope("member.consent_changed", {"marketing_consent": "yes"})),
            "invalid_payload",
            id="consent_not_a_boolean",
        ),
    ],
)
def test_rejects_with_a_stable_reason(value: bytes, reason: str) -> None:
    rejection = reject(value)
    assert rejection.reason == reason
    assert rejection.error.startswith(f"{reason}: ")


def test_missing_specversion_names_the_field() -> None:
    assert reject(raw(without(envelope(), "specversion"))).detail.startswith("specversion")


def test_amount_with_three_decimals_names_the_payload_field() -> None:
    rejection = reject(raw(envelope(data={"order_id": "o-1", "amount": "129.001", "currency": "CNY"})))
    assert rejection.detail.startswith("data.amount")


def test_unknown_type_names_the_field_not_the_value() -> None:
    detail = reject(raw(envelope("order.teleported"))).detail
    assert detail.startswith("type:")
    assert "teleported" not in detail


def test_no_value_is_invalid_json() -> None:
    result = decode(None, PLAYBOOK, MAX_BYTES)
    assert isinstance(result, Rejection)
    assert result.reason == "invalid_json"


def test_record_over_the_size_limit_is_too_large_and_one_at_the_limit_is_accepted() -> None:
    value = raw(envelope())
    assert reject(value, max_bytes=len(value) - 1).reason == "too_large"
    assert isinstance(decode(value, PLAYBOOK, len(value)), Event)


def test_too_large_is_checked_before_parsing() -> None:
    assert reject(b"x" * 11, max_bytes=10).reason == "too_large"


def test_float_like_amount_is_accepted_as_exact_decimal() -> None:
    value = raw(envelope(data={"order_id": "o-1", "amount": 129.5, "currency": "CNY"}))
    assert b'"amount": 129.5,' in value
    data = payload_of(value, OrderPaid)
    assert data.amount == Decimal("129.5")
    assert isinstance(data.amount, Decimal)


def test_currency_is_checked_against_the_shops_own_currency() -> None:
    usd = {"order_id": "o-1", "amount": "9.99", "currency": "USD"}
    assert payload_of(raw(envelope(data=usd, shopid="shop-usd")), OrderPaid).currency == "USD"
    assert reject(raw(envelope(shopid="shop-usd"))).reason == "wrong_currency"


@pytest.mark.parametrize("birthday", ["02-29", "2024-02-29", "12-31"])
def test_valid_birthdays_are_accepted(birthday: str) -> None:
    data = payload_of(raw(envelope("member.joined", {"channel": "app", "birthday": birthday})), MemberJoined)
    assert data.birthday == birthday


def test_known_timezone_and_rating_5_are_accepted() -> None:
    joined = payload_of(
        raw(envelope("member.joined", {"channel": "app", "timezone": "America/New_York"})), MemberJoined
    )
    assert joined.timezone == "America/New_York"
    assert payload_of(raw(envelope("review.posted", review(5))), ReviewEvent).rating == 5


def test_time_in_utc_is_kept_as_the_same_instant() -> None:
    event = accept(raw(envelope(time="2024-05-01T02:00:00Z")))
    assert event.time == datetime(2024, 5, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_unknown_payload_fields_are_ignored() -> None:
    data = {"order_id": "o-1", "amount": "1.00", "currency": "CNY", "warehouse": "north"}
    assert accept(raw(envelope(data=data))).data == OrderPaid("o-1", Decimal("1.00"), "CNY")


def test_text_with_nul_characters_is_rejected_before_it_reaches_the_database() -> None:
    record = raw(envelope(data={"order_id": "o-\u0000", "amount": "1.00", "currency": "CNY"}))
    assert b"\\u0000" in record
    rejection = decode(record, PLAYBOOK, 65536)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == "invalid_envelope"


NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+08:00",  # the UTC equivalent lies before year 1
        "9999-12-31T23:00:00-05:00",  # the UTC equivalent lies after year 9999
        "1999-12-31T23:59:59Z",
        "2000-01-01T07:59:59+08:00",  # 1999-12-31T23:59:59Z
        "2026-11-28T12:00:01Z",  # a second more than a day after the clock
    ],
)
def test_a_time_outside_the_window_is_time_out_of_range(moment: str) -> None:
    result = decode(raw(envelope(time=moment)), PLAYBOOK, MAX_BYTES, now=NOW)
    assert isinstance(result, Rejection)
    assert result.reason == "time_out_of_range"
    assert (
        result.detail
        == "time: must lie between 2000-01-01T00:00:00+00:00 and 1 day after the receiving service's clock"
    )


@pytest.mark.parametrize("moment", ["2000-01-01T00:00:00Z", "2000-01-01T08:00:00+08:00", "2026-11-28T12:00:00Z"])
def test_a_time_on_the_windows_edges_is_accepted(moment: str) -> None:
    assert isinstance(decode(raw(envelope(time=moment)), PLAYBOOK, MAX_BYTES, now=NOW), Event)


def test_a_shop_can_set_its_own_window() -> None:
    playbook = parse_playbook({"shops": {"shop-1": {"business_time": {"earliest": "2020-01-01T00:00:00Z"}}}})
    result = decode(raw(envelope(time="2019-06-01T00:00:00Z")), playbook, MAX_BYTES, now=NOW)
    assert isinstance(result, Rejection)
    assert result.reason == "time_out_of_range"


SECRET = "buyer.name@example.com"


@pytest.mark.parametrize(
    "record",
    [
        envelope("member.joined", data={"channel": "online", "timezone": SECRET}),
        envelope("member.joined", data={"channel": "online", "birthday": SECRET}),
        envelope("member.joined", data={"channel": SECRET * 20}),
        envelope("member.joined", data={"channel": "online", "marketing_consent": SECRET}),
        envelope("order." + SECRET),
        envelope(time=SECRET),
        envelope(specversion=SECRET),
        envelope(data={"order_id": "o-1", "amount": SECRET, "currency": "CNY"}),
        envelope(data={"order_id": "o-1", "amount": "1.00", "currency": SECRET}),
        envelope("review.posted", data={**review(5), "rating": SECRET}),
        envelope("member.profile_updated", data={"gender": SECRET}),
        envelope("member.profile_updated", data={"province": SECRET * 3}),
        envelope("member.joined", data={"channel": "online", "store_id": SECRET * 6}),
        envelope("member.tags_changed", data={"add": [SECRET]}),
        envelope("member.tags_changed", data={"add": ["external.buyer"], "remove": ["external.buyer"]}),
        envelope(data={"order_id": "o-1", "amount": "1.00", "currency": "CNY", "items": [line(category=SECRET * 3)]}),
    ],
)
def test_a_rejection_names_the_field_and_rule_never_the_value(record: dict[str, Any]) -> None:
    rejection = reject(raw(record))
    assert SECRET not in rejection.error
    assert "buyer" not in rejection.error


# --- input additions for audiences: profile attributes, item categories, external tags ---------------

ATTRIBUTES: dict[str, Any] = {
    "gender": "female",
    "birth_year": 1990,
    "province": "Zhejiang",
    "city": "Hangzhou",
    "store_id": "store-hz-01",
}
NEW_YEARS_EVE_IN_NEW_YORK = "2024-12-31T23:30:00-05:00"  # already 2025 in UTC
NEW_YEARS_DAY_IN_SHANGHAI = "2025-01-01T00:30:00+08:00"  # still 2024 in UTC


def paid_with(items: Any) -> dict[str, Any]:
    return envelope(data={"order_id": "o-1", "amount": "129.00", "currency": "CNY", "items": items})


def profile(at: str | None = None, **data: Any) -> dict[str, Any]:
    return envelope("member.profile_updated", data, **({"at": at} if at else {}))


def tags(**data: Any) -> dict[str, Any]:
    return envelope("member.tags_changed", data)


def external(count: int) -> list[str]:
    return [f"external.tag_{number}" for number in range(count)]


ITEM = OrderItem("TEA-001", 1, Decimal("129.00"))
ACCEPTED_ADDITIONS = [
    pytest.param(
        envelope("member.joined", {"channel": "app", **ATTRIBUTES}), MemberJoined("app", **ATTRIBUTES), id="joined"
    ),
    pytest.param(profile(**ATTRIBUTES), ProfileUpdated(**ATTRIBUTES), id="profile_all"),
    *(
        pytest.param(profile(gender=g), ProfileUpdated(gender=g), id=f"gender_{g}")
        for g in ("male", "other", "unknown")
    ),
    pytest.param(profile(birth_year=1900), ProfileUpdated(birth_year=1900), id="birth_year_1900"),
    pytest.param(profile(birth_year=2024), ProfileUpdated(birth_year=2024), id="birth_year_of_the_event"),
    pytest.param(
        profile(NEW_YEARS_EVE_IN_NEW_YORK, birth_year=2024),
        ProfileUpdated(birth_year=2024),
        id="birth_year_of_the_events_own_offset",
    ),
    pytest.param(
        profile(NEW_YEARS_DAY_IN_SHANGHAI, birth_year=2025),
        ProfileUpdated(birth_year=2025),
        id="birth_year_of_the_local_new_year",
    ),
    pytest.param(profile(province="浙" * 64), ProfileUpdated(province="浙" * 64), id="province_64"),
    pytest.param(profile(city="杭州"), ProfileUpdated(city="杭州"), id="city"),
    pytest.param(profile(store_id="s" * 128), ProfileUpdated(store_id="s" * 128), id="store_id_128"),
    pytest.param(
        paid_with([line(category="Tea & Cups"), line()]),
        OrderPaid(
            "o-1", Decimal("129.00"), "CNY", items=(OrderItem("TEA-001", 1, Decimal("129.00"), "Tea & Cups"), ITEM)
        ),
        id="paid_items",
    ),
    pytest.param(paid_with([]), OrderPaid("o-1", Decimal("129.00"), "CNY", items=()), id="paid_no_items"),
    pytest.param(
        paid_with([line(category="c" * 64)]),
        OrderPaid("o-1", Decimal("129.00"), "CNY", items=(OrderItem("TEA-001", 1, Decimal("129.00"), "c" * 64),)),
        id="category_64",
    ),
    pytest.param(
        envelope(
            "order.created", {"order_id": "o-1", "amount": "129.00", "currency": "CNY", "items": [line(category="Tea")]}
        ),
        OrderCreated("o-1", Decimal("129.00"), "CNY", (OrderItem("TEA-001", 1, Decimal("129.00"), "Tea"),)),
        id="created_item_category",
    ),
    pytest.param(tags(add=["external.vip_club"]), TagsChanged(add=("external.vip_club",)), id="tags_add"),
    pytest.param(tags(remove=["external.vip_club"]), TagsChanged(remove=("external.vip_club",)), id="tags_remove"),
    pytest.param(
        tags(add=[], remove=["external.0_9"], note="ignored"),
        TagsChanged(remove=("external.0_9",)),
        id="tags_one_empty",
    ),
    pytest.param(tags(add=external(100)), TagsChanged(add=tuple(external(100))), id="tags_100"),
    pytest.param(
        tags(add=["external.a", "external.a"]), TagsChanged(add=("external.a", "external.a")), id="tags_twice"
    ),
    pytest.param(tags(add=["external." + "z" * 64]), TagsChanged(add=("external." + "z" * 64,)), id="tag_name_64"),
]

REJECTED_ADDITIONS = [
    pytest.param(profile(gender="Female"), "data.gender: Input should be", id="gender_case"),
    pytest.param(profile(gender=1), "data.gender: Input should be", id="gender_number"),
    pytest.param(profile(gender=None), "data: member.profile_updated needs at least one of", id="profile_only_null"),
    pytest.param(profile(birth_year=1899), "data.birth_year: Input should be greater than", id="birth_year_1899"),
    pytest.param(
        profile(birth_year=2025), "data.birth_year: must not be after the year of the event's time", id="born_later"
    ),
    pytest.param(
        envelope("member.joined", {"channel": "app", "birth_year": 2025}),
        "data.birth_year: must not be after the year of the event's time",
        id="joined_born_later",
    ),
    pytest.param(
        profile(NEW_YEARS_EVE_IN_NEW_YORK, birth_year=2025),
        "data.birth_year: must not be after",
        id="born_in_the_utc_year_only",
    ),
    pytest.param(profile(birth_year=10**30), "data.birth_year: must not be after", id="birth_year_huge"),
    pytest.param(profile(birth_year="1990"), "data.birth_year: Input should be a valid integer", id="birth_year_text"),
    pytest.param(profile(birth_year=1990.0), "data.birth_year: Input should be a valid integer", id="birth_year_float"),
    pytest.param(profile(birth_year=True), "data.birth_year: Input should be a valid integer", id="birth_year_bool"),
    pytest.param(profile(province=""), "data.province: String should have at least 1 character", id="province_empty"),
    pytest.param(profile(province="p" * 65), "data.province: String should have at most 64", id="province_65"),
    pytest.param(profile(city="c" * 65), "data.city: String should have at most 64", id="city_65"),
    pytest.param(profile(store_id="s" * 129), "data.store_id: String should have at most 128", id="store_id_129"),
    pytest.param(profile(store_id=7), "data.store_id: Input should be a valid string", id="store_id_number"),
    pytest.param(paid_with([line(category="")]), "data.items.0.category: String should have at least", id="cat_empty"),
    pytest.param(
        paid_with([line(category="c" * 65)]), "data.items.0.category: String should have at most", id="cat_65"
    ),
    pytest.param(paid_with([line(category=3)]), "data.items.0.category: Input should be a valid string", id="cat_int"),
    pytest.param(paid_with([{"sku": "a"}]), "data.items.0.quantity: Field required", id="paid_item_incomplete"),
    pytest.param(paid_with("Tea"), "data.items: Input should be a valid array", id="paid_items_text"),
    pytest.param(tags(), "data: member.tags_changed needs at least one tag id", id="tags_none"),
    pytest.param(tags(add=[], remove=[]), "data: member.tags_changed needs at least one tag id", id="tags_empty"),
    pytest.param(tags(add=None, remove=None), "data: member.tags_changed needs at least one", id="tags_null"),
    pytest.param(tags(add=["manual.vip"]), "data.add.0: String should match pattern", id="tag_manual"),
    pytest.param(tags(add=["external."]), "data.add.0: String should match pattern", id="tag_no_name"),
    pytest.param(tags(add=["external.VIP"]), "data.add.0: String should match pattern", id="tag_upper"),
    pytest.param(tags(add=["external.a-b"]), "data.add.0: String should match pattern", id="tag_dash"),
    pytest.param(tags(add=["external.a\n"]), "data.add.0: String should match pattern", id="tag_newline"),
    pytest.param(tags(add=["external." + "z" * 65]), "data.add.0: String should match pattern", id="tag_name_65"),
    pytest.param(tags(remove=["external.a", 1]), "data.remove.1: Input should be a valid string", id="tag_number"),
    pytest.param(tags(add=external(101)), "data.add: List should have at most 100 items", id="tags_101"),
    pytest.param(tags(add="external.a"), "data.add: Input should be a valid array", id="tags_not_a_list"),
    pytest.param(
        tags(add=["external.a", "external.b"], remove=["external.b"]),
        "data: a tag id may not be in both add and remove",
        id="tag_added_and_removed",
    ),
]


@pytest.mark.parametrize(("record", "expected"), ACCEPTED_ADDITIONS)
def test_audience_inputs_within_the_limits_are_accepted_as_given(record: dict[str, Any], expected: Payload) -> None:
    assert accept(raw(record)).data == expected


@pytest.mark.parametrize(("record", "detail"), REJECTED_ADDITIONS)
def test_audience_inputs_outside_the_limits_are_invalid_payloads_naming_the_field(
    record: dict[str, Any], detail: str
) -> None:
    rejection = reject(raw(record))
    assert (rejection.reason, rejection.detail[: len(detail)]) == ("invalid_payload", detail)
