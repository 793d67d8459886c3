"""The msgspec fast path and the contract's pydantic models decide every record alike.

The fast path accepts a strict subset of the contract and hands everything else to the
models; these tests hold it to giving, for any record, the event the models give, or
the rejection they word.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.engagement.decode import Rejection, validate, validate_with_models
from shared.contract.event_structs import NotOnTheFastPathError, decode_fast
from shared.domain.events import Event
from tests.builders import envelope
from tests.unit.test_contract_schemas import EXAMPLES
from tests.unit.test_decode import ACCEPTED_ADDITIONS, REJECTED_ADDITIONS
from tests.workload import workload


def outcome(result: Event | Rejection) -> tuple[Any, ...]:
    """What a decision amounts to: the rejection, or every field of the event with the time's exact text."""
    if isinstance(result, Rejection):
        return ("rejected", result.reason, result.detail)
    return (
        "accepted",
        result.source,
        result.id,
        result.time.isoformat(),
        result.shop_id,
        result.member_id,
        result.data,
    )


def assert_same_decision(value: bytes) -> None:
    assert outcome(validate(value)) == outcome(validate_with_models(value))


VALID = [json.dumps(event).encode() for event in workload(40)] + [
    json.dumps(example).encode() for example in EXAMPLES.values()
]


@pytest.mark.parametrize("value", VALID[:400] + VALID[-len(EXAMPLES) :])
def test_valid_records_of_the_common_shape_take_the_fast_path_to_the_same_event(value: bytes) -> None:
    assert outcome(decode_fast(value)) == outcome(validate_with_models(value))


@pytest.mark.parametrize(
    ("amount", "fast"),
    [
        ("129.00", True),
        ("0.5", True),
        (70, True),
        ("999999999999.99", True),
        (129.5, False),  # a JSON number with places: the models read it exactly
        ("129.500", False),  # trailing zeros past two places: accepted, as the models normalise it
        ("0070", False),
        (" 12", False),
        ("1e2", False),
        ("1000000000000", False),  # 13 whole digits: rejected by the models
        ("-1.00", False),
        ("129.001", False),
    ],
)
def test_amounts_outside_the_fast_paths_subset_are_left_to_the_models(amount: object, fast: bool) -> None:
    value = json.dumps(envelope("order.paid", data={"order_id": "o-1", "amount": amount, "currency": "CNY"}))
    assert_same_decision(value.encode())
    if fast:
        decode_fast(value.encode())
    else:
        with pytest.raises(NotOnTheFastPathError):
            decode_fast(value.encode())


@pytest.mark.parametrize(
    "time",
    [
        "2024-05-01T10:00:00+08:00",
        "2024-05-01T10:00:00.123456Z",
        "2024-05-01T10:00:00.1234567Z",  # the models truncate to microseconds
        "2024-05-01T10:00:00.9999995+08:00",
        "2024-05-01 10:00:00+08:00",
        "2024-05-01t10:00:00z",
        "2024-05-01T10:00:00-00:00",
        "2024-05-01T10:00:00+00:60",
        "2024-05-01T10:00:00+23:59",
        "2024-05-01T24:00:00Z",
        "2024-12-31T23:59:60Z",
        "2023-02-29T10:00:00Z",
        "2024-05-01T10:00:00",
        "2024-05-01T10:00Z",
        "20240501T100000Z",
        "2024-05-01",
        "1714528800",
        "٢٠٢٤-05-01T10:00:00Z",
    ],
)
def test_times_decode_to_the_same_instant_and_offset_or_the_same_rejection(time: str) -> None:
    assert_same_decision(json.dumps(envelope(time=time)).encode())


@pytest.mark.parametrize(("record", "expected"), ACCEPTED_ADDITIONS)
def test_valid_audience_inputs_take_the_fast_path_to_the_same_event(record: dict[str, Any], expected: Any) -> None:
    value = json.dumps(record).encode()
    assert outcome(decode_fast(value)) == outcome(validate_with_models(value))
    assert decode_fast(value).data == expected


@pytest.mark.parametrize(("record", "detail"), REJECTED_ADDITIONS)
def test_invalid_audience_inputs_are_left_to_the_models_and_rejected_alike(record: dict[str, Any], detail: str) -> None:
    value = json.dumps(record).encode()
    with pytest.raises(NotOnTheFastPathError):
        decode_fast(value)
    assert_same_decision(value)


