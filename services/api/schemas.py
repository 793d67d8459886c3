"""Response bodies, declared so that the OpenAPI document at /docs describes them.

Money travels as decimal strings with two places ("129.00") so no client rounds it
through a float; datetimes are RFC 3339 with an offset.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from shared.contract.actions import Action, NotificationOutcome

MONEY_PATTERN = r"^-?\d+\.\d{2}$"


def _rfc3339_text(value: object) -> object:
    """Request times are RFC 3339 strings, as documented; numbers are not taken for Unix timestamps."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string with an offset")
    return value


RequestTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]

# RFC 3339 date-time: ``T`` (or ``t``) between date and time, seconds, an optional fraction, ``Z`` or an offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)")


def _rfc3339_parameter(value: object) -> object:
    """Query times are RFC 3339 date-times with an offset; digits alone are not taken for Unix timestamps."""
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError("must be an RFC 3339 date-time with an offset, such as 2026-03-01T00:00:00Z")
    return value


QueryTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_parameter)]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["member_not_found"])
    message: str = Field(examples=["No member 'm-1' in shop 'shop-1'"])


class ErrorResponse(BaseModel):
    """The body of every non-2xx response."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool] = Field(examples=[{"database": True, "kafka": True}])


class Tier(BaseModel):
    code: str = Field(examples=["advanced"])
    name: str = Field(description="From the shop's playbook; the code when the ladder no longer has it.")
    since: datetime | None


class Metrics(BaseModel):
    net_spend: str = Field(pattern=MONEY_PATTERN, examples=["129.00"])
    paid_orders: int
    average_order_value: str | None = Field(
        pattern=MONEY_PATTERN, examples=["64.50"], description="net_spend / paid_orders; null with no paid orders."
    )
    first_order_at: datetime | None
    last_order_at: datetime | None


class NextTierStatus(BaseModel):
    """The next rung: reaching either the spend or the order count is enough."""

    code: str = Field(examples=["vip"])
    spend_needed: str = Field(pattern=MONEY_PATTERN, examples=["50.00"])
    orders_needed: int


class Lifecycle(BaseModel):
    stage: Literal["prospect", "new", "active", "at_risk", "dormant", "churned"] | None
    since: datetime | None
    win_backs: int = Field(description="Paid orders that brought the member back from dormant or churned.")


class Qualifying(BaseModel):
    """The figures tiers qualify on: payments of the rolling window, as of ``as_of``."""

    window_days: int
    net_spend: str = Field(pattern=MONEY_PATTERN)
    paid_orders: int


class PointsStatus(BaseModel):
    balance: int
    expiring_soon: int = Field(description="Points expiring within the reminder lead (14 days) after ``as_of``.")
    next_expiry_at: datetime | None


class ScoreStatus(BaseModel):
    value: int
    band: str | None = Field(examples=["silver"])
    parts: dict[str, int] = Field(examples=[{"purchase": 250, "interaction": 30, "base": 120}])


class RfmStatus(BaseModel):
    """Scores 1..5 against the shop's quintile edges computed by the scheduler at ``as_of``."""

    r: int
    f: int
    m: int
    segment: str = Field(examples=["champions"])
    as_of: datetime


class MemberStatus(BaseModel):
    shop_id: str
    member_id: str
    joined_at: datetime | None
    tier: Tier | None
    metrics: Metrics
    next_tier: NextTierStatus | None = Field(description="Null at the top of the ladder.")
    qualifying: Qualifying
    lifecycle: Lifecycle
    points: PointsStatus
    score: ScoreStatus
    rfm: RfmStatus | None = Field(description="Null until the member has paid and the scheduler computed the edges.")
    tags: list[str] = Field(
        description="The member's tag ids, sorted: built-in, external and unexpired manual tags (docs/tags.md).",
        examples=[["dynamic.ordered_last_30_days", "lifecycle.stage_active", "profile.female"]],
    )
    as_of: datetime | None = Field(description="Business time the state reflects: latest event or scheduler run.")
    updated_at: datetime


class RedeemRequest(BaseModel):
    points: int = Field(gt=0, le=1_000_000_000, strict=True)
    idempotency_key: str = Field(
        min_length=1, max_length=200, strict=True, description="Repeating a key returns the first result."
    )
    at: RequestTime | None = Field(
        default=None,
        description="Business time of the redemption (RFC 3339 with an offset), inside the playbook's "
        "business_time window; now when omitted.",
    )


