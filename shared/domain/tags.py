"""Member tags: the built-in catalogue, what each tag means, and when a tag can change with time alone.

Each built-in tag is one row of ``_BUILT_IN``: its id, its description, and the fact and
value that make it true (``profile.female`` holds when the fact ``gender`` is
``"female"``). The facts are worked out once per evaluation by ``_facts``, in one pass
over the member's state and orders, so evaluating 120 tags costs a few dozen lookups
rather than 120 tests. The five groups follow the shop-CRM practice: ``profile`` (buyer
attributes), ``purchase``, ``engagement``, ``lifecycle`` and ``dynamic`` (time-dependent).
Families whose members depend on a shop's settings (``lifecycle.tier_<tier>``,
``engagement.score_<band>``) or on its data (``purchase.category_<category>``) are
generated. ``external.`` tags come from other systems' events; ``manual.`` tags are set
through the API and kept apart, with their expiry.

Tags are evaluated at a business time (the member's clock), so a replay gives the same
tags. ``evaluate`` also answers when the next tag may change with time alone (a recency
band ending, a birthday month beginning); the scheduler evaluates the member again then,
so keeping tags current costs what is due, never a sweep over all members.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from shared.domain import lifecycle
from shared.domain.calendar import local_due, parse_birthday, same_day_in, zone
from shared.domain.decisions import MemberContext
from shared.domain.model import Order
from shared.domain.playbook import ShopPlaybook
from shared.domain.regions import REGIONS, city_tier, region_of

GROUPS = ("profile", "purchase", "engagement", "lifecycle", "dynamic")
EXTERNAL, MANUAL = "external", "manual"
CATEGORY_PREFIX = "purchase.category_"
TIER_PREFIX = "lifecycle.tier_"
STAGE_PREFIX = "lifecycle.stage_"
SCORE_PREFIX = "engagement.score_"

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_MIDNIGHT = time(0)
_YEAR_WINDOW = 365  # days a paid order counts for categories, promotions and seasons
_AGE_BANDS = ((0, 17, "under_18"), (18, 24, "18_24"), (25, 29, "25_29"), (30, 34, "30_34"), (35, 39, "35_39"),
              (40, 49, "40_49"), (50, 59, "50_59"), (60, None, "60_plus"))  # fmt: skip
_ORDERED_WITHIN = (7, 30, 90, 180, 365)
_NO_ORDER_FOR = (90, 180, 365)
_JOINED_WITHIN = (7, 30, 90)
_MEMBER_YEARS = (1, 2, 3)
_POINTS_EXPIRING_WITHIN = (7, 30)
_REVIEWED_WITHIN = 90
_SEASONS = {"spring": (3, 4, 5), "summer": (6, 7, 8), "autumn": (9, 10, 11), "winter": (12, 1, 2)}
_SEASON_OF_MONTH = {month: season for season, months in _SEASONS.items() for month in months}
# Promotion windows of the Chinese shopping calendar: (month, first day, last day).
_PROMOTIONS = {"618": (6, 1, 18), "1111": (11, 1, 11), "1212": (12, 1, 12)}
_SPEND_BANDS = ((0, 1, "spend_under_1r"), (1, 3, "spend_1r_to_3r"), (3, 5, "spend_3r_to_5r"),
                (5, 10, "spend_5r_to_10r"), (10, None, "spend_10r_plus"))  # fmt: skip
_AOV_BANDS = ((None, Decimal("0.5"), "low"), (Decimal("0.5"), Decimal("1.5"), "mid"), (Decimal("1.5"), None, "high"))


@dataclass(frozen=True, slots=True)
class TagDefinition:
    id: str
    description: str
    fact: str = ""  # the fact the tag reads ...
    value: Hashable = True  # ... and the value that makes it true

    @property
    def group(self) -> str:
        return self.id.partition(".")[0]


def _tag(tag: str, description: str, fact: str | None = None, value: Hashable = True) -> TagDefinition:
    """A catalogue row; the fact defaults to the tag's name (a yes/no fact)."""
    return TagDefinition(tag, description, fact or tag.partition(".")[2], value)


