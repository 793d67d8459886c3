"""Decoding a raw record: a validated domain event, or a rejection with a stable reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from services.engagement.decode import Rejection, decode
from shared.domain.events import Event, MemberJoined, OrderPaid, Payload, ReviewEvent
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
    ],
)
def test_a_rejection_names_the_field_and_rule_never_the_value(record: dict[str, Any]) -> None:
    rejection = reject(raw(record))
    assert SECRET not in rejection.error
    assert "buyer" not in rejection.error