class LedgerLine(BaseModel):
    entry_id: str = Field(examples=["earn:1001"])
    kind: Literal["earn", "reverse", "review_reward", "gift", "redeem", "expire"]
    points: int = Field(description="Credits positive, debits negative.")
    shortfall: int = Field(description="Points a debit could not take because the balance was short.")
    at: datetime
    expires_at: datetime | None
    booked_at: datetime | None = Field(description="Wall-clock time the line was written.")


class RedeemResponse(BaseModel):
    entry: LedgerLine
    balance: int
    replayed: bool = Field(description="True when this idempotency key had already been redeemed.")


class LedgerPage(BaseModel):
    """Ledger lines, most recently booked first; pass ``next_cursor`` back as ``cursor``."""

    items: list[LedgerLine]
    next_cursor: str | None


class SchedulerRunRequest(BaseModel):
    as_of: RequestTime = Field(
        description="Run every time-based rule due up to this business time (RFC 3339 with an offset), "
        "inside the playbook's business_time window."
    )


class SchedulerRunResponse(BaseModel):
    as_of: datetime
    members: int = Field(description="Members whose due items were handled.")
    actions: int = Field(description="New actions emitted.")
    actions_by_rule: dict[str, int]
    failed_members: int = Field(description="Members whose pass raised an error: left as they were and quarantined.")
    late_skipped: int = Field(description="Messages not sent because their due item was handled too late.")
    decisions: dict[str, int] = Field(
        description="Incentive decisions by outcome (emitted, holdout, budget_exhausted, late_skipped, "
        "and for campaign waves not_converted_filter, member_unknown)."
    )
    coupons_expired: int = Field(description="Wallet coupons expired unredeemed.")
    waves_started: int = Field(description="Campaign waves whose audience this run fixed and started.")
    waves_run: int = Field(description="Campaign waves this run finished (done).")
    waves_cancelled: int = Field(description="Open waves of cancelled campaigns marked cancelled.")
    wave_members: int = Field(description="Members of running campaign waves decided by this run.")
    rfm_shops: int = Field(description="Shops whose RFM edges were recomputed.")
    batches: int


class ActionPage(BaseModel):
    """Actions newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[Action]
    next_cursor: str | None


class NotificationPage(BaseModel):
    """Notification outcomes newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[NotificationOutcome]
    next_cursor: str | None


class QuarantinedMember(BaseModel):
    """A member whose stored state the event path could not process; its events are dead-lettered meanwhile."""

    shop_id: str
    member_id: str
    reason: str = Field(examples=["processing_error"])
    detail: str = Field(description="What failed, without member data.")
    events: int = Field(description="Events dead-lettered while the member was quarantined.")
    quarantined_at: datetime = Field(description="Wall-clock time the member was quarantined.")
    last_event_at: datetime | None = Field(description="Wall-clock time of the latest event dead-lettered meanwhile.")


class QuarantinePage(BaseModel):
    """Quarantined members, oldest quarantine first; pass ``next_cursor`` back as ``cursor``."""

    items: list[QuarantinedMember]
    next_cursor: str | None


# --- segments ---------------------------------------------------------------------------------

_DEFINITION_EXAMPLE = {
    "all": [
        {"field": "tier", "op": ">=", "value": "vip"},
        {"field": "days_since_last_order", "op": "between", "value": [30, 90]},
        {"not": {"tag": "manual.do_not_contact"}},
    ]
}
Definition = Annotated[
    dict[str, Any],
    Field(
        description="The audience definition (docs/api.md, Segments): all, any, not, tag or a field comparison.",
        examples=[_DEFINITION_EXAMPLE],
    ),
]


class SegmentRequest(BaseModel):
    """A segment to save: POST creates it (version 1), PUT saves its next version."""

    name: str = Field(min_length=1, max_length=200, strict=True, examples=["VIPs gone quiet"])
    description: str | None = Field(default=None, max_length=2000, strict=True)
    definition: Definition


class SegmentPreviewRequest(BaseModel):
    definition: Definition