def _band_text(low: int | None, high: int | None) -> str:
    if not low:
        return f"under {high + 1 if high is not None else 0}"
    return f"{low} or more" if high is None else f"{low} to {high}"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'s' if count != 1 else ''}"


# --- the built-in catalogue: every fixed tag, once ---------------------------------------------

_BUILT_IN: tuple[TagDefinition, ...] = (
    # profile: buyer attributes
    _tag("profile.female", "gender is female", "gender", "female"),
    _tag("profile.male", "gender is male", "gender", "male"),
    _tag("profile.gender_other", "gender is other", "gender", "other"),
    _tag("profile.gender_unknown", "gender given as unknown, or not given", "gender", "unknown"),
    *(
        _tag(f"profile.age_{name}", f"age (local year minus birth_year) {_band_text(low, high)}", "age_band", name)
        for low, high, name in _AGE_BANDS
    ),
    _tag("profile.age_unknown", "no birth_year given", "age_band", None),
    _tag("profile.birthday_known", "a valid birthday is on file"),
    _tag("profile.offline_member", "the member has a store_id or joined on channel offline", "offline", True),
    _tag("profile.online_member", "not an offline member", "offline", False),
    _tag("profile.store_assigned", "the member belongs to an offline store (store_id)"),
    _tag("profile.marketing_consent", "marketing messages allowed", "consent", True),
    _tag("profile.marketing_opt_out", "marketing messages refused", "consent", False),
    _tag("profile.province_known", "a province is on file"),
    _tag("profile.city_known", "a city is on file"),
    *(
        _tag(f"profile.region_{region}", f"the province lies in {region.replace('_', ' ')}", "region", region)
        for region in REGIONS
    ),
    _tag("profile.region_unknown", "no province, or one not recognised", "region", None),
    _tag("profile.first_tier_city", "lives in Beijing, Shanghai, Guangzhou or Shenzhen", "city_tier", 1),
    _tag("profile.new_first_tier_city", "lives in one of the 15 new first-tier cities", "city_tier", 2),
    _tag("profile.own_timezone", "the member has a time zone of its own on file"),
    _tag("profile.complete", "gender, a birth year or birthday, province and city are all on file"),
    # purchase attributes
    _tag("purchase.never_purchased", "no paid order counts (paid_orders = 0)", "orders_band", "none"),
    _tag("purchase.first_time_buyer", "exactly one paid order", "orders_band", "one"),
    _tag("purchase.repeat_buyer", "paid_orders >= 2"),
    _tag("purchase.frequent_buyer", "paid_orders >= 5"),
    _tag("purchase.loyal_buyer", "paid_orders >= 10"),
    _tag("purchase.spend_under_1r", "0 < net_spend < R (the shop's reference order value)", "spend", "spend_under_1r"),
    _tag("purchase.spend_1r_to_3r", "R <= net_spend < 3R", "spend", "spend_1r_to_3r"),
    _tag("purchase.spend_3r_to_5r", "3R <= net_spend < 5R", "spend", "spend_3r_to_5r"),
    _tag("purchase.spend_5r_to_10r", "5R <= net_spend < 10R", "spend", "spend_5r_to_10r"),
    _tag("purchase.spend_10r_plus", "net_spend >= 10R", "spend", "spend_10r_plus"),
    _tag("purchase.aov_low", "average order value below R/2", "aov", "low"),
    _tag("purchase.aov_mid", "average order value from R/2 to below 1.5R", "aov", "mid"),
    _tag("purchase.aov_high", "average order value 1.5R or more", "aov", "high"),
    _tag("purchase.big_order", "a counted paid order of 3R or more"),
    _tag("purchase.refunder", "at least one completed refund"),
    _tag("purchase.frequent_refunder", "three completed refunds or more"),
    _tag("purchase.full_refund", "an order refunded in full"),
    _tag("purchase.canceller", "an order was cancelled"),
    _tag("purchase.unpaid_order_open", "an order created and neither paid nor cancelled"),
    _tag("purchase.order_in_transit", "a shipment shipped and not delivered, on an order not cancelled"),
    _tag("purchase.awaiting_completion", "a paid order neither completed nor cancelled"),
    _tag("purchase.multi_shipment_order", "an order sent in two shipments or more"),
    _tag("purchase.multi_category", "items of three categories or more in the last 365 days"),
    _tag("purchase.repurchase_within_30_days", "two paid orders 30 days apart or less"),
    _tag("purchase.weekend_shopper", "two paid orders or more, at least half paid on a local Saturday or Sunday"),
    _tag("purchase.night_shopper", "two paid orders or more, at least half paid between 22:00 and 06:00 local time"),
    # engagement: interaction
    _tag("engagement.reviewer", "at least one review"),
    _tag("engagement.frequent_reviewer", "three reviews or more"),
    _tag("engagement.photo_reviewer", "a review with photo_count >= 1"),
    _tag("engagement.video_reviewer", "a review with video_count >= 1"),
    _tag("engagement.detailed_reviewer", "a review of 100 characters or more"),
    _tag("engagement.five_star_reviewer", "a review rated 5"),
    _tag("engagement.critical_reviewer", "a review rated 1 or 2"),
    _tag("engagement.follow_up_reviewer", "an appended review"),
    _tag("engagement.review_rewarded", "points were given for a review"),
    _tag("engagement.points_holder", "a positive points balance"),
    _tag("engagement.points_1000_plus", "a points balance of 1,000 or more"),
    _tag("engagement.points_none", "a points balance of 0"),
    _tag("engagement.marketing_reachable", "marketing allowed and at least one paid order"),
    _tag("engagement.won_back", "came back from dormant or churned at least once"),
    _tag("engagement.won_back_twice", "came back from dormant or churned twice or more"),
    # lifecycle and value
    *(_tag(f"{STAGE_PREFIX}{stage}", f"the lifecycle stage is {stage}", "stage", stage) for stage in lifecycle.STAGES),
    _tag("lifecycle.tier_base", "in the lowest tier of the shop's ladder", "tier_rank", "base"),
    _tag("lifecycle.tier_top", "in the highest tier of a ladder of two tiers or more", "tier_rank", "top"),
    _tag("lifecycle.tier_upgraded", "reached a tier above the base at some time"),
    _tag("lifecycle.tier_lowered", "the tier was lowered at a review at some time"),
    _tag("lifecycle.joined_by_purchase", "became a member by paying, with no join event"),
    *(
        _tag(
            f"lifecycle.member_{_plural(years, 'year').replace(' ', '_')}_plus",
            f"joined {_plural(years, 'year')} ago or more",
            "member_years",
            years,
        )
        for years in _MEMBER_YEARS
    ),
    _tag("lifecycle.win_back_target", "the stage is dormant or churned"),
    _tag("lifecycle.at_risk_high_value", "the stage is at_risk and net_spend >= 5R"),
    _tag("lifecycle.returning", "active again after a win-back"),
    # dynamic: true for a while, then not, as time passes
    _tag("dynamic.birthday_this_month", "the birthday falls in the current local month"),
    _tag("dynamic.birthday_next_month", "the birthday falls in the next local month"),
    _tag("dynamic.birthday_this_week", "the birthday falls in the current local week (Monday to Sunday)"),
    _tag("dynamic.birthday_today", "the birthday is today, local time"),
    _tag("dynamic.join_anniversary_this_week", "joined one year or more ago, on a day of the current local week"),
    _tag("dynamic.join_anniversary_this_month", "joined one year or more ago, in the current local month"),
    *(
        _tag(f"dynamic.ordered_last_{days}_days", f"a payment in the last {days} days", "ordered_within", days)
        for days in _ORDERED_WITHIN
    ),
    *(
        _tag(f"dynamic.no_order_{days}_days", f"has paid before, but not in the last {days} days", "no_order_for", days)
        for days in _NO_ORDER_FOR
    ),
    *(
        _tag(f"dynamic.joined_last_{days}_days", f"joined in the last {days} days", "joined_within", days)
        for days in _JOINED_WITHIN
    ),
    _tag("dynamic.ordered_this_month", "a payment in the current local month"),
    *(
        _tag(f"dynamic.points_expiring_{days}_days", f"points expire in the next {days} days", "points_expiring", days)
        for days in _POINTS_EXPIRING_WITHIN
    ),
    _tag(
        f"dynamic.reviewed_last_{_REVIEWED_WITHIN}_days",
        f"a review in the last {_REVIEWED_WITHIN} days",
        "reviewed_recently",
    ),
    *(
        _tag(
            f"dynamic.promo_{name}_buyer",
            f"paid during the {name} promotion (local {month:02d}-{first:02d} to "
            f"{month:02d}-{last:02d}) in the last 365 days",
            "promotion",
            name,
        )
        for name, (month, first, last) in _PROMOTIONS.items()
    ),
    *(
        _tag(
            f"dynamic.{season}_buyer",
            f"paid in {season} (months {', '.join(map(str, months))}, local) in the last 365 days",
            "season",
            season,
        )
        for season, months in _SEASONS.items()
    ),
)
_BY_FACT = {(definition.fact, definition.value): definition.id for definition in _BUILT_IN}


