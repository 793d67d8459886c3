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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

from shared.domain import lifecycle
from shared.domain.calendar import add_months, local_due, parse_birthday, same_day_in, zone
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
    """What the tests of the built-in tags read, worked out in one pass over the member's orders."""

    member: Member
    playbook: ShopPlaybook
    at: datetime
    tz: ZoneInfo
    today: date  # ``at``'s local date
    reference: Decimal  # the shop's reference order value R
    orders: list[Order]  # every order of the member
    paid: list[Order]  # counted paid orders, by payment time
    recent_categories: set[str] = field(default_factory=set)  # of orders paid within 365 days
    recent_promotions: set[str] = field(default_factory=set)
    recent_seasons: set[str] = field(default_factory=set)
    reviews: list[ReviewRecord] = field(default_factory=list)
    completed_refunds: int = 0
    changes: list[datetime] = field(default_factory=list)  # instants after ``at`` when a tag may change

    @property
    def offline(self) -> bool:
        return self.member.store_id is not None or self.member.channel == "offline"

    @property
    def age(self) -> int | None:
        return self.today.year - self.member.birth_year if self.member.birth_year is not None else None

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
        self.note(moment + timedelta(days=days))
        return self.at < moment + timedelta(days=days)

    def note(self, instant: datetime) -> None:
        if instant > self.at:
            self.changes.append(instant)


def _paid_share(facts: TagFacts, test: Callable[[datetime], bool]) -> bool:
    """At least two paid orders, and at least half of them paid at local times passing ``test``."""
    times = [order.paid_at.astimezone(facts.tz) for order in facts.paid if order.paid_at is not None]
    return len(times) >= 2 and 2 * sum(1 for moment in times if test(moment)) >= len(times)


def _any_order(facts: TagFacts, test: Callable[[Order], bool]) -> bool:
    return any(test(order) for order in facts.orders)


def _repurchased_within(facts: TagFacts, days: int) -> bool:
    times = [order.paid_at for order in facts.paid if order.paid_at is not None]
    return any(b - a <= timedelta(days=days) for a, b in pairwise(times))


def _age_between(facts: TagFacts, low: int | None, high: int | None) -> bool:
    age = facts.age
    return age is not None and (low is None or age >= low) and (high is None or age <= high)