class Segment(BaseModel):
    """A saved segment at one of its versions, its definition as stored."""

    segment_id: str = Field(examples=["seg_5f0c6e2a9b1d4c3e8f7a6b5c"])
    name: str
    description: str | None
    definition: dict[str, Any]
    version: int = Field(description="The version shown.")
    latest_version: int = Field(description="The segment's current version.")
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None = Field(description="Set once the segment is archived (DELETE).")


class SegmentDetail(Segment):
    size: int = Field(description="Members the definition selects now (at the wall clock).")


class SegmentPage(BaseModel):
    """A shop's segments, oldest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[Segment]
    next_cursor: str | None


class SegmentMember(BaseModel):
    member_id: str
    tier: str | None
    stage: str | None = Field(examples=["active"], description="The lifecycle stage.")
    net_spend: str = Field(pattern=MONEY_PATTERN, examples=["129.00"])
    paid_orders: int
    points_balance: int
    score: int
    marketing_consent: bool
    joined_at: datetime | None
    last_order_at: datetime | None
    tags: list[str] = Field(description="Built-in and external tag ids (manual tags are not listed).")


class SegmentMemberPage(BaseModel):
    """The segment's members now, by member_id; pass ``next_cursor`` back as ``cursor``."""

    items: list[SegmentMember]
    next_cursor: str | None


class SegmentPreview(BaseModel):
    size: int = Field(description="Members the definition selects now.")
    sample: list[str] = Field(description="The first member ids (up to 20), by member_id.")


class TagDefinitionItem(BaseModel):
    id: str = Field(examples=["purchase.repeat_buyer"])
    group: str = Field(examples=["purchase"])
    description: str = Field(examples=["paid_orders >= 2"])


class TagCatalogue(BaseModel):
    items: list[TagDefinitionItem]
    next_cursor: None = Field(default=None, description="Always null: the catalogue is not paginated.")


class ShopTagItem(TagDefinitionItem):
    members: int = Field(description="How many of the shop's members carry the tag now.")


class ShopTagList(BaseModel):
    items: list[ShopTagItem]
    next_cursor: None = Field(default=None, description="Always null: the list is not paginated.")


class ManualTagRequest(BaseModel):
    expires_at: RequestTime | None = Field(
        default=None,
        description="When the tag stops counting (RFC 3339 with an offset, in the future); never if omitted.",
    )


class ManualTag(BaseModel):
    shop_id: str
    member_id: str
    tag: str = Field(examples=["manual.vip_event_2026"])
    expires_at: datetime | None
    set_at: datetime = Field(description="Wall-clock time the tag (or its latest expiry) was set.")


# --- incentives -------------------------------------------------------------------------------


class CouponItem(BaseModel):
    code: str = Field(examples=["FPG-7Q2M9K"])
    rule: str = Field(examples=["first_purchase_gift"])
    campaign_id: str | None = Field(description="The campaign that issued it; null for a rule's own coupon.")
    value: str = Field(pattern=MONEY_PATTERN, examples=["10.00"], description="Face value.")
    min_spend: str | None = Field(pattern=MONEY_PATTERN, examples=["99.00"])
    issued_at: datetime
    expires_at: datetime
    status: Literal["issued", "redeemed", "expired"]
    order_id: str | None = Field(description="The order that redeemed it.")
    redeemed_at: datetime | None


class CouponPage(BaseModel):
    """The member's coupons, most recently issued first; pass ``next_cursor`` back as ``cursor``."""

    items: list[CouponItem]
    next_cursor: str | None


class DecisionItem(BaseModel):
    rule: str = Field(examples=["first_purchase_gift"])
    campaign_id: str | None
    outcome: str = Field(
        examples=["emitted"], description="emitted, holdout, budget_exhausted, late_skipped, or another refusal."
    )
    reason: str
    at: datetime = Field(description="Business time of the decision.")
    action_id: str | None = Field(description="The action emitted; null unless the outcome is emitted.")
    playbook_version: int
    value: str = Field(pattern=MONEY_PATTERN, description="What the incentive is worth (points at value_per_point).")
    kind: str | None = Field(examples=["coupon"], description="What the incentive is: coupon, points or sample.")
    order_id: str | None = Field(description="The order that triggered the decision, if one did.")