@pytest.mark.parametrize("field", ["province", "city", "store_id"])
def test_a_nul_in_a_profile_attribute_is_refused_by_both_paths(field: str) -> None:
    """``decode`` refuses NUL in any text before either path; the models refuse it on their own too."""
    value = json.dumps(envelope("member.profile_updated", {field: "a\u0000b"})).encode()
    rejection = validate(value)
    assert isinstance(rejection, Rejection)
    assert (rejection.reason, rejection.detail.split(":")[0]) == ("invalid_payload", f"data.{field}")
    assert_same_decision(value)


# --- any record ---------------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from("0123456789-:.+TZtz eE aé\t\u00a0\U0001f600"), max_size=32)
_TIMES = st.builds(
    lambda moment, offset, digits: moment.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat() + digits,
    st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2030, 1, 1)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
    st.sampled_from(["", "1", "999"]),
)
_WILD: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(min_value=-1, max_value=10**13, allow_nan=False, places=3).map(str),
    st.decimals(min_value=0, max_value=10**12, allow_nan=False, places=2).map(str),
    _TEXT,
    _TIMES,
    st.text(max_size=210),
    st.sampled_from(["", "CNY", "USD", "cny", "CNY\n", "02-29", "2023-02-29", "Asia/Shanghai", "Mars/Base", "1.0"]),
    st.sampled_from(["female", "Female", "unknown", "Hangzhou", "x" * 64, "x" * 65, "s" * 129, "a\u0000"]),
    st.sampled_from([1899, 1900, 1990, 2024, 2025, 2031, 10**20]),
    st.lists(st.text(max_size=3), max_size=2),
    st.lists(
        st.sampled_from(["external.vip", "external.vip_2", "external.", "external.A", "manual.vip", 7]), max_size=3
    ),
    st.dictionaries(
        st.sampled_from(["sku", "quantity", "unit_price", "category"]), st.integers(0, 3) | st.text(max_size=3)
    ),
    st.lists(
        st.fixed_dictionaries(
            {"sku": st.just("a"), "quantity": st.just(1), "unit_price": st.just("1.00")},
            optional={"category": st.sampled_from(["Tea", "", "c" * 65, None, 3])},
        ),
        max_size=2,
    ),
)
_KEYS = st.sampled_from(
    [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "shopid",
        "memberid",
        "datacontenttype",
        "data",
        "data.order_id",
        "data.amount",
        "data.currency",
        "data.channel",
        "data.birthday",
        "data.timezone",
        "data.marketing_consent",
        "data.rating",
        "data.text_length",
        "data.photo_count",
        "data.video_count",
        "data.items",
        "data.coupon_codes",
        "data.gender",
        "data.birth_year",
        "data.province",
        "data.city",
        "data.store_id",
        "data.add",
        "data.remove",
        "data.shipment_id",
        "data.refund_id",
        "data.review_id",
        "data.extra",
    ]
)
_TYPES = st.sampled_from([*EXAMPLES, "order.teleported", "shipment", ""])


@st.composite
def records(draw: st.DrawFn) -> bytes:
    """A valid record of some type, then a few fields replaced, removed or retyped, now and then the bytes cut."""
    record: dict[str, Any] = json.loads(json.dumps(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))]))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(_KEYS)
        target, name = (record.get("data"), path[5:]) if path.startswith("data.") else (record, path)
        if not isinstance(target, dict):
            continue
        action = draw(st.sampled_from(["set", "set", "delete", "retype"]))
        if action == "delete":
            target.pop(name, None)
        elif action == "retype" and name == "type":
            target[name] = draw(_TYPES)
        else:
            target[name] = draw(_WILD)
    value = json.dumps(record, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        value = value[: draw(st.integers(min_value=0, max_value=len(value)))]
    return value


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_any_record_gets_the_same_decision_whichever_path_it_takes(value: bytes) -> None:
    assert_same_decision(value)


def test_amounts_keep_their_text() -> None:
    event = decode_fast(json.dumps(envelope(data={"order_id": "o", "amount": "7.50", "currency": "CNY"})).encode())
    assert str(getattr(event.data, "amount", None)) == "7.50"
    assert getattr(event.data, "amount", None) == Decimal("7.5")