# --- the facts ----------------------------------------------------------------------------------

Fact = tuple[str, Hashable]


class _Clock:
    """The evaluation time, and the instants after it at which a tag may change."""

    __slots__ = ("at", "changes")

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.changes: list[datetime] = []

    def within(self, moment: datetime | None, days: int) -> bool:
        """Whether ``moment`` lies in the ``days`` up to now; the instant it leaves is a change."""
        if moment is None or moment > self.at:
            return False
        ends = moment + _days(days)
        if ends > self.at:
            self.changes.append(ends)
            return True
        return False

    def note(self, instants: Sequence[datetime]) -> None:
        """Notes the first of ``instants`` (ascending) after now."""
        index = bisect_right(instants, self.at)
        if index < len(instants):
            self.changes.append(instants[index])


@lru_cache(maxsize=64)
def _days(count: int) -> timedelta:
    return timedelta(days=count)


@dataclass(frozen=True, slots=True)
class _Thresholds:
    """A shop's money thresholds, in multiples of its reference order value R, worked out once per R."""

    spend: tuple[tuple[Decimal, str], ...]  # (lower bound, band), highest first
    aov: tuple[tuple[Decimal, str], ...]
    big_order: Decimal
    high_value: Decimal


@lru_cache(maxsize=256)
def _thresholds(r: Decimal) -> _Thresholds:
    spend = tuple((low * r, name) for low, _, name in reversed(_SPEND_BANDS))
    aov = tuple(((low or 0) * r, name) for low, _, name in reversed(_AOV_BANDS))
    return _Thresholds(spend, aov, 3 * r, 5 * r)


