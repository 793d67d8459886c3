"""Member tags: the built-in catalogue, what each tag means, and when a tag can change with time alone.

Each built-in tag is defined once, in ``_BUILT_IN`` (id, description, and the test on a
member's facts), in the five groups of the shop-CRM practice: ``profile`` (buyer
attributes), ``purchase``, ``engagement``, ``lifecycle`` and ``dynamic`` (time-dependent).
Families whose members depend on a shop's settings (``lifecycle.tier_<tier>``,
``engagement.score_<band>``) or on its data (``purchase.category_<category>``) are
generated. ``external.`` tags come from other systems' events; ``manual.`` tags are set
through the API and kept apart, with their expiry.

Tags are evaluated at a business time (the member's clock), so a replay gives the same
tags. ``evaluate`` also answers when the next tag may change with time alone (a recency
band ending, a birthday month beginning); the scheduler re-evaluates the member then,
so keeping tags current costs what is due, never a sweep over all members.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from shared.domain import lifecycle
from shared.domain.calendar import local_due, parse_birthday, same_day_in, zone
from shared.domain.decisions import MemberContext
from shared.domain.model import Member, Order, ReviewRecord
from shared.domain.playbook import ShopPlaybook
from shared.domain.regions import REGIONS, city_tier, region_of

GROUPS = ("profile", "purchase", "engagement", "lifecycle", "dynamic")
EXTERNAL, MANUAL = "external", "manual"
CATEGORY_PREFIX = "purchase.category_"
TIER_PREFIX = "lifecycle.tier_"
STAGE_PREFIX = "lifecycle.stage_"
SCORE_PREFIX = "engagement.score_"

_DAY = timedelta(days=1)
_days = lru_cache(maxsize=64)(lambda count: timedelta(days=count))
_YEAR_WINDOW = timedelta(days=365)
_MIDNIGHT = time(0)
_AGE_BANDS = ((None, 17, "under_18"), (18, 24, "18_24"), (25, 29, "25_29"), (30, 34, "30_34"), (35, 39, "35_39"),
              (40, 49, "40_49"), (50, 59, "50_59"), (60, None, "60_plus"))  # fmt: skip
_AGE_BOUNDARIES = (18, 25, 30, 35, 40, 50, 60)
_ORDERED_WITHIN = (7, 30, 90, 180, 365)
_NO_ORDER_FOR = (90, 180, 365)
_JOINED_WITHIN = (7, 30, 90)
_MEMBER_YEARS = (1, 2, 3)
_POINTS_EXPIRING_WITHIN = (7, 30)
_REVIEWED_WITHIN = 90
_SEASONS = {"spring": (3, 4, 5), "summer": (6, 7, 8), "autumn": (9, 10, 11), "winter": (12, 1, 2)}
# Promotion windows of the Chinese shopping calendar: (month, first day, last day).
_PROMOTIONS = {"618": (6, 1, 18), "1111": (11, 1, 11), "1212": (12, 1, 12)}


def _band_text(low: int | None, high: int | None) -> str:
    if low is None:
        return f"under {high + 1 if high is not None else 0}"
    return f"{low} or more" if high is None else f"{low} to {high}"


def _promotion_text(name: str) -> str:
    month, first, last = _PROMOTIONS[name]
    return f"{month:02d}-{first:02d} to {month:02d}-{last:02d}"


def _months_text(months: tuple[int, ...]) -> str:
    return "months " + ", ".join(str(month) for month in months)


@dataclass(frozen=True, slots=True)
class TagDefinition:
    id: str
    description: str

    @property
    def group(self) -> str:
        return self.id.partition(".")[0]


@dataclass(slots=True)
class TagFacts:
    """What the tests of the built-in tags read, worked out once per evaluation.

    One pass over the member's orders gathers the order facts; the calendar facts
    (birthday and join anniversary weeks and months) are cached by date and zone, as
    members share them. Time-dependent parts note when they next change (``changes``).
    """

    member: Member
    playbook: ShopPlaybook
    at: datetime
    tz: ZoneInfo
    today: date  # ``at``'s local date
    reference: Decimal  # the shop's reference order value R
    paid: list[Order]  # counted paid orders, by payment time
    birthday: tuple[int, int] | None = None
    age: int | None = None
    birthday_flags: tuple[bool, bool, bool, bool] = (False, False, False, False)  # this month, next, week, today
    anniversary_flags: tuple[bool, bool] = (False, False)  # this week, this month
    recent_categories: set[str] = field(default_factory=set)  # of orders paid within 365 days
    recent_promotions: set[str] = field(default_factory=set)
    recent_seasons: set[str] = field(default_factory=set)
    orders_seen: set[str] = field(default_factory=set)  # order facts: see ``_ORDER_FACTS``
    reviews_seen: set[str] = field(default_factory=set)  # review facts: see ``_REVIEW_FACTS``
    reviews: int = 0
    last_review_at: datetime | None = None
    completed_refunds: int = 0
    changes: list[datetime] = field(default_factory=list)  # instants after ``at`` when a tag may change

    @property
    def offline(self) -> bool:
        return self.member.store_id is not None or self.member.channel == "offline"

    @property
    def average_order_value(self) -> Decimal | None:
        orders = self.member.paid_orders
        return self.member.net_spend / orders if orders > 0 else None

    def spend_between(self, low: int, high: int | None) -> bool:
        """``low`` R <= net spend < ``high`` R (no upper bound when None); 0 R means any positive spend."""
        spend = self.member.net_spend
        above = spend >= low * self.reference if low > 0 else spend > 0
        return above and (high is None or spend < high * self.reference)

    def within(self, moment: datetime | None, days: int) -> bool:
        """Whether ``moment`` lies in the ``days`` up to ``at``; the instant it leaves is a change."""
        if moment is None or moment > self.at:
            return False
        ends = moment + _days(days)
        if ends > self.at:
            self.changes.append(ends)
            return True
        return False

    def note(self, instant: datetime) -> None:
        if instant > self.at:
            self.changes.append(instant)

    def note_all(self, instants: Iterable[datetime]) -> None:
        at = self.at
        self.changes.extend(instant for instant in instants if instant > at)


# What one pass over the orders and their reviews notes, by name.
_ORDER_FACTS: dict[str, Callable[[Order], bool]] = {
    "full_refund": lambda o: o.paid_amount is not None and 0 < o.paid_amount <= o.refunded_amount,
    "cancelled": lambda o: o.cancelled_at is not None,
    "unpaid_open": lambda o: o.created_at is not None and o.paid_at is None and o.cancelled_at is None,
    "in_transit": lambda o: (
        o.cancelled_at is None
        and any(s.shipped_at is not None and s.delivered_at is None for s in o.shipments.values())
    ),
    "awaiting_completion": lambda o: o.is_paid and o.completed_at is None and o.cancelled_at is None,
    "multi_shipment": lambda o: len(o.shipments) >= 2,
    "review_rewarded": lambda o: o.review_rewarded,
}
_REVIEW_FACTS: dict[str, Callable[[ReviewRecord], bool]] = {
    "photo": lambda r: (r.photos or 0) >= 1,
    "video": lambda r: (r.videos or 0) >= 1,
    "detailed": lambda r: (r.text_length or 0) >= 100,
    "five_star": lambda r: r.rating == 5,
    "critical": lambda r: (r.rating or 5) <= 2,
    "follow_up": lambda r: bool(r.appended),
}


def _paid_share(facts: TagFacts, test: Callable[[datetime], bool]) -> bool:
    """At least two paid orders, and at least half of them paid at local times passing ``test``."""
    times = [order.paid_at.astimezone(facts.tz) for order in facts.paid if order.paid_at is not None]
    return len(times) >= 2 and 2 * sum(1 for moment in times if test(moment)) >= len(times)


def _repurchased_within(facts: TagFacts, days: int) -> bool:
    times = [order.paid_at for order in facts.paid if order.paid_at is not None]
    return any(b - a <= timedelta(days=days) for a, b in pairwise(times))


def _age_between(facts: TagFacts, low: int | None, high: int | None) -> bool:
    age = facts.age
    return age is not None and (low is None or age >= low) and (high is None or age <= high)


def _stage(facts: TagFacts, *names: str) -> bool:
    return facts.member.stage in names


# --- the built-in catalogue: every fixed tag, once ---------------------------------------------

_Test = Callable[[TagFacts], bool]

_BUILT_IN: tuple[tuple[str, str, _Test], ...] = (
    # profile: buyer attributes
    ("profile.female", "gender is female", lambda f: f.member.gender == "female"),
    ("profile.male", "gender is male", lambda f: f.member.gender == "male"),
    ("profile.gender_other", "gender is other", lambda f: f.member.gender == "other"),
    ("profile.gender_unknown", "gender given as unknown, or not given", lambda f: f.member.gender in (None, "unknown")),
    *(
        (
            f"profile.age_{name}",
            f"age (local year minus birth_year) {_band_text(low, high)}",
            lambda f, low=low, high=high: _age_between(f, low, high),
        )
        for low, high, name in _AGE_BANDS
    ),
    ("profile.age_unknown", "no birth_year given", lambda f: f.member.birth_year is None),
    ("profile.birthday_known", "a valid birthday is on file", lambda f: f.birthday is not None),
    ("profile.offline_member", "the member has a store_id or joined on channel offline", lambda f: f.offline),
    ("profile.online_member", "not an offline member", lambda f: not f.offline),
    (
        "profile.store_assigned",
        "the member belongs to an offline store (store_id)",
        lambda f: f.member.store_id is not None,
    ),
    ("profile.marketing_consent", "marketing messages allowed", lambda f: f.member.marketing_consent),
    ("profile.marketing_opt_out", "marketing messages refused", lambda f: not f.member.marketing_consent),
    ("profile.province_known", "a province is on file", lambda f: f.member.province is not None),
    ("profile.city_known", "a city is on file", lambda f: f.member.city is not None),
    *(
        (
            f"profile.region_{region}",
            f"the province lies in {region.replace('_', ' ')}",
            lambda f, region=region: region_of(f.member.province) == region,
        )
        for region in REGIONS
    ),
    ("profile.region_unknown", "no province, or one not recognised", lambda f: region_of(f.member.province) is None),
    (
        "profile.first_tier_city",
        "lives in Beijing, Shanghai, Guangzhou or Shenzhen",
        lambda f: city_tier(f.member.city) == 1,
    ),
    (
        "profile.new_first_tier_city",
        "lives in one of the 15 new first-tier cities",
        lambda f: city_tier(f.member.city) == 2,
    ),
    ("profile.own_timezone", "the member has a time zone of its own on file", lambda f: f.member.timezone is not None),
    (
        "profile.complete",
        "gender, a birth year or birthday, province and city are all on file",
        lambda f: (
            f.member.gender not in (None, "unknown")
            and (f.member.birth_year is not None or f.birthday is not None)
            and f.member.province is not None
            and f.member.city is not None
        ),
    ),
    # purchase attributes
    ("purchase.never_purchased", "no paid order counts (paid_orders = 0)", lambda f: f.member.paid_orders == 0),
    ("purchase.first_time_buyer", "exactly one paid order", lambda f: f.member.paid_orders == 1),
    ("purchase.repeat_buyer", "paid_orders >= 2", lambda f: f.member.paid_orders >= 2),
    ("purchase.frequent_buyer", "paid_orders >= 5", lambda f: f.member.paid_orders >= 5),
    ("purchase.loyal_buyer", "paid_orders >= 10", lambda f: f.member.paid_orders >= 10),
    (
        "purchase.spend_under_1r",
        "0 < net_spend < R (the shop's reference order value)",
        lambda f: f.spend_between(0, 1),
    ),
    ("purchase.spend_1r_to_3r", "R <= net_spend < 3R", lambda f: f.spend_between(1, 3)),
    ("purchase.spend_3r_to_5r", "3R <= net_spend < 5R", lambda f: f.spend_between(3, 5)),
    ("purchase.spend_5r_to_10r", "5R <= net_spend < 10R", lambda f: f.spend_between(5, 10)),
    ("purchase.spend_10r_plus", "net_spend >= 10R", lambda f: f.spend_between(10, None)),
    ("purchase.aov_low", "average order value below R/2", lambda f: _aov(f, None, Decimal("0.5"))),
    (
        "purchase.aov_mid",
        "average order value from R/2 to below 1.5R",
        lambda f: _aov(f, Decimal("0.5"), Decimal("1.5")),
    ),
    ("purchase.aov_high", "average order value 1.5R or more", lambda f: _aov(f, Decimal("1.5"), None)),
    (
        "purchase.big_order",
        "a counted paid order of 3R or more",
        lambda f: any((o.paid_amount or 0) >= 3 * f.reference for o in f.paid),
    ),
    ("purchase.refunder", "at least one completed refund", lambda f: f.completed_refunds >= 1),
    ("purchase.frequent_refunder", "three completed refunds or more", lambda f: f.completed_refunds >= 3),
    (
        "purchase.full_refund",
        "an order refunded in full",
        lambda f: "full_refund" in f.orders_seen,
    ),
    ("purchase.canceller", "an order was cancelled", lambda f: "cancelled" in f.orders_seen),
    (
        "purchase.unpaid_order_open",
        "an order created and neither paid nor cancelled",
        lambda f: "unpaid_open" in f.orders_seen,
    ),
    (
        "purchase.order_in_transit",
        "a shipment shipped and not delivered, on an order not cancelled",
        lambda f: "in_transit" in f.orders_seen,
    ),
    (
        "purchase.awaiting_completion",
        "a paid order neither completed nor cancelled",
        lambda f: "awaiting_completion" in f.orders_seen,
    ),
    (
        "purchase.multi_shipment_order",
        "an order sent in two shipments or more",
        lambda f: "multi_shipment" in f.orders_seen,
    ),
    (
        "purchase.multi_category",
        "items of three categories or more in the last 365 days",
        lambda f: len(f.recent_categories) >= 3,
    ),
    (
        "purchase.repurchase_within_30_days",
        "two paid orders 30 days apart or less",
        lambda f: _repurchased_within(f, 30),
    ),
    (
        "purchase.weekend_shopper",
        "two paid orders or more, at least half paid on a local Saturday or Sunday",
        lambda f: _paid_share(f, lambda moment: moment.weekday() >= 5),
    ),
    (
        "purchase.night_shopper",
        "two paid orders or more, at least half paid between 22:00 and 06:00 local time",
        lambda f: _paid_share(f, lambda moment: moment.hour >= 22 or moment.hour < 6),
    ),
    # engagement: interaction
    ("engagement.reviewer", "at least one review", lambda f: f.reviews >= 1),
    ("engagement.frequent_reviewer", "three reviews or more", lambda f: f.reviews >= 3),
    (
        "engagement.photo_reviewer",
        "a review with photo_count >= 1",
        lambda f: "photo" in f.reviews_seen,
    ),
    (
        "engagement.video_reviewer",
        "a review with video_count >= 1",
        lambda f: "video" in f.reviews_seen,
    ),
    (
        "engagement.detailed_reviewer",
        "a review of 100 characters or more",
        lambda f: "detailed" in f.reviews_seen,
    ),
    ("engagement.five_star_reviewer", "a review rated 5", lambda f: "five_star" in f.reviews_seen),
    ("engagement.critical_reviewer", "a review rated 1 or 2", lambda f: "critical" in f.reviews_seen),
    ("engagement.follow_up_reviewer", "an appended review", lambda f: "follow_up" in f.reviews_seen),
    (
        "engagement.review_rewarded",
        "points were given for a review",
        lambda f: "review_rewarded" in f.orders_seen,
    ),
    ("engagement.points_holder", "a positive points balance", lambda f: f.member.points_balance > 0),
    ("engagement.points_1000_plus", "a points balance of 1,000 or more", lambda f: f.member.points_balance >= 1000),
    ("engagement.points_none", "a points balance of 0", lambda f: f.member.points_balance == 0),
    (
        "engagement.marketing_reachable",
        "marketing allowed and at least one paid order",
        lambda f: f.member.marketing_consent and f.member.paid_orders > 0,
    ),
    ("engagement.won_back", "came back from dormant or churned at least once", lambda f: f.member.win_backs >= 1),
    ("engagement.won_back_twice", "came back from dormant or churned twice or more", lambda f: f.member.win_backs >= 2),
    # lifecycle and value
    *(
        (f"{STAGE_PREFIX}{stage}", f"the lifecycle stage is {stage}", lambda f, stage=stage: f.member.stage == stage)
        for stage in lifecycle.STAGES
    ),
    (
        "lifecycle.tier_base",
        "in the lowest tier of the shop's ladder",
        lambda f: f.playbook.tier_rank(f.member.tier) == 0,
    ),
    (
        "lifecycle.tier_top",
        "in the highest tier of a ladder of two tiers or more",
        lambda f: len(f.playbook.tiers) > 1 and f.playbook.tier_rank(f.member.tier) == len(f.playbook.tiers) - 1,
    ),
    (
        "lifecycle.tier_upgraded",
        "reached a tier above the base at some time",
        lambda f: len(f.member.rewarded_tiers) >= 2,
    ),
    (
        "lifecycle.tier_lowered",
        "the tier was lowered at a review at some time",
        lambda f: f.member.tier_lowered_at is not None,
    ),
    (
        "lifecycle.joined_by_purchase",
        "became a member by paying, with no join event",
        lambda f: not f.member.joined_by_event and f.member.joined_at is not None,
    ),
    *(
        (
            f"lifecycle.member_{years}_year{'s' if years > 1 else ''}_plus",
            f"joined {years} year{'s' if years > 1 else ''} ago or more",
            lambda f, years=years: _member_for(f, years),
        )
        for years in _MEMBER_YEARS
    ),
    (
        "lifecycle.win_back_target",
        "the stage is dormant or churned",
        lambda f: _stage(f, lifecycle.DORMANT, lifecycle.CHURNED),
    ),
    (
        "lifecycle.at_risk_high_value",
        "the stage is at_risk and net_spend >= 5R",
        lambda f: _stage(f, lifecycle.AT_RISK) and f.member.net_spend >= 5 * f.reference,
    ),
    (
        "lifecycle.returning",
        "active again after a win-back",
        lambda f: _stage(f, lifecycle.ACTIVE) and f.member.win_backs >= 1,
    ),
    # dynamic: true for a while, then not, as time passes
    ("dynamic.birthday_this_month", "the birthday falls in the current local month", lambda f: f.birthday_flags[0]),
    ("dynamic.birthday_next_month", "the birthday falls in the next local month", lambda f: f.birthday_flags[1]),
    (
        "dynamic.birthday_this_week",
        "the birthday falls in the current local week (Monday to Sunday)",
        lambda f: f.birthday_flags[2],
    ),
    ("dynamic.birthday_today", "the birthday is today, local time", lambda f: f.birthday_flags[3]),
    (
        "dynamic.join_anniversary_this_week",
        "joined one year or more ago, on a day of the current local week",
        lambda f: f.anniversary_flags[0],
    ),
    (
        "dynamic.join_anniversary_this_month",
        "joined one year or more ago, in the current local month",
        lambda f: f.anniversary_flags[1],
    ),
    *(
        (
            f"dynamic.ordered_last_{days}_days",
            f"a payment in the last {days} days",
            lambda f, days=days: f.within(f.member.last_order_at, days),
        )
        for days in _ORDERED_WITHIN
    ),
    *(
        (
            f"dynamic.no_order_{days}_days",
            f"has paid before, but not in the last {days} days",
            lambda f, days=days: f.member.last_order_at is not None and not f.within(f.member.last_order_at, days),
        )
        for days in _NO_ORDER_FOR
    ),
    *(
        (
            f"dynamic.joined_last_{days}_days",
            f"joined in the last {days} days",
            lambda f, days=days: f.within(f.member.joined_at, days),
        )
        for days in _JOINED_WITHIN
    ),
    ("dynamic.ordered_this_month", "a payment in the current local month", lambda f: _ordered_this_month(f)),
    *(
        (
            f"dynamic.points_expiring_{days}_days",
            f"points expire in the next {days} days",
            lambda f, days=days: _points_expiring(f, days),
        )
        for days in _POINTS_EXPIRING_WITHIN
    ),
    (
        f"dynamic.reviewed_last_{_REVIEWED_WITHIN}_days",
        f"a review in the last {_REVIEWED_WITHIN} days",
        lambda f: _reviewed_recently(f),
    ),
    *(
        (
            f"dynamic.promo_{name}_buyer",
            f"paid during the {name} promotion (local {_promotion_text(name)}) in the last 365 days",
            lambda f, name=name: name in f.recent_promotions,
        )
        for name in _PROMOTIONS
    ),
    *(
        (
            f"dynamic.{season}_buyer",
            f"paid in {season} ({_months_text(months)}, local) in the last 365 days",
            lambda f, season=season: season in f.recent_seasons,
        )
        for season, months in _SEASONS.items()
    ),
)


def _aov(facts: TagFacts, low: Decimal | None, high: Decimal | None) -> bool:
    """``low`` R <= average order value < ``high`` R."""
    value = facts.average_order_value
    if value is None:
        return False
    return (low is None or value >= low * facts.reference) and (high is None or value < high * facts.reference)


def _member_for(facts: TagFacts, years: int) -> bool:
    joined = facts.member.joined_at
    if joined is None:
        return False
    since = _years_after(joined, years)
    facts.note(since)
    return facts.at >= since


def _years_after(moment: datetime, years: int) -> datetime:
    """The same calendar day ``years`` later (29 February on 28 February in common years)."""
    day = same_day_in(moment.year + years, moment.month, moment.day)
    return moment.replace(year=day.year, month=day.month, day=day.day)


_parse_birthday = lru_cache(maxsize=4096)(parse_birthday)


@lru_cache(maxsize=16384)
def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return local_due(day, _MIDNIGHT, tz)


def _month_start(year: int, month: int) -> date:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return date(year, month, 1)


def _week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _weeks(month: int, day: int, years: Iterable[int]) -> list[date]:
    """The Mondays of the weeks holding (``month``, ``day``) in ``years``."""
    return [_week_of(same_day_in(year, month, day)) for year in years]


Instants = tuple[datetime, ...]


@lru_cache(maxsize=65536)
def _birthday_calendar(
    birthday: tuple[int, int], today: date, tz: ZoneInfo
) -> tuple[tuple[bool, bool, bool, bool], Instants]:
    """(this month, next month, this week, today) for a birthday seen on local date ``today``, and the
    instants around it where one of them flips: starts of months, weeks and days, this year and next."""
    month, day = birthday
    year = today.year
    days: list[date] = []
    for y in (year, year + 1):
        days += [_month_start(y, month + offset) for offset in (-1, 0, 1)]
        birthday_day = same_day_in(y, month, day)
        days += [birthday_day, birthday_day + _DAY]
    weeks = _weeks(month, day, (year - 1, year, year + 1))
    days += [*weeks, *(monday + timedelta(days=7) for monday in weeks)]
    flags = (
        today.month == month,
        _month_start(year, today.month + 1).month == month,
        _week_of(today) in weeks,
        today == same_day_in(year, month, day),
    )
    return flags, tuple(_day_start(d, tz) for d in days)


@lru_cache(maxsize=65536)
def _anniversary_calendar(joined: date, today: date, tz: ZoneInfo) -> tuple[tuple[bool, bool], Instants]:
    """(this week, this month) for a join anniversary, one year or more on, seen on local date ``today``,
    and the instants where one of them flips."""
    year = today.year
    weeks = _weeks(joined.month, joined.day, [y for y in (year - 1, year, year + 1) if y > joined.year])
    days = [*weeks, *(monday + timedelta(days=7) for monday in weeks)]
    for y in (year, year + 1):
        if y > joined.year:
            days += [_month_start(y, joined.month), _month_start(y, joined.month + 1)]
    flags = (_week_of(today) in weeks, today.month == joined.month and year > joined.year)
    return flags, tuple(_day_start(d, tz) for d in days)


@lru_cache(maxsize=4096)
def _age_bands_end(birth_year: int, tz: ZoneInfo) -> Instants:
    """The local new years on which an age band ends."""
    years = (birth_year + boundary for boundary in _AGE_BOUNDARIES)
    return tuple(_day_start(date(year, 1, 1), tz) for year in years if date.min.year <= year <= date.max.year)


def _ordered_this_month(facts: TagFacts) -> bool:
    last = facts.member.last_order_at
    if last is None or last > facts.at:
        return False
    local = last.astimezone(facts.tz).date()
    facts.note(_day_start(_month_start(local.year, local.month + 1), facts.tz))
    return (local.year, local.month) == (facts.today.year, facts.today.month)


def _points_expiring(facts: TagFacts, days: int) -> bool:
    expiries = facts.member.points_expiries
    if not expiries:
        return False
    expiry = expiries[0]
    facts.note(expiry - timedelta(days=days))
    facts.note(expiry)
    return expiry - timedelta(days=days) <= facts.at < expiry


def _reviewed_recently(facts: TagFacts) -> bool:
    return facts.within(facts.last_review_at, _REVIEWED_WITHIN)


# --- evaluation ---------------------------------------------------------------------------------

_DEFINITIONS = tuple(TagDefinition(tag, description) for tag, description, _ in _BUILT_IN)
_TESTS = tuple((tag, test) for tag, _, test in _BUILT_IN)


@dataclass(frozen=True, slots=True)
class TagState:
    tags: list[str]  # sorted
    until: datetime | None  # the next instant a tag may change with time alone


def _facts(context: MemberContext, playbook: ShopPlaybook, at: datetime) -> TagFacts:
    member = context.member
    tz = zone(member.timezone, playbook.timezone)
    today = at.astimezone(tz).date()
    paid = sorted(
        (o for o in context.orders.values() if o.counted and o.paid_at is not None and o.paid_at <= at),
        key=lambda o: (o.paid_at, o.order_id),
    )
    facts = TagFacts(member, playbook, at, tz, today, playbook.reference_order_value, paid)
    if member.birthday:
        facts.birthday = _parse_birthday(member.birthday)
    if facts.birthday is not None:
        facts.birthday_flags, instants = _birthday_calendar(facts.birthday, today, tz)
        facts.note_all(instants)
    if member.joined_at is not None:
        facts.anniversary_flags, instants = _anniversary_calendar(member.joined_at.astimezone(tz).date(), today, tz)
        facts.note_all(instants)
    if member.birth_year is not None:
        facts.age = today.year - member.birth_year
        facts.note_all(_age_bands_end(member.birth_year, tz))
    _gather_orders(facts, context.orders.values())
    return facts


def _gather_orders(facts: TagFacts, orders: Iterable[Order]) -> None:
    """The order, refund, review and 365-day facts, in one pass."""
    at, tz = facts.at, facts.tz
    for order in facts.paid:
        assert order.paid_at is not None
        if not facts.within(order.paid_at, _YEAR_WINDOW.days):
            continue
        facts.recent_categories.update(order.categories)
        local = order.paid_at.astimezone(tz)
        facts.recent_seasons.update(season for season, months in _SEASONS.items() if local.month in months)
        facts.recent_promotions.update(
            name
            for name, (month, first, last) in _PROMOTIONS.items()
            if local.month == month and first <= local.day <= last
        )
    seen = facts.orders_seen
    for order in orders:
        seen.update(name for name, test in _ORDER_FACTS.items() if name not in seen and test(order))
        for refund in order.refunds.values():
            if refund.completed_at is not None and refund.completed_at <= at:
                facts.completed_refunds += 1
        for review in order.reviews.values():
            if review.at is None or review.at > at:
                continue
            facts.reviews += 1
            facts.reviews_seen.update(name for name, test in _REVIEW_FACTS.items() if test(review))
            if facts.last_review_at is None or review.at > facts.last_review_at:
                facts.last_review_at = review.at


def evaluate(context: MemberContext, playbook: ShopPlaybook, at: datetime) -> TagState:
    """The member's built-in and external tags at business time ``at``, and until when they hold."""
    facts = _facts(context, playbook, at)
    tags = [tag for tag, test in _TESTS if test(facts)]
    member = context.member
    if member.tier is not None and playbook.tier(member.tier) is not None:
        tags.append(TIER_PREFIX + member.tier)
    if member.score_band is not None:
        tags.append(SCORE_PREFIX + member.score_band)
    tags.extend(CATEGORY_PREFIX + category for category in facts.recent_categories)
    tags.extend(tag for tag, mark in member.external_tags.items() if mark.present)
    return TagState(sorted(set(tags)), min(facts.changes) if facts.changes else None)


