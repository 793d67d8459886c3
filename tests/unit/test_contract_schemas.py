"""The published contract: committed JSON Schemas match the models, documented examples are valid.

The examples below are the ones shown in docs/events.md; keep the two in step.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from services.engagement.decode import Rejection, decode
from shared.contract.actions import Action, DeadLetter, NotificationOutcome
from shared.contract.events import EVENT_ADAPTER, EVENT_MODELS
from shared.contract.json_schemas import SCHEMA_DIR, main, render_all, stale_files
from shared.domain.model import Event
from shared.playbook_file import load_playbook
from tests.builders import envelope

PLAYBOOK = load_playbook()
ORDER = "o-20250301-0001"
SHIPMENT = {"order_id": ORDER, "shipment_id": "s-1", "carrier": "SF Express", "tracking_no": "SF1234567890"}
REFUND = {"order_id": ORDER, "refund_id": "r-1", "amount": 70, "currency": "CNY", "reason": "damaged cup"}
ITEMS = [
    {"sku": "TEA-001", "quantity": 2, "unit_price": "99.00", "category": "Tea"},
    {"sku": "CUP-010", "quantity": 1, "unit_price": "70.00", "category": "Tea Ware"},
]


def example(event_id: str, family: str, event_type: str, time: str, data: dict[str, Any]) -> dict[str, Any]:
    return envelope(event_type, data, event_id=event_id, at=time, member="m-1001", source=f"/shop-1/{family}")


# One example per input type, as in docs/events.md (full envelopes there for one type per family).
EXAMPLES: dict[str, dict[str, Any]] = {
    "member.joined": example(
        "evt-0001",
        "members",
        "member.joined",
        "2025-03-01T10:15:00+08:00",
        {"channel": "app", "birthday": "05-20", "timezone": "Asia/Shanghai", "marketing_consent": True},
    ),
    "member.profile_updated": example(
        "evt-0010",
        "members",
        "member.profile_updated",
        "2025-03-04T08:00:00+08:00",
        {
            "birthday": "1990-05-20",
            "gender": "female",
            "birth_year": 1990,
            "province": "Zhejiang",
            "city": "Hangzhou",
            "store_id": "store-hz-01",
        },
    ),
    "member.consent_changed": example(
        "evt-0011", "members", "member.consent_changed", "2025-03-06T21:00:00+08:00", {"marketing_consent": False}
    ),
    "member.tags_changed": example(
        "evt-0021",
        "members",
        "member.tags_changed",
        "2025-03-07T09:00:00+08:00",
        {"add": ["external.vip_club"], "remove": ["external.newsletter_bounced"]},
    ),
    "order.created": example(
        "evt-0002",
        "orders",
        "order.created",
        "2025-03-01T10:20:00+08:00",
        {
            "order_id": ORDER,
            "amount": "268.00",
            "currency": "CNY",
            "items": ITEMS,
            "coupon_codes": ["WELCOME10"],
            "channel": "app",
        },
    ),
    "order.paid": example(
        "evt-0003",
        "orders",
        "order.paid",
        "2025-03-01T10:21:07+08:00",
        {"order_id": ORDER, "amount": "258.00", "currency": "CNY", "items": ITEMS, "coupon_codes": ["WELCOME10"]},
    ),
    "order.cancelled": example(
        "evt-0012", "orders", "order.cancelled", "2025-03-01T11:00:00+08:00", {"order_id": "o-20250301-0002"}
    ),
    "order.completed": example(
        "evt-0013", "orders", "order.completed", "2025-03-10T00:00:00+08:00", {"order_id": ORDER}
    ),
    "shipment.shipped": example("evt-0004", "shipments", "shipment.shipped", "2025-03-02T09:00:00+08:00", SHIPMENT),
    "shipment.in_transit": example(
        "evt-0014", "shipments", "shipment.in_transit", "2025-03-02T18:00:00+08:00", SHIPMENT
    ),
    "shipment.out_for_delivery": example(
        "evt-0015", "shipments", "shipment.out_for_delivery", "2025-03-03T08:30:00+08:00", SHIPMENT
    ),
    "shipment.delivered": example("evt-0005", "shipments", "shipment.delivered", "2025-03-03T15:30:00+08:00", SHIPMENT),
    "shipment.exception": example(
        "evt-0016",
        "shipments",
        "shipment.exception",
        "2025-03-03T12:00:00+08:00",
        {**SHIPMENT, "reason": "recipient not reachable"},
    ),
    "refund.requested": example("evt-0017", "refunds", "refund.requested", "2025-03-04T10:00:00+08:00", REFUND),
    "refund.approved": example("evt-0018", "refunds", "refund.approved", "2025-03-04T16:00:00+08:00", REFUND),
    "refund.rejected": example(
        "evt-0019",
        "refunds",
        "refund.rejected",
        "2025-03-04T16:00:00+08:00",
        {"order_id": ORDER, "refund_id": "r-2", "amount": "20.00", "currency": "CNY", "reason": "outside policy"},
    ),
    "refund.completed": example("evt-0006", "refunds", "refund.completed", "2025-03-05T11:00:00+08:00", REFUND),
    "review.posted": example(
        "evt-0007",
        "reviews",
        "review.posted",
        "2025-03-06T20:00:00+08:00",
        {"order_id": ORDER, "review_id": "rv-1", "rating": 5, "text_length": 120, "photo_count": 2, "video_count": 0},
    ),
    "review.appended": example(
        "evt-0020",
        "reviews",
        "review.appended",
        "2025-03-20T20:00:00+08:00",
        {"order_id": ORDER, "review_id": "rv-1", "rating": 4, "text_length": 40, "photo_count": 0},
    ),
}

ACTION_EXAMPLES: list[dict[str, Any]] = [
    {
        "action_id": "9a3b1f00-593b-550a-9ea5-5f3094c8473a",
        "shop_id": "shop-1",
        "member_id": "m-1001",
        "rule": "payment_confirmation",
        "category": "care",
        "trigger": {"event_id": "evt-0003", "event_type": "order.paid"},
        "occurred_at": "2025-03-01T10:21:07+08:00",
        "created_at": "2025-03-01T02:21:07.412000+00:00",
        "message": {
            "template": "payment_confirmation",
            "variables": {"order_id": ORDER, "amount": "258.00", "currency": "CNY"},
        },
    },
    {
        "action_id": "857d131a-562e-5791-888c-ac1788fe7424",
        "shop_id": "shop-1",
        "member_id": "m-1001",
        "rule": "first_purchase_gift",
        "category": "incentive",
        "trigger": {"event_id": "evt-0003", "event_type": "order.paid"},
        "occurred_at": "2025-03-01T10:21:07+08:00",
        "created_at": "2025-03-01T02:21:07.412000+00:00",
        "message": {"template": "first_purchase_gift", "variables": {"order_id": ORDER}},
        "incentive": {
            "kind": "coupon",
            "value": "10.00",
            "min_spend": "99.00",
            "code": "CCAFEBE7A372F",
            "expires_at": "2025-03-31T10:21:07+08:00",
        },
    },
]

NOTIFICATION_EXAMPLE: dict[str, Any] = {
    "notification_id": "19700c2f-fe5c-516f-b7bb-532560967e62",
    "action_id": "857d131a-562e-5791-888c-ac1788fe7424",
    "shop_id": "shop-1",
    "member_id": "m-1001",
    "channel": "webhook",
    "status": "sent",
    "reason": None,
    "at": "2025-03-01T02:21:07.530000+00:00",
}

DEAD_LETTER_EXAMPLE: dict[str, Any] = {
    "topic": "commerce.orders",
    "partition": 2,
    "offset": 18234,
    "key": "shop-1:m-1001",
    "value": (
        "eyJzcGVjdmVyc2lvbiI6IjEuMCIsImlkIjoiZXZ0LTAwOTkiLCJ0eXBlIjoib3JkZXIucGFpZCIsInRpbWUiOiIyMDI1LTAzLTAxVDEw"
        "OjI1OjAwKzA4OjAwIiwic2hvcGlkIjoic2hvcC0xIiwibWVtYmVyaWQiOiJtLTEwMDEiLCJkYXRhIjp7Im9yZGVyX2lkIjoiby0yMDI1"
        "MDMwMS0wMDAzIiwiYW1vdW50IjoiOTkuMDAiLCJjdXJyZW5jeSI6IkNOWSJ9fQ=="
    ),
    "error": "invalid_envelope: source: Field required",
    "received_at": "2025-03-01T02:25:00.118000+00:00",
}


def test_committed_schemas_are_current() -> None:
    assert stale_files() == [], "run `python -m shared.contract.json_schemas` and commit docs/schemas/"


def test_a_schema_for_every_event_type_and_output() -> None:
    expected = {f"{name}.json" for name in EVENT_MODELS} | {"action.json", "notification.json", "dead-letter.json"}
    assert set(render_all()) == expected
    assert {path.name for path in SCHEMA_DIR.glob("*.json")} == expected


def test_schemas_are_draft_2020_12_and_deterministic() -> None:
    first, second = render_all(), render_all()
    assert first == second
    for text in first.values():
        assert text.endswith("}\n")
        schema = json.loads(text)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n" == text


def test_event_schema_fixes_the_type() -> None:
    schema = json.loads(render_all()["order.paid.json"])
    assert schema["properties"]["type"]["const"] == "order.paid"
    assert set(schema["required"]) == {"specversion", "id", "source", "type", "time", "shopid", "memberid", "data"}


def test_check_mode_reports_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert "order.paid.json" in capsys.readouterr().err
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "action.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "retired.json").write_text("{}\n", encoding="utf-8")
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "action.json" in err
    assert "retired.json" in err


def test_every_event_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(EVENT_MODELS)


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_example_validates_against_its_model(event_type: str) -> None:
    raw = json.dumps(EXAMPLES[event_type]).encode()
    event = EVENT_MODELS[event_type].model_validate_json(raw)
    assert EVENT_ADAPTER.validate_json(raw) == event
    decoded = decode(raw, PLAYBOOK, max_bytes=65536)
    assert isinstance(decoded, Event), decoded
    assert decoded.type == event_type


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e["data"].update(currency="USD"), "wrong_currency"),
        (lambda e: e["data"].update(amount="258.001"), "invalid_payload"),
        (lambda e: e.update(time="2025-03-01T10:21:07"), "invalid_envelope"),
        (lambda e: e.pop("source"), "invalid_envelope"),
        (lambda e: e.update(type="order.refunded"), "unknown_type"),
    ],
)
def test_documented_rejections(change: Any, reason: str) -> None:
    record = json.loads(json.dumps(EXAMPLES["order.paid"]))
    change(record)
    decoded = decode(json.dumps(record).encode(), PLAYBOOK, max_bytes=65536)
    assert isinstance(decoded, Rejection)
    assert decoded.reason == reason
    assert decoded.error.startswith(f"{reason}: ")


def test_documented_non_json_and_oversized_rejections() -> None:
    not_json = decode(b"not json", PLAYBOOK, max_bytes=65536)
    too_large = decode(json.dumps(EXAMPLES["order.paid"]).encode(), PLAYBOOK, max_bytes=10)
    assert isinstance(not_json, Rejection)
    assert not_json.reason == "invalid_json"
    assert isinstance(too_large, Rejection)
    assert too_large.reason == "too_large"


@pytest.mark.parametrize("example", ACTION_EXAMPLES, ids=lambda a: str(a["rule"]))
def test_action_example_matches_the_model(example: dict[str, Any]) -> None:
    action = Action.model_validate(example)
    assert ("incentive" in example) == (action.category == "incentive")


def test_notification_and_dead_letter_examples_match_the_models() -> None:
    NotificationOutcome.model_validate(NOTIFICATION_EXAMPLE)
    dead = DeadLetter.model_validate(DEAD_LETTER_EXAMPLE)
    original = base64.b64decode(dead.value or "")
    assert json.loads(original)["type"] == "order.paid"
    rejection = decode(original, PLAYBOOK, max_bytes=65536)
    assert isinstance(rejection, Rejection)
    assert rejection.error == dead.error