def _band(value: Decimal, bands: tuple[tuple[Decimal, str], ...]) -> str:
    """The first band (highest first) whose lower bound ``value`` reaches."""
    for low, name in bands:
        if value >= low:
            return name
    return bands[-1][1]


@lru_cache(maxsize=65536)
def _member_years(joined: datetime, tz: ZoneInfo) -> Instants:
    """When each of ``_MEMBER_YEARS`` is reached, counted on the member's local calendar."""
    local = joined.astimezone(tz)
    return tuple(_years_after(local, years) for years in _MEMBER_YEARS)


def _facts(context: MemberContext, playbook: ShopPlaybook, clock: _Clock) -> list[Fact]:
    """Every fact a built-in tag reads, as (fact, value) pairs; yes/no facts only when true."""
    member, at = context.member, clock.at
    tz = _zone(member.timezone, playbook.timezone)
    today = at.astimezone(tz).date()
    r = playbook.reference_order_value
    limits = _thresholds(r)
    facts: list[Fact] = []
    add = facts.append

    # profile
    add(("gender", member.gender or "unknown"))
    birthday = _parse_birthday(member.birthday) if member.birthday else None
    age = today.year - member.birth_year if member.birth_year is not None else None
    add(("age_band", None if age is None else next(n for low, high, n in _AGE_BANDS if high is None or age <= high)))
    if member.birth_year is not None:
        clock.note(_age_bands_end(member.birth_year, tz))
    offline = member.store_id is not None or member.channel == "offline"
    add(("offline", offline))
    add(("consent", member.marketing_consent))
    add(("region", region_of(member.province)))
    add(("city_tier", city_tier(member.city)))
    for fact, holds in (
        ("birthday_known", birthday is not None),
        ("store_assigned", member.store_id is not None),
        ("province_known", member.province is not None),
        ("city_known", member.city is not None),
        ("own_timezone", member.timezone is not None),
        (
            "complete",
            member.gender not in (None, "unknown")
            and (member.birth_year is not None or birthday is not None)
            and member.province is not None
            and member.city is not None,
        ),
    ):
        if holds:
            add((fact, True))

    # purchase and engagement, from the member's figures
    orders = member.paid_orders
    add(("orders_band", "none" if orders == 0 else "one" if orders == 1 else "more"))
    spend = member.net_spend
    if spend > 0:
        add(("spend", _band(spend, limits.spend)))
    if orders > 0:
        add(("aov", _band(spend / orders, limits.aov)))
    balance = member.points_balance
    stage = member.stage
    for fact, holds in (
        ("repeat_buyer", orders >= 2),
        ("frequent_buyer", orders >= 5),
        ("loyal_buyer", orders >= 10),
        ("points_holder", balance > 0),
        ("points_1000_plus", balance >= 1000),
        ("points_none", balance == 0),
        ("marketing_reachable", member.marketing_consent and orders > 0),
        ("won_back", member.win_backs >= 1),
        ("won_back_twice", member.win_backs >= 2),
        ("tier_upgraded", len(member.rewarded_tiers) >= 2),
        ("tier_lowered", member.tier_lowered_at is not None),
        ("joined_by_purchase", not member.joined_by_event and member.joined_at is not None),
        ("win_back_target", stage in (lifecycle.DORMANT, lifecycle.CHURNED)),
        ("at_risk_high_value", stage == lifecycle.AT_RISK and spend >= limits.high_value),
        ("returning", stage == lifecycle.ACTIVE and member.win_backs >= 1),
    ):
        if holds:
            add((fact, True))

    # lifecycle
    add(("stage", stage))
    rank = playbook.tier_rank(member.tier)
    if rank == 0:
        add(("tier_rank", "base"))
    if len(playbook.tiers) > 1 and rank == len(playbook.tiers) - 1:
        add(("tier_rank", "top"))
    joined = member.joined_at
    if joined is not None:
        # Years on the member's local calendar, whatever offset joined_at was written in.
        for years, since in zip(_MEMBER_YEARS, _member_years(joined, tz), strict=True):
            if at >= since:
                add(("member_years", years))
            else:
                clock.changes.append(since)

    # dynamic: the calendar and recency
    if birthday is not None:
        flags, instants = _birthday_calendar(birthday, today, tz)
        clock.note(instants)
        facts.extend((name, True) for name, holds in zip(_BIRTHDAY_FLAGS, flags, strict=True) if holds)
    if joined is not None:
        anniversary, instants = _anniversary_calendar(joined.astimezone(tz).date(), today, tz)
        clock.note(instants)
        facts.extend((name, True) for name, holds in zip(_ANNIVERSARY_FLAGS, anniversary, strict=True) if holds)
        facts.extend(("joined_within", days) for days in _JOINED_WITHIN if clock.within(joined, days))
    last = member.last_order_at
    if last is not None and last <= at:
        recent = [days for days in _ORDERED_WITHIN if clock.within(last, days)]
        facts.extend(("ordered_within", days) for days in recent)
        facts.extend(("no_order_for", days) for days in _NO_ORDER_FOR if days not in recent)
        local = last.astimezone(tz).date()
        clock.note([_day_start(_month_start(local.year, local.month + 1), tz)])
        if (local.year, local.month) == (today.year, today.month):
            add(("ordered_this_month", True))
    # Expiries up to ``at`` stay listed until the scheduler books them: the next one counts.
    expiry = next((moment for moment in member.points_expiries if moment > at), None)
    if expiry is not None:
        for days in _POINTS_EXPIRING_WITHIN:
            starts = expiry - _days(days)
            clock.note((starts, expiry))
            if starts <= at < expiry:
                add(("points_expiring", days))

    _order_facts(context.orders.values(), tz, limits.big_order, clock, facts)
    return facts