def refresh_tags(context: MemberContext, playbook: ShopPlaybook) -> None:
    """The member's tags as of its clock (the latest event or scheduler run)."""
    member = context.member
    at = member.as_of
    if at is None:
        return
    state = evaluate(context, playbook, at)
    member.tags, member.tags_until = state.tags, state.until


# --- the catalogue ------------------------------------------------------------------------------


def built_in() -> tuple[TagDefinition, ...]:
    """The fixed built-in tags, in catalogue order."""
    return _DEFINITIONS


def catalogue(playbook: ShopPlaybook) -> list[TagDefinition]:
    """Every built-in tag a shop with these settings can carry (categories aside), sorted by id."""
    generated = [
        *(TagDefinition(TIER_PREFIX + tier.code, f"the tier is {tier.code} ({tier.name})") for tier in playbook.tiers),
        *(
            TagDefinition(SCORE_PREFIX + band.name, f"the engagement score is in band {band.name} ({band.min} or more)")
            for band in playbook.score.bands
        ),
    ]
    return sorted([*_DEFINITIONS, *generated], key=lambda definition: definition.id)


def describe(tag: str) -> str:
    """A one-line description of a tag id outside the fixed catalogue (categories, external, manual)."""
    group, _, name = tag.partition(".")
    if tag.startswith(CATEGORY_PREFIX):
        return f"a paid order in the last 365 days had an item of category {tag.removeprefix(CATEGORY_PREFIX)}"
    if group == EXTERNAL:
        return f"set by an external system ({name})"
    if group == MANUAL:
        return f"set by hand through the API ({name})"
    return tag


_MANUAL_NAME = re.compile(r"[a-z0-9_]{1,64}")


def manual_tag_problem(tag: str) -> str | None:
    """Why ``tag`` cannot be set by hand, or None: only ``manual.<name>`` with a short lower-case name."""
    group, dot, name = tag.partition(".")
    if group != MANUAL or not dot:
        return "only tags of the manual group (manual.<name>) can be set through the API"
    if _MANUAL_NAME.fullmatch(name) is None:
        return "a manual tag's name is 1 to 64 of a-z, 0-9 and _"
    return None