def _reviewed(facts: TagFacts, test: Callable[[ReviewRecord], bool]) -> bool:
    return any(test(review) for review in facts.reviews)


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
    ("profile.birthday_known", "a valid birthday is on file", lambda f: _birthday(f.member) is not None),
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
            and (f.member.birth_year is not None or _birthday(f.member) is not None)
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
        lambda f: _any_order(f, lambda o: o.paid_amount is not None and 0 < o.paid_amount <= o.refunded_amount),
    ),
    ("purchase.canceller", "an order was cancelled", lambda f: _any_order(f, lambda o: o.cancelled_at is not None)),
    (
        "purchase.unpaid_order_open",
        "an order created and neither paid nor cancelled",
        lambda f: _any_order(f, lambda o: o.created_at is not None and o.paid_at is None and o.cancelled_at is None),
    ),
    (
        "purchase.order_in_transit",
        "a shipment shipped and not delivered, on an order not cancelled",
        lambda f: _any_order(
            f,
            lambda o: (
                o.cancelled_at is None
                and any(s.shipped_at is not None and s.delivered_at is None for s in o.shipments.values())
            ),
        ),
    ),
    (
        "purchase.awaiting_completion",
        "a paid order neither completed nor cancelled",
        lambda f: _any_order(f, lambda o: o.is_paid and o.completed_at is None and o.cancelled_at is None),
    ),
    (
        "purchase.multi_shipment_order",
        "an order sent in two shipments or more",
        lambda f: _any_order(f, lambda o: len(o.shipments) >= 2),
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
    ("engagement.reviewer", "at least one review", lambda f: bool(f.reviews)),
    ("engagement.frequent_reviewer", "three reviews or more", lambda f: len(f.reviews) >= 3),
    (
        "engagement.photo_reviewer",
        "a review with photo_count >= 1",
        lambda f: _reviewed(f, lambda r: (r.photos or 0) >= 1),
    ),
    (
        "engagement.video_reviewer",
        "a review with video_count >= 1",
        lambda f: _reviewed(f, lambda r: (r.videos or 0) >= 1),
    ),
    (
        "engagement.detailed_reviewer",
        "a review of 100 characters or more",
        lambda f: _reviewed(f, lambda r: (r.text_length or 0) >= 100),
    ),
    ("engagement.five_star_reviewer", "a review rated 5", lambda f: _reviewed(f, lambda r: r.rating == 5)),
    ("engagement.critical_reviewer", "a review rated 1 or 2", lambda f: _reviewed(f, lambda r: (r.rating or 5) <= 2)),
    ("engagement.follow_up_reviewer", "an appended review", lambda f: _reviewed(f, lambda r: bool(r.appended))),
    (
        "engagement.review_rewarded",
        "points were given for a review",
        lambda f: _any_order(f, lambda o: o.review_rewarded),
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
    ("dynamic.birthday_this_month", "the birthday falls in the current local month", lambda f: _birthday_month(f, 0)),
    ("dynamic.birthday_next_month", "the birthday falls in the next local month", lambda f: _birthday_month(f, 1)),
    (
        "dynamic.birthday_this_week",
        "the birthday falls in the current local week (Monday to Sunday)",
        lambda f: _birthday_week(f),
    ),
    ("dynamic.birthday_today", "the birthday is today, local time", lambda f: _birthday_today(f)),
    (
        "dynamic.join_anniversary_this_week",
        "joined one year or more ago, on a day of the current local week",
        lambda f: _anniversary_week(f),
    ),
    (
        "dynamic.join_anniversary_this_month",
        "joined one year or more ago, in the current local month",
        lambda f: _anniversary_month(f),
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
    """Whether the ``years``-th anniversary of joining has come, on the member's local calendar.

    Counted from the join time in the member's zone, so the answer depends on the instant
    only, not on the offset ``joined_at`` was written in (a join on 29 February local time
    reaches its year on 28 February local time, stored as UTC or not).
    """
    joined = facts.member.joined_at
    if joined is None:
        return False
    since = add_months(joined.astimezone(facts.tz), 12 * years).astimezone(UTC)
    facts.note(since)
    return facts.at >= since


def _birthday(member: Member) -> tuple[int, int] | None:
    return parse_birthday(member.birthday) if member.birthday else None


def _midnight(day: date, facts: TagFacts) -> datetime:
    """The instant ``day`` begins in the member's zone; noted as a change when it is still to come."""
    instant = local_due(day, _MIDNIGHT, facts.tz)
    facts.note(instant)
    return instant


def _month_start(year: int, month: int) -> date:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return date(year, month, 1)


def _birthday_month(facts: TagFacts, ahead: int) -> bool:
    """The birthday's month is ``ahead`` months after the current local month.

    The tag changes where a month begins: the month ``ahead`` months before the birthday
    month, and the one after it, in this year and the next.
    """
    birthday = _birthday(facts.member)
    if birthday is None:
        return False
    month = birthday[0]
    for year in (facts.today.year, facts.today.year + 1):
        _midnight(_month_start(year, month - ahead), facts)
        _midnight(_month_start(year, month - ahead + 1), facts)
    return _month_start(facts.today.year, facts.today.month + ahead).month == month


def _week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _in_week(facts: TagFacts, month: int, day: int, years: Iterable[int]) -> bool:
    """Whether the date (``month``, ``day``) of one of ``years`` falls in the current local week.

    Each such week's first and last-plus-one days are noted as changes.
    """
    monday = _week_of(facts.today)
    found = False
    for year in years:
        start = _week_of(same_day_in(year, month, day))
        _midnight(start, facts)
        _midnight(start + timedelta(days=7), facts)
        found = found or start == monday
    return found


def _birthday_week(facts: TagFacts) -> bool:
    birthday = _birthday(facts.member)
    if birthday is None:
        return False
    year = facts.today.year
    return _in_week(facts, *birthday, (year - 1, year, year + 1))


def _birthday_today(facts: TagFacts) -> bool:
    birthday = _birthday(facts.member)
    if birthday is None:
        return False
    found = False
    for year in (facts.today.year, facts.today.year + 1):
        day = same_day_in(year, *birthday)
        _midnight(day, facts)
        _midnight(day + _DAY, facts)
        found = found or day == facts.today
    return found


def _joined_day(facts: TagFacts) -> date | None:
    joined = facts.member.joined_at
    return joined.astimezone(facts.tz).date() if joined is not None else None


def _anniversary_week(facts: TagFacts) -> bool:
    joined = _joined_day(facts)
    if joined is None:
        return False
    year = facts.today.year
    years = [y for y in (year - 1, year, year + 1) if y > joined.year]
    return _in_week(facts, joined.month, joined.day, years)


def _anniversary_month(facts: TagFacts) -> bool:
    joined = _joined_day(facts)
    if joined is None:
        return False
    for year in (facts.today.year, facts.today.year + 1):
        if year > joined.year:
            _midnight(_month_start(year, joined.month), facts)
            _midnight(_month_start(year, joined.month + 1), facts)
    return facts.today.month == joined.month and facts.today.year > joined.year


def _ordered_this_month(facts: TagFacts) -> bool:
    last = facts.member.last_order_at
    if last is None or last > facts.at:
        return False
    local = last.astimezone(facts.tz).date()
    _midnight(_month_start(local.year, local.month + 1), facts)
    return (local.year, local.month) == (facts.today.year, facts.today.month)


def _points_expiring(facts: TagFacts, days: int) -> bool:
    """The first expiry after ``at`` is at most ``days`` away.

    Expiries up to ``at`` stay listed until the scheduler books them; they are past, and
    must not hide the next one.
    """
    expiry = next((moment for moment in facts.member.points_expiries if moment > facts.at), None)
    if expiry is None:
        return False
    facts.note(expiry - timedelta(days=days))
    facts.note(expiry)
    return expiry - timedelta(days=days) <= facts.at < expiry


def _reviewed_recently(facts: TagFacts) -> bool:
    times = [review.at for review in facts.reviews if review.at is not None and review.at <= facts.at]
    return facts.within(max(times), _REVIEWED_WITHIN) if times else False


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
    orders = list(context.orders.values())
    paid = sorted(
        (o for o in orders if o.counted and o.paid_at is not None and o.paid_at <= at),
        key=lambda o: (o.paid_at, o.order_id),
    )
    facts = TagFacts(member, playbook, at, tz, at.astimezone(tz).date(), playbook.reference_order_value, orders, paid)
    for order in paid:
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
    for order in orders:
        facts.reviews.extend(review for review in order.reviews.values() if review.at is not None and review.at <= at)
        facts.completed_refunds += sum(
            1 for refund in order.refunds.values() if refund.completed_at is not None and refund.completed_at <= at
        )
    if member.birth_year is not None:  # an age band ends where a local year begins
        for boundary in _AGE_BOUNDARIES:
            if member.birth_year + boundary <= date.max.year:
                _midnight(date(member.birth_year + boundary, 1, 1), facts)
    return facts


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