_BIRTHDAY_FLAGS = ("birthday_this_month", "birthday_next_month", "birthday_this_week", "birthday_today")
_ANNIVERSARY_FLAGS = ("join_anniversary_this_week", "join_anniversary_this_month")
_NIGHT = frozenset((22, 23, 0, 1, 2, 3, 4, 5))


def _order_facts(orders: Iterable[Order], tz: ZoneInfo, big: Decimal, clock: _Clock, facts: list[Fact]) -> None:
    """The facts of the orders, their refunds, shipments and reviews, and the 365-day windows, in one pass."""
    at = clock.at
    seen: set[Hashable] = set()
    paid_times: list[datetime] = []
    weekend = night = refunds = reviews = 0
    last_review: datetime | None = None
    categories: set[str] = set()
    for order in orders:
        paid_at, cancelled = order.paid_at, order.cancelled_at is not None
        if cancelled:
            seen.add("canceller")
        if order.created_at is not None and paid_at is None and not cancelled:
            seen.add("unpaid_order_open")
        if paid_at is not None and order.completed_at is None and not cancelled:
            seen.add("awaiting_completion")
        if order.paid_amount is not None and 0 < order.paid_amount <= order.refunded_amount:
            seen.add("full_refund")
        if order.review_rewarded:
            seen.add("review_rewarded")
        if order.shipments:
            if len(order.shipments) >= 2:
                seen.add("multi_shipment_order")
            if not cancelled and any(
                s.shipped_at is not None and s.delivered_at is None for s in order.shipments.values()
            ):
                seen.add("order_in_transit")
        refunds += sum(
            1 for refund in order.refunds.values() if refund.completed_at is not None and refund.completed_at <= at
        )
        for review in order.reviews.values():
            if review.at is None or review.at > at:
                continue
            reviews += 1
            last_review = review.at if last_review is None or review.at > last_review else last_review
            if (review.photos or 0) >= 1:
                seen.add("photo_reviewer")
            if (review.videos or 0) >= 1:
                seen.add("video_reviewer")
            if (review.text_length or 0) >= 100:
                seen.add("detailed_reviewer")
            if review.rating == 5:
                seen.add("five_star_reviewer")
            if (review.rating or 5) <= 2:
                seen.add("critical_reviewer")
            if review.appended:
                seen.add("follow_up_reviewer")
        if not order.counted or paid_at is None or paid_at > at:
            continue
        paid_times.append(paid_at)
        if order.paid_amount is not None and order.paid_amount >= big:
            seen.add("big_order")
        local = paid_at.astimezone(tz)
        weekend += local.weekday() >= 5
        night += local.hour in _NIGHT
        if clock.within(paid_at, _YEAR_WINDOW):
            categories.update(order.categories)
            seen.add(("season", _SEASON_OF_MONTH[local.month]))
            seen.update(
                ("promotion", name)
                for name, (month, first, last) in _PROMOTIONS.items()
                if month == local.month and first <= local.day <= last
            )
    paid_times.sort()
    count = len(paid_times)
    if count >= 2:
        seen.update(
            name for name, share in (("weekend_shopper", weekend), ("night_shopper", night)) if 2 * share >= count
        )
        if any(b - a <= _days(30) for a, b in pairwise(paid_times)):
            seen.add("repurchase_within_30_days")
    if len(categories) >= 3:
        seen.add("multi_category")
    if refunds >= 1:
        seen.add("refunder")
    if refunds >= 3:
        seen.add("frequent_refunder")
    if reviews >= 1:
        seen.add("reviewer")
    if reviews >= 3:
        seen.add("frequent_reviewer")
    if clock.within(last_review, _REVIEWED_WITHIN):
        seen.add("reviewed_recently")
    facts.extend(item if isinstance(item, tuple) else (item, True) for item in seen)
    facts.extend([("category", category) for category in categories])


