"""One money rule for the domain and the API; action payloads built through the contract's model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import orjson
import pytest
from pydantic import ValidationError

from services.api import status
from shared.db.engine import dump_json
from shared.domain import decisions
from shared.domain.model import ActionDecision, Category
from shared.domain.money import money, round_money
from shared.store.action_log import action_row

SHANGHAI = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0.005", "0.01"),
        ("2.675", "2.68"),
        ("2.665", "2.67"),
        ("129", "129.00"),
        ("99.994", "99.99"),
        ("-0.005", "-0.01"),
    ],
)
def test_money_rounds_half_up_to_the_cent(value: str, text: str) -> None:
    assert money(Decimal(value)) == text
    assert round_money(Decimal(value)) == Decimal(text)


def test_the_api_and_the_domain_share_the_rule() -> None:
    # The API's figures are written by its status document (services.api.status).
    assert vars(status)["money"] is decisions.money is money


def decision(**changes: Any) -> ActionDecision:
    values: dict[str, Any] = {
        "action_id": "a-1",
        "shop_id": "shop-1",
        "member_id": "m-1",
        "rule": "first_purchase_gift",
        "category": "incentive",
        "trigger": {"event_id": "evt-1", "event_type": "order.paid"},
        "occurred_at": datetime(2025, 3, 1, 10, 21, 7, tzinfo=SHANGHAI),
        "template": "first_purchase_gift",
        "variables": {"order_id": "o-1"},
        "incentive": {
            "kind": "coupon",
            "value": "10.00",
            "min_spend": "99.00",
            "code": "CCAFEBE7A372F",
            "expires_at": "2025-03-31T10:21:07+08:00",
        },
    }
    values.update(changes)
    return ActionDecision(**values)


def test_an_action_payload_keeps_the_contracts_text_for_times_and_amounts() -> None:
    created = datetime(2025, 3, 1, 2, 21, 7, 412000, tzinfo=UTC)
    row = action_row(decision(), created)
    assert row[:7] == ("a-1", "shop-1", "m-1", "first_purchase_gift", "incentive", decision().occurred_at, created)
    assert orjson.loads(dump_json(row[7])) == {
        "action_id": "a-1",
        "shop_id": "shop-1",
        "member_id": "m-1",
        "rule": "first_purchase_gift",
        "category": "incentive",
        "trigger": {"event_id": "evt-1", "event_type": "order.paid"},
        "occurred_at": "2025-03-01T10:21:07+08:00",
        "created_at": "2025-03-01T02:21:07.412000+00:00",
        "message": {"template": "first_purchase_gift", "variables": {"order_id": "o-1"}},
        "incentive": {
            "kind": "coupon",
            "value": "10.00",
            "min_spend": "99.00",
            "code": "CCAFEBE7A372F",
            "expires_at": "2025-03-31T10:21:07+08:00",
        },
        "playbook_version": 0,
    }


def test_a_points_grant_keeps_its_points_and_a_care_action_has_no_incentive() -> None:
    created = datetime(2025, 3, 1, tzinfo=UTC)
    grant = action_row(decision(incentive={"kind": "points", "points": 20, "expires_at": None}), created)[7]
    assert orjson.loads(dump_json(grant))["incentive"] == {"kind": "points", "points": 20, "expires_at": None}
    scheduled = decision(
        category="care", incentive=None, trigger={"schedule": "s", "due_at": "2025-03-01T10:00:00+08:00"}
    )
    payload = orjson.loads(dump_json(action_row(scheduled, created)[7]))
    assert "incentive" not in payload
    assert payload["trigger"] == {"schedule": "s", "due_at": "2025-03-01T10:00:00+08:00"}


def test_an_action_that_breaks_the_contract_never_reaches_the_outbox() -> None:
    with pytest.raises(ValidationError):
        action_row(decision(category=cast(Category, "bonus")), datetime(2025, 3, 1, tzinfo=UTC))