class DecisionPage(BaseModel):
    """The member's incentive decisions, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[DecisionItem]
    next_cursor: str | None


class ReportGroup(BaseModel):
    members: int = Field(description="Distinct members, each counted once from their first decision.")
    converted: int = Field(description="Of those, members with a paid order within the attribution window.")


class ReportUplift(BaseModel):
    rate_diff: float | None = Field(description="Treated minus holdout conversion rate; null when a group is empty.")
    ci95: tuple[float, float] | None = Field(description="Newcombe's 95 % interval of rate_diff, [low, high].")


class RuleReport(BaseModel):
    """One rule's cohort of decisions (docs/incentives.md, "The incentives report")."""

    rule: str = Field(examples=["first_purchase_gift"])
    issued: int = Field(description="Emitted decisions.")
    issued_value: str = Field(pattern=MONEY_PATTERN)
    redeemed: int = Field(description="Coupons of the emitted decisions that were redeemed.")
    redeemed_value: str = Field(pattern=MONEY_PATTERN)
    redemption_rate: float | None = Field(description="redeemed / coupons issued; null when none was issued.")
    coupons_shared: int = Field(description="Paid orders of other members that named one of the coupons.")
    attributed_orders: int = Field(description="Distinct orders that redeemed one of the coupons.")
    attributed_revenue: str = Field(pattern=MONEY_PATTERN)
    cost: str = Field(pattern=MONEY_PATTERN, description="redeemed_value plus the value of the points given.")
    roi: float | None = Field(description="(attributed_revenue - cost) / cost; null when cost is 0.")
    treated: ReportGroup
    holdout: ReportGroup
    uplift: ReportUplift


class IncentiveReport(BaseModel):
    """Per rule, its decisions with business time in [from, to)."""

    from_: datetime | None = Field(alias="from", description="Null when the report is unbounded below.")
    to: datetime
    items: list[RuleReport]


class ShopPlaybookVersion(BaseModel):
    """A shop's playbook at a version: the effective playbook and the stored overrides behind it."""

    version: int = Field(
        description="The stored version shown, by default the one in force; 0: the playbook file alone "
        "(the shop has no stored version)."
    )
    playbook: dict[str, Any] = Field(
        description="The effective playbook: the file's defaults, the file's `shops.<shop>` entry, then the "
        "stored overrides, in the shape of a `shops.<shop>` entry (durations ISO 8601, money as strings)."
    )
    overrides: dict[str, Any] = Field(description="The stored overrides document of the version; {} for version 0.")
    created_at: datetime | None = Field(description="When the version was stored; null for version 0.")
    created_by: str | None = Field(
        description="Who stored it: `token:` and the first 12 hex digits of the SHA-256 of the bearer token; "
        "null for version 0.",
        examples=["token:3f2a9c0d81be"],
    )


class PlaybookVersionItem(BaseModel):
    version: int
    created_at: datetime
    created_by: str = Field(examples=["token:3f2a9c0d81be"])