# --- the calendar, cached: members share dates and zones ----------------------------------------

_parse_birthday = lru_cache(maxsize=4096)(parse_birthday)
_zone = lru_cache(maxsize=1024)(zone)


def _years_after(moment: datetime, years: int) -> datetime:
    """The same calendar day ``years`` later (29 February on 28 February in common years)."""
    day = same_day_in(moment.year + years, moment.month, moment.day)
    return moment.replace(year=day.year, month=day.month, day=day.day)


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
    days += [*weeks, *(monday + _WEEK for monday in weeks)]
    flags = (
        today.month == month,
        _month_start(year, today.month + 1).month == month,
        _week_of(today) in weeks,
        today == same_day_in(year, month, day),
    )
    return flags, tuple(sorted(_day_start(d, tz) for d in set(days)))


@lru_cache(maxsize=65536)
def _anniversary_calendar(joined: date, today: date, tz: ZoneInfo) -> tuple[tuple[bool, bool], Instants]:
    """(this week, this month) for a join anniversary, one year or more on, seen on local date ``today``,
    and the instants where one of them flips."""
    year = today.year
    weeks = _weeks(joined.month, joined.day, [y for y in (year - 1, year, year + 1) if y > joined.year])
    days = [*weeks, *(monday + _WEEK for monday in weeks)]
    for y in (year, year + 1):
        if y > joined.year:
            days += [_month_start(y, joined.month), _month_start(y, joined.month + 1)]
    flags = (_week_of(today) in weeks, today.month == joined.month and year > joined.year)
    return flags, tuple(sorted(_day_start(d, tz) for d in set(days)))


