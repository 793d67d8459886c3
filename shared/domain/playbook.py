"""A shop's playbook: currency, time zone, tier ladder, rule switches and contact policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class TierDefinition:
    """A rung of the ladder: reached at ``spend_multiple`` x R net spend or ``min_orders`` orders."""

    code: str
    name: str
    spend_multiple: Decimal = Decimal(0)
    min_orders: int = 0


@dataclass(frozen=True, slots=True)
class IncentiveSpec:
    """What a rule gives: a ``coupon`` (value off above min_spend), ``points`` or a ``sample``."""

    kind: str = "coupon"
    value: Decimal | None = None
    min_spend: Decimal | None = None
    points: int | None = None
    valid_days: int = 30


@dataclass(frozen=True, slots=True)
class RuleConfig:
    enabled: bool = True
    incentive: IncentiveSpec | None = None
    per_tier: dict[str, IncentiveSpec] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local wall-clock window in which incentive messages wait; may span midnight."""

    start: time = time(22, 0)
    end: time = time(8, 0)


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    frequency_cap: int = 3
    frequency_window_hours: int = 24
    quiet_hours: QuietHours | None = field(default_factory=QuietHours)


@dataclass(frozen=True, slots=True)
class ShopPlaybook:
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    reference_order_value: Decimal = Decimal("100")
    tiers: tuple[TierDefinition, ...] = ()
    rules: dict[str, RuleConfig] = field(default_factory=dict)
    contact: ContactPolicy = field(default_factory=ContactPolicy)

    def rule(self, name: str) -> RuleConfig | None:
        """The rule's settings when it is switched on for this shop, else None."""
        config = self.rules.get(name)
        return config if config is not None and config.enabled else None

    def tier(self, code: str) -> TierDefinition | None:
        return next((tier for tier in self.tiers if tier.code == code), None)

    def tier_rank(self, code: str | None) -> int:
        """Position on the ladder; -1 for no tier or a code the ladder no longer has."""
        for rank, tier in enumerate(self.tiers):
            if tier.code == code:
                return rank
        return -1

    def spend_threshold(self, tier: TierDefinition) -> Decimal:
        return (tier.spend_multiple * self.reference_order_value).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Playbook:
    """Every shop's settings; a shop not listed gets ``default``."""

    default: ShopPlaybook
    shops: dict[str, ShopPlaybook] = field(default_factory=dict)

    def for_shop(self, shop_id: str) -> ShopPlaybook:
        return self.shops.get(shop_id, self.default)
