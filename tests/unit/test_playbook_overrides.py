"""Stored playbook overrides: strict validation naming the bad path, and composition over the file's layers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.domain.playbook import Budget, ShopPlaybook
from shared.playbook_file import InvalidPlaybookError, PlaybookLayers, layers_of, playbook_document, read_layers

FILE = {
    "defaults": {"rules": {"first_purchase_gift": {"incentive": {"value": "15.00"}}}},
    "shops": {
        "shop-hk": {
            "currency": "HKD",
            "timezone": "Asia/Hong_Kong",
            "rules": {"repurchase_gift": {"enabled": False}},
            "tiers": [
                {"code": "member", "name": "Member"},
                {"code": "gold", "name": "Gold", "spend_multiple": "5", "min_orders": 5},
            ],
        }
    },
}


@pytest.fixture(scope="module")
def layers() -> PlaybookLayers:
    return layers_of(FILE)


def _refused(layers: PlaybookLayers, overrides: Any) -> InvalidPlaybookError:
    with pytest.raises(InvalidPlaybookError) as refused:
        layers.compose("shop-1", overrides, 1, strict=True)
    return refused.value


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"rules": {"first_purchase_gift": {"holdout_percnt": 5}}}, "rules.first_purchase_gift.holdout_percnt"),
        ({"curency": "USD"}, "curency"),
        ({"contact": {"quiet_hours": {"start": "22:00", "finish": "06:00"}}}, "contact.quiet_hours.finish"),
        ({"tiers": [{"code": "m", "name": "M"}, {"code": "g", "name": "G", "spend": "3"}]}, "tiers[1].spend"),
        (
            {"rules": {"tier_upgrade_gift": {"per_tier": {"vip": {"valu": "1.00"}}}}},
            "rules.tier_upgrade_gift.per_tier.vip.valu",
        ),
        ({"version": 7}, "version"),
    ],
)
def test_an_unknown_key_is_refused_naming_its_path(layers: PlaybookLayers, overrides: Any, path: str) -> None:
    error = _refused(layers, overrides)
    assert error.problems == [(path, "unknown key")]
    assert str(error) == f"{path}: unknown key"


def test_a_rule_the_file_does_not_list_is_refused(layers: PlaybookLayers) -> None:
    error = _refused(layers, {"rules": {"first_purchse_gift": {"enabled": False}}})
    assert error.path == "rules.first_purchse_gift"
    assert "unknown rule" in str(error)


@pytest.mark.parametrize(
    ("overrides", "path", "problem"),
    [
        ({"contact": {"frequency_cap": "many"}}, "contact.frequency_cap", "valid integer"),
        ({"currency": None}, "currency", "valid string"),
        ({"rules": {"first_purchase_gift": None}}, "rules.first_purchase_gift", "dictionary"),
        ({"rules": {"first_purchase_gift": {"holdout_percent": 51}}}, "rules.first_purchase_gift.holdout_percent",
         "must be 0 to 50"),
        ({"rules": {"first_purchase_gift": {"holdout_percent": -1}}}, "rules.first_purchase_gift.holdout_percent",
         "must be 0 to 50"),
        ({"rules": {"first_purchase_gift": {"budget": {"amount": "0"}}}}, "rules.first_purchase_gift.budget.amount",
         "must be more than 0"),
        ({"rules": {"first_purchase_gift": {"budget": {"amount": "50.00", "period": "P2M"}}}},
         "rules.first_purchase_gift.budget.period", "must be one of P1D, P1W, P1M"),
        ({"rules": {"first_purchase_gift": {"budget": {"period": "P1M"}}}}, "rules.first_purchase_gift.budget.amount",
         "Field required"),
        ({"rules": {"unpaid_reminder": {"delay": "half an hour"}}}, "rules.unpaid_reminder.delay", "valid timedelta"),
        ({"rules": {"first_purchase_gift": {"attribution_window": "PT0S"}}},
         "rules.first_purchase_gift.attribution_window", "must be more than 0"),
        ({"schedule": {"max_lateness": "P7X"}}, "schedule.max_lateness", "valid timedelta"),
        ({"reference_order_value": "NaN"}, "reference_order_value", "finite number"),
        ({"rfm": {"segments": [{"name": "x", "r": [1]}]}}, "rfm.segments[0].r[1]", "Field required"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "not an IANA time zone"),
        ({"business_time": {"earliest": "2000-01-01T00:00:00"}}, "business_time.earliest", "UTC offset"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_naming_its_path(
    layers: PlaybookLayers, overrides: Any, path: str, problem: str
) -> None:
    error = _refused(layers, overrides)
    assert error.path == path, error
    assert problem in error.problems[0][1], error
    assert str(error).startswith(f"{path}: ")


def test_every_problem_is_named_and_no_value_is_quoted(layers: PlaybookLayers) -> None:
    error = _refused(
        layers,
        {
            "colour": "secret-value-1",
            "contact": {"frequency_cap": "secret-value-2"},
            "rules": {"first_purchase_gift": {"holdout_percent": 99}},
        },
    )
    assert sorted(path for path, _ in error.problems) == [
        "colour",
        "contact.frequency_cap",
        "rules.first_purchase_gift.holdout_percent",
    ]
    assert "secret-value" not in str(error)


def test_overrides_must_be_an_object(layers: PlaybookLayers) -> None:
    assert "JSON object" in str(_refused(layers, ["rules"]))


def test_a_long_list_of_problems_is_cut_short(layers: PlaybookLayers) -> None:
    error = _refused(layers, {f"key_{index}": 1 for index in range(25)})
    assert len(error.problems) == 25
    assert str(error).endswith("and 15 more")


def test_valid_overrides_compose_at_their_version(layers: PlaybookLayers) -> None:
    overrides = {
        "rules": {"first_purchase_gift": {"holdout_percent": 50, "budget": {"amount": "50.00", "period": "P1M"}}}
    }
    shop = layers.compose("shop-1", overrides, 3, strict=True)
    assert shop.version == 3
    gift = shop.rules["first_purchase_gift"]
    assert (gift.holdout_percent, gift.budget) == (50, Budget(Decimal("50.00"), "P1M"))


# --- composition -----------------------------------------------------------------------------


def test_stored_overrides_lie_over_the_files_shop_entry(layers: PlaybookLayers) -> None:
    shop = layers.compose("shop-hk", {"timezone": "Asia/Macau", "contact": {"frequency_cap": 5}}, 2)
    assert (shop.currency, shop.timezone) == ("HKD", "Asia/Macau")  # the file's entry, then the stored one
    assert shop.rule("repurchase_gift") is None  # the file's entry holds where the overrides say nothing
    assert (shop.contact.frequency_cap, shop.contact.frequency_window_hours) == (5, 24)
    assert shop.rules["first_purchase_gift"].incentive is not None
    assert shop.rules["first_purchase_gift"].incentive.value == Decimal("15.00")  # the file's defaults


def test_mappings_merge_key_by_key(layers: PlaybookLayers) -> None:
    shop = layers.compose("shop-hk", {"rules": {"first_purchase_gift": {"incentive": {"min_spend": "50.00"}}}}, 1)
    gift = shop.rules["first_purchase_gift"]
    assert gift.incentive is not None
    assert (gift.incentive.value, gift.incentive.min_spend, gift.incentive.valid_days) == (
        Decimal("15.00"),
        Decimal("50.00"),
        30,
    )
    assert gift.enabled
    assert shop.rule("payment_confirmation") is not None  # rules not named keep their settings


def test_lists_are_replaced_whole(layers: PlaybookLayers) -> None:
    ladder = [{"code": "basic", "name": "Basic"}]
    shop = layers.compose("shop-hk", {"tiers": ladder, "score": {"bands": [{"name": "all", "min": 0}]}}, 1)
    assert [tier.code for tier in shop.tiers] == ["basic"]  # not the file's member and gold
    assert [band.name for band in shop.score.bands] == ["all"]


def test_null_replaces_the_value_below(layers: PlaybookLayers) -> None:
    shop = layers.compose("shop-hk", {"contact": {"quiet_hours": None}}, 1)
    assert shop.contact.quiet_hours is None


def test_a_shop_the_file_does_not_list_composes_over_the_defaults(layers: PlaybookLayers) -> None:
    shop = layers.compose("shop-new", {"currency": "EUR"}, 1)
    assert shop == _with_version(layers.playbook().default, currency="EUR", version=1)


def test_no_overrides_at_version_0_is_the_file_alone(layers: PlaybookLayers) -> None:
    playbook = layers.playbook()
    assert layers.compose("shop-hk", {}, 0) == playbook.for_shop("shop-hk")
    assert layers.compose("shop-1", {}, 0) == playbook.default


def test_stored_overrides_with_keys_a_later_release_dropped_still_compose(layers: PlaybookLayers) -> None:
    shop = layers.compose("shop-1", {"currency": "USD", "retired_setting": 1, "rules": {"retired_rule": {}}}, 4)
    assert (shop.currency, shop.version) == ("USD", 4)


def test_the_document_is_json_and_valid_as_overrides(layers: PlaybookLayers) -> None:
    shop = layers.compose("shop-hk", {"rules": {"first_purchase_gift": {"budget": {"amount": "50.00"}}}}, 5)
    document = playbook_document(shop)
    assert "version" not in document
    assert document["reference_order_value"] == "100"
    assert document["rules"]["unpaid_reminder"]["delay"] == "PT30M"
    assert document["rules"]["first_purchase_gift"]["incentive"]["value"] == "15.00"
    assert document["rules"]["first_purchase_gift"]["budget"] == {"amount": "50.00", "period": "P1M"}
    assert document["schedule"]["max_lateness"] == "P7D"
    assert layers.compose("shop-hk", document, 6, strict=True) == _with_version(shop, version=6)


def test_the_builtin_playbook_round_trips_as_overrides() -> None:
    layers = read_layers()
    default = layers.playbook().default
    assert layers.compose("any", playbook_document(default), 0, strict=True) == default
    assert default.rules["unpaid_reminder"].delay == timedelta(minutes=30)


def _with_version(shop: ShopPlaybook, **changes: Any) -> ShopPlaybook:
    return replace(shop, **changes)


# --- the live playbook -------------------------------------------------------------------------


def test_install_swaps_the_shops_seen_by_later_calls(layers: PlaybookLayers) -> None:
    playbook = layers.playbook()
    before = playbook.for_shop("shop-1")
    stored = layers.compose("shop-1", {"rules": {"payment_confirmation": {"enabled": False}}}, 1)
    playbook.install({**playbook.shops, "shop-1": stored})
    assert playbook.for_shop("shop-1") is stored
    assert playbook.for_shop("shop-1").rule("payment_confirmation") is None
    assert playbook.for_shop("shop-2") is playbook.default
    assert before.rule("payment_confirmation") is not None  # a decision under way keeps the one it read
    assert playbook.for_shop("shop-hk").currency == "HKD"