@lru_cache(maxsize=4096)
def _age_bands_end(birth_year: int, tz: ZoneInfo) -> Instants:
    """The local new years on which an age band ends."""
    years = (birth_year + low for low, _, _ in _AGE_BANDS if low)
    return tuple(_day_start(date(year, 1, 1), tz) for year in years if date.min.year <= year <= date.max.year)


# --- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagState:
    tags: list[str]  # sorted
    until: datetime | None  # the next instant a tag may change with time alone


def evaluate(context: MemberContext, playbook: ShopPlaybook, at: datetime) -> TagState:
    """The member's built-in and external tags at business time ``at``, and until when they hold."""
    clock = _Clock(at)
    facts = _facts(context, playbook, clock)
    by_fact = _BY_FACT
    tags = [by_fact[fact] for fact in facts if fact in by_fact]
    member = context.member
    tags += [CATEGORY_PREFIX + value for name, value in facts if name == "category" and isinstance(value, str)]
    if member.tier is not None and playbook.tier_rank(member.tier) >= 0:
        tags.append(TIER_PREFIX + member.tier)
    if member.score_band is not None:
        tags.append(SCORE_PREFIX + member.score_band)
    tags.extend(tag for tag, mark in member.external_tags.items() if mark.present)
    return TagState(sorted(set(tags)), min(clock.changes) if clock.changes else None)


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
    return _BUILT_IN


def catalogue(playbook: ShopPlaybook) -> list[TagDefinition]:
    """Every built-in tag a shop with these settings can carry (categories aside), sorted by id."""
    generated = [
        *(TagDefinition(TIER_PREFIX + tier.code, f"the tier is {tier.code} ({tier.name})") for tier in playbook.tiers),
        *(
            TagDefinition(SCORE_PREFIX + band.name, f"the engagement score is in band {band.name} ({band.min} or more)")
            for band in playbook.score.bands
        ),
    ]
    return sorted([*_BUILT_IN, *generated], key=lambda definition: definition.id)


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
