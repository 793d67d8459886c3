"""A shop's playbook: currency, time zone, tier ladder, rule switches and contact policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal

from shared.domain.business_time import BusinessTimeBounds
from shared.domain.money import round_money


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
class Budget:
    """Money an incentive rule may give per calendar ``period`` of business time (P1D, P1W from Monday, P1M)."""

    amount: Decimal
    period: str = "P1M"

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValueError("budget.amount must be more than 0")
        if self.period not in BUDGET_PERIODS:
            raise ValueError(f"budget.period must be one of {', '.join(BUDGET_PERIODS)}")


BUDGET_PERIODS = ("P1D", "P1W", "P1M")
MAX_HOLDOUT_PERCENT = 50
DEFAULT_ATTRIBUTION_WINDOW = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """A rule's switch and parameters; each rule reads only the fields it needs."""

    enabled: bool = True
    incentive: IncentiveSpec | None = None
    holdout_percent: int = 0  # incentive rules: members held out for comparison, 0 to 50
    budget: Budget | None = None  # incentive rules: value issued per calendar period
    attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW  # the incentives report's conversion window
    per_tier: dict[str, IncentiveSpec] = field(default_factory=dict)
    delay: timedelta | None = None  # scheduled rules: how long after their reference time they fall due
    lead: timedelta | None = None  # points_expiry_reminder, coupon_expiry_reminder: how long before the expiry
    send_at: time = time(10, 0)  # calendar gifts: local time of day they fall due
    min_photos: int = 1  # review_reward
    min_text_length: int = 30  # review_reward

    def __post_init__(self) -> None:
        if not 0 <= self.holdout_percent <= MAX_HOLDOUT_PERCENT:
            raise ValueError(f"holdout_percent must be 0 to {MAX_HOLDOUT_PERCENT}")
        if self.attribution_window <= timedelta(0):
            raise ValueError("attribution_window must be more than 0")


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """Stage thresholds in days since the first (``new``) or the last (the others) paid order."""

    new_days: int = 30
    active_days: int = 90
    at_risk_days: int = 180
    dormant_days: int = 365


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """Tiers qualify on a rolling window of figures and are kept for a retention period."""

    qualifying_window_days: int = 365
    retention_days: int = 365


@dataclass(frozen=True, slots=True)
class PointsPolicy:
    per_currency_unit: Decimal = Decimal(1)  # points per 1.00 paid, rounded down
    expire_after_months: int = 12
    value_per_point: Decimal = Decimal("0.01")  # what a point given costs the shop, for budgets and reports


@dataclass(frozen=True, slots=True)
class ScoreBand:
    name: str
    min: int


@dataclass(frozen=True, slots=True)
class ScorePolicy:
    """The engagement score: purchase + interaction + base parts over a rolling window."""

    window_days: int = 365
    per_reference_order: int = 100  # purchase: points per R of net spend in the window
    spend_cap: int = 1500
    per_order: int = 50  # purchase: points per paid order in the window
    orders_cap: int = 500
    per_review: int = 10  # interaction
    per_photo_review: int = 20
    per_appended_review: int = 10
    interaction_cap: int = 500
    base: int = 100  # base: every member starts here
    per_membership_month: int = 10
    membership_cap: int = 240
    per_tier_rank: int = 50
    refund_rate_threshold: Decimal = Decimal("0.2")
    refund_penalty: int = 300  # taken off the base part above the threshold
    bands: tuple[ScoreBand, ...] = (
        ScoreBand("basic", 0),
        ScoreBand("silver", 300),
        ScoreBand("gold", 1000),
        ScoreBand("diamond", 2500),
    )


@dataclass(frozen=True, slots=True)
class RfmSegment:
    """A segment matches when each score lies in its inclusive [low, high] range."""

    name: str
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    """A due item handled later than ``max_lateness`` (after an outage, a migration or a single
    catch-up run over old history) still updates state, but its message is not sent; None sends all.
    """

    max_lateness: timedelta | None = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RfmPolicy:
    recompute_every_hours: int = 24
    segments: tuple[RfmSegment, ...] = ()


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
    version: int = 0  # the stored version in force (0: the playbook file alone)
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    reference_order_value: Decimal = Decimal("100")
    tiers: tuple[TierDefinition, ...] = ()
    rules: dict[str, RuleConfig] = field(default_factory=dict)
    contact: ContactPolicy = field(default_factory=ContactPolicy)
    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)
    tier_policy: TierPolicy = field(default_factory=TierPolicy)
    points: PointsPolicy = field(default_factory=PointsPolicy)
    score: ScorePolicy = field(default_factory=ScorePolicy)
    rfm: RfmPolicy = field(default_factory=RfmPolicy)
    schedule: SchedulePolicy = field(default_factory=SchedulePolicy)
    business_time: BusinessTimeBounds = field(default_factory=BusinessTimeBounds)

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
        return round_money(tier.spend_multiple * self.reference_order_value)


@dataclass(slots=True)
class Playbook:
    """Every shop's settings; a shop not listed gets ``default``.

    A process holds one and hands it to everything that decides, which asks ``for_shop`` at
    decision time: so a new version of a shop's playbook, installed while the process runs
    (``install``), governs every later decision without a restart. Each ``ShopPlaybook`` is
    frozen; only the mapping of shops is swapped, whole, never edited in place.
    """

    default: ShopPlaybook
    shops: dict[str, ShopPlaybook] = field(default_factory=dict)

    def for_shop(self, shop_id: str) -> ShopPlaybook:
        return self.shops.get(shop_id, self.default)

    def install(self, shops: dict[str, ShopPlaybook]) -> None:
        """Swaps in every shop's playbook at once: a reader sees the old mapping or the new, never a mix."""
        self.shops = shops

    def business_time_windows(self) -> list[BusinessTimeBounds]:
        """The distinct business-time windows, the default's first: a scheduler run moves every shop's members,
        so its time must lie in each of them."""
        windows = [self.default.business_time]
        for shop in self.shops.values():
            if shop.business_time not in windows:
                windows.append(shop.business_time)
        return windows