class PlaybookVersionPage(BaseModel):
    """A shop's stored playbook versions, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[PlaybookVersionItem]
    next_cursor: str | None


# --- campaigns --------------------------------------------------------------------------------

CampaignStatus = Literal["scheduled", "running", "completed", "cancelled"]


class CampaignIncentive(BaseModel):
    kind: Literal["coupon", "points", "sample"]
    value: str | None = Field(default=None, examples=["10.00"], description="Money as sent, a decimal string.")
    min_spend: str | None = Field(default=None, examples=["50.00"])
    valid_for: str | None = Field(default=None, examples=["P30D"], description="ISO 8601 duration.")
    points: int | None = None


class CampaignStrategy(BaseModel):
    code: str = Field(examples=["ten_off"])
    weight: str = Field(description="The strategy's share of the treated members, relative to the other weights.")
    template: str = Field(examples=["winback_coupon"])
    variables: dict[str, Any]
    incentive: CampaignIncentive | None


class CampaignWave(BaseModel):
    wave: int = Field(description="The wave's number, from 1.")
    at: datetime = Field(description="When the wave is due (business time).")
    audience: Literal["all", "not_converted"]
    status: Literal["pending", "running", "done", "cancelled"]
    members: int = Field(description="Distinct members who got an action in the wave.")
    ran_at: datetime | None = Field(description="Wall clock when the wave finished; null until it has run.")


class Campaign(BaseModel):
    """A campaign: its plan as created (a segment's definition copied in), its waves and status."""

    campaign_id: str = Field(examples=["6f1c2a4e-8b9d-4c3e-a1f0-5b6c7d8e9f00"])
    name: str
    status: CampaignStatus
    segment_id: str | None = Field(description="The segment the definition was copied from, if any.")
    segment_version: int | None = Field(description="The segment's version copied in.")
    definition: dict[str, Any] = Field(description="The audience definition the waves select from.")
    strategies: list[CampaignStrategy]
    holdout_percent: int
    attribution_window: str = Field(examples=["P14D"])
    budget: str | None = Field(examples=["500.00"])
    waves: list[CampaignWave]
    created_at: datetime
    created_by: str = Field(examples=["token:3f2a9c0d81be"])
    cancelled_at: datetime | None


class CampaignPage(BaseModel):
    """A shop's campaigns, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[Campaign]
    next_cursor: str | None


class ForecastInterval(BaseModel):
    value: float = Field(description="The expected number of members converting (an expectation, not a count).")
    low: float = Field(description="Low bound of the 95 % interval.")
    high: float = Field(description="High bound of the 95 % interval.")


class ForecastRate(BaseModel):
    value: float = Field(description="Predicted response rate for the plan's mix of strategies, to 4 decimals.")
    low: float
    high: float


class ForecastHistory(BaseModel):
    decisions: int = Field(description="Past emitted decisions of the plan's incentive kinds, members now here.")
    conversions: int = Field(description="Of them, followed by a paid order within the attribution window.")


class ForecastPrior(BaseModel):
    rate: float = Field(description="The response rate assumed without history.")
    strength: float = Field(description="Pseudo-decisions the prior weighs against the shop's own history.")


class ForecastStage(BaseModel):
    stage: str | None = Field(description="The lifecycle stage; null for members without one.")
    audience: int
    reachable: int
    history: ForecastHistory
    rate: ForecastRate
    expected_conversions: float
    members_within_budget: int | None = Field(description="Members of the stage the budget covers; null without one.")


class CampaignForecast(BaseModel):
    """What a plan may yield if run now (docs/campaigns.md, "The forecast")."""

    audience: int = Field(description="Members the definition selects now.")
    reachable: int = Field(description="Of them, with marketing consent and under the frequency cap now.")
    expected_conversions: ForecastInterval
    expected_revenue: str = Field(pattern=MONEY_PATTERN)
    expected_cost: str = Field(pattern=MONEY_PATTERN, description="Redeemed coupons, points and samples given.")
    members_within_budget: int | None = Field(
        description="Reachable members the budget covers, best predicted response first; null without a budget."
    )
    revenue_per_conversion: str = Field(pattern=MONEY_PATTERN)
    prior: ForecastPrior
    stages: list[ForecastStage]


class StrategyReport(BaseModel):
    """One strategy of a campaign (docs/campaigns.md, "The report")."""

    code: str
    members: int = Field(description="Distinct members the strategy reached.")
    sent: int = Field(description="Its actions the notifier sent on at least one channel.")
    suppressed: int = Field(description="Its actions suppressed (consent, frequency cap) and sent on no channel.")
    converted: int = Field(description="Members with a paid order within the window after their first wave.")
    conversion_rate: float | None
    revenue: str = Field(pattern=MONEY_PATTERN, description="The paid amounts of those orders.")
    revenue_per_member: str | None = Field(pattern=MONEY_PATTERN)
    coupons_redeemed: int
    cost: str = Field(pattern=MONEY_PATTERN, description="Redeemed coupons' face value plus the points given.")
    roi: float | None = Field(description="(revenue - cost) / cost; null when cost is 0.")
    uplift: ReportUplift


class HoldoutReport(BaseModel):
    members: int = Field(description="Distinct members held out.")
    converted: int
    conversion_rate: float | None
    revenue_per_member: str | None = Field(pattern=MONEY_PATTERN)


class WaveReport(BaseModel):
    wave: int
    at: datetime
    members: int = Field(description="Distinct members who got an action in the wave.")


class CampaignReport(BaseModel):
    """Per strategy, the holdout and per wave."""

    strategies: list[StrategyReport]
    holdout: HoldoutReport
    waves: list[WaveReport]
