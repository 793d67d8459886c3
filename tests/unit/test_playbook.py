"""The shop playbook: built-in defaults, and a document laid over them key by key."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from shared.domain.playbook import IncentiveSpec, QuietHours, ShopPlaybook
from shared.playbook_file import load_playbook, parse_playbook


@pytest.fixture(scope="module")
def default() -> ShopPlaybook:
    return load_playbook().default


def test_defaults_are_cny_shanghai_and_reference_value_100(default: ShopPlaybook) -> None:
    assert default.currency == "CNY"
    assert default.timezone == "Asia/Shanghai"
    assert default.reference_order_value == Decimal("100")


def test_default_ladder_has_four_tiers_lowest_first(default: ShopPlaybook) -> None:
    ladder = [(t.code, t.spend_multiple, t.min_orders) for t in default.tiers]
    assert ladder == [
        ("member", Decimal("0"), 0),
        ("advanced", Decimal("3"), 3),
        ("vip", Decimal("5"), 5),
        ("supreme", Decimal("10"), 10),
    ]
    assert [default.spend_threshold(t) for t in default.tiers] == [
        Decimal("0.00"),
        Decimal("300.00"),
        Decimal("500.00"),
        Decimal("1000.00"),
    ]


def test_default_rules_are_all_switched_on(default: ShopPlaybook) -> None:
    for name in (
        "payment_confirmation",
        "shipped_notice",
        "delivered_notice",
        "logistics_exception_care",
        "refund_completed_notice",
        "first_purchase_gift",
        "tier_upgrade_gift",
    ):
        assert default.rule(name) is not None, name
    assert default.rule("no_such_rule") is None


def test_default_gifts_and_contact_policy(default: ShopPlaybook) -> None:
    first = default.rules["first_purchase_gift"].incentive
    assert first == IncentiveSpec(kind="coupon", value=Decimal("10.00"), min_spend=Decimal("99.00"), valid_days=30)
    assert sorted(default.rules["tier_upgrade_gift"].per_tier) == ["advanced", "supreme", "vip"]
    assert (default.contact.frequency_cap, default.contact.frequency_window_hours) == (3, 24)
    assert default.contact.quiet_hours == QuietHours(start=time(22, 0), end=time(8, 0))


def test_an_empty_document_gives_the_defaults(default: ShopPlaybook) -> None:
    playbook = parse_playbook({})
    assert playbook.default == default
    assert playbook.shops == {}


def test_unlisted_shop_gets_the_defaults() -> None:
    playbook = parse_playbook({"shops": {"shop-a": {"currency": "USD"}}})
    assert playbook.for_shop("shop-b") is playbook.default


def test_shop_override_merges_key_by_key_over_the_defaults(default: ShopPlaybook) -> None:
    playbook = parse_playbook(
        {
            "shops": {
                "shop-a": {
                    "currency": "USD",
                    "reference_order_value": "150",
                    "rules": {"first_purchase_gift": {"incentive": {"value": "15.00"}}},
                    "contact": {"frequency_cap": 5},
                }
            }
        }
    )
    shop = playbook.for_shop("shop-a")
    assert (shop.currency, shop.timezone, shop.reference_order_value) == ("USD", "Asia/Shanghai", Decimal("150"))
    assert shop.tiers == default.tiers
    assert shop.spend_threshold(shop.tiers[1]) == Decimal("450.00")
    gift = shop.rules["first_purchase_gift"]
    assert gift.enabled
    assert gift.incentive == IncentiveSpec(kind="coupon", value=Decimal("15.00"), min_spend=Decimal("99.00"))
    assert shop.rules["tier_upgrade_gift"] == default.rules["tier_upgrade_gift"]
    assert (shop.contact.frequency_cap, shop.contact.frequency_window_hours) == (5, 24)
    assert shop.contact.quiet_hours == default.contact.quiet_hours
    assert playbook.default == default


def test_disabling_a_rule_keeps_its_other_settings() -> None:
    shop = parse_playbook({"shops": {"s": {"rules": {"first_purchase_gift": {"enabled": False}}}}}).for_shop("s")
    assert shop.rule("first_purchase_gift") is None
    assert shop.rules["first_purchase_gift"].incentive is not None


def test_defaults_section_applies_to_every_shop_and_shops_override_it() -> None:
    playbook = parse_playbook(
        {"defaults": {"timezone": "Europe/Berlin", "currency": "EUR"}, "shops": {"s": {"currency": "CHF"}}}
    )
    assert (playbook.default.timezone, playbook.default.currency) == ("Europe/Berlin", "EUR")
    shop = playbook.for_shop("s")
    assert (shop.timezone, shop.currency) == ("Europe/Berlin", "CHF")


def test_a_shops_tier_list_replaces_the_default_ladder_whole() -> None:
    ladder = [{"code": "basic", "name": "Basic"}, {"code": "gold", "name": "Gold", "spend_multiple": "4"}]
    shop = parse_playbook({"shops": {"s": {"tiers": ladder}}}).for_shop("s")
    assert [t.code for t in shop.tiers] == ["basic", "gold"]
    assert shop.tiers[1].min_orders == 0


def test_quiet_hours_can_be_switched_off() -> None:
    shop = parse_playbook({"shops": {"s": {"contact": {"quiet_hours": None}}}}).for_shop("s")
    assert shop.contact.quiet_hours is None
    assert shop.contact.frequency_cap == 3


def test_a_malformed_value_is_refused() -> None:
    with pytest.raises(ValueError, match="reference_order_value"):
        parse_playbook({"shops": {"s": {"reference_order_value": "a lot"}}})


def test_load_playbook_reads_a_file_laid_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yaml"
    path.write_text("shops:\n  shop-x:\n    timezone: Asia/Tokyo\n", encoding="utf-8")
    shop = load_playbook(path).for_shop("shop-x")
    assert (shop.timezone, shop.currency) == ("Asia/Tokyo", "CNY")


def test_load_playbook_refuses_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_playbook(path)
