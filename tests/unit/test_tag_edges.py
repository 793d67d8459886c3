"""Every built-in tag at its edges: one case just inside (the tag is present), one just outside (absent).

The tables name each tag by id (the dynamic group's are in test_tag_edges_dynamic.py), so a tag
added to the catalogue without edge cases fails ``test_tags.py::test_the_edge_tables_cover_every_tag``.
Local times are Asia/Shanghai (the default playbook's zone) unless a case gives the member a zone
of its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.domain import lifecycle
from shared.domain.model import ExternalTag, Order, RefundRecord, ReviewRecord
from shared.domain.tags import evaluate
from shared.playbook_file import parse_playbook
from tests.builders import (
    completed_refund,
    counted_order,
    created_order,
    member_context,
    member_state,
    posted_review,
    shipment_record,
)

DEFAULT = parse_playbook({}).default
NEW_YORK = "America/New_York"
EPS = timedelta(microseconds=1)
DAY = timedelta(days=1)


def local(year: int, month: int, day: int, hour: int = 0, tz: str = "Asia/Shanghai") -> datetime:
    return datetime(year, month, day, hour, tzinfo=ZoneInfo(tz))


NOW = local(2025, 6, 11, 12)  # a Wednesday
NEW_YEAR = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 00:00 in Shanghai, 2025-12-31 11:00 in New York
assert local(2026, 1, 1) == NEW_YEAR


@dataclass(frozen=True)
class Case:
    """A member (its fields and orders) looked at ``at``."""

    at: datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    orders: tuple[Order, ...] = ()

    def tags(self) -> list[str]:
        member = member_state(**copy.deepcopy(dict(self.fields)))
        return evaluate(member_context(member, *copy.deepcopy(self.orders)), DEFAULT, self.at).tags


@dataclass(frozen=True)
class Edge:
    tag: str
    inside: Case
    outside: Case
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.tag}[{self.label}]" if self.label else self.tag


def assert_one_change(edge: Edge) -> None:
    """The two sides of an edge differ in one thing only: the instant, the member's fields or its orders."""
    inside, outside = edge.inside, edge.outside
    changed = [inside.at != outside.at, inside.fields != outside.fields, inside.orders != outside.orders]
    assert sum(changed) == 1, edge.id


def by_fields(
    tag: str,
    inside: Mapping[str, Any],
    outside: Mapping[str, Any],
    *orders: Order,
    at: datetime = NOW,
    label: str = "",
) -> Edge:
    """The same instant and orders; the member's fields differ."""
    return Edge(tag, Case(at, inside, orders), Case(at, outside, orders), label)


def by_time(tag: str, inside: datetime, outside: datetime, *orders: Order, label: str = "", **fields: Any) -> Edge:
    """The same member looked at two instants."""
    return Edge(tag, Case(inside, fields, orders), Case(outside, fields, orders), label)


def by_orders(
    tag: str, inside: Sequence[Order], outside: Sequence[Order], *, at: datetime = NOW, label: str = "", **fields: Any
) -> Edge:
    """The same member and instant; the orders differ."""
    return Edge(tag, Case(at, fields, tuple(inside)), Case(at, fields, tuple(outside)), label)


def bought(paid_at: datetime, amount: str = "100.00", order_id: str = "o-1", **changes: Any) -> Order:
    return counted_order(order_id, paid_at, amount, **changes)


def reviewed(*reviews: ReviewRecord) -> Order:
    """A counted order of 10 days ago with these reviews."""
    return bought(NOW - 10 * DAY, reviews={f"v{index}": review for index, review in enumerate(reviews)})


def refunded(*refunds: RefundRecord) -> Order:
    return bought(NOW - 10 * DAY, refunds={f"r{index}": refund for index, refund in enumerate(refunds)})


def window(tag: str, paid: datetime, label: str = "365 days", **order: Any) -> Edge:
    """An order paid at ``paid`` counts for 365 days: up to, not at, ``paid`` + 365 days."""
    end = paid + 365 * DAY
    return by_time(tag, end - EPS, end, bought(paid, **order), label=label)


# --- profile --------------------------------------------------------------------------------------

AGE_BANDS = ((None, 17, "under_18"), (18, 24, "18_24"), (25, 29, "25_29"), (30, 34, "30_34"), (35, 39, "35_39"),
             (40, 49, "40_49"), (50, 59, "50_59"), (60, None, "60_plus"))  # fmt: skip


def _age_edges() -> list[Edge]:
    """Each band at its lower and upper edge, where the local year turns (2025 to 2026 in Shanghai)."""
    edges = []
    for low, high, name in AGE_BANDS:
        tag = f"profile.age_{name}"
        if low is not None:
            edges.append(by_time(tag, NEW_YEAR, NEW_YEAR - EPS, birth_year=2026 - low, label=f"turns {low}"))
        if high is not None:
            edges.append(by_time(tag, NEW_YEAR - EPS, NEW_YEAR, birth_year=2025 - high, label=f"turns {high + 1}"))
    return edges


REGION_NAMES = (
    ("north_china", "Shanxi", "Shaanxi"),
    ("north_china", "内蒙古自治区", "Mongolia"),
    ("northeast", "黑龙江省", "Heilong"),
    ("northeast", "Liaoning Province", "Liaoning County"),
    ("east_china", " shanghai ", "shang hai"),
    ("east_china", "浙江省", "Hebei"),
    ("central_china", "湖北省", "湖北路"),
    ("central_china", "Henan Sheng", "海南省"),
    ("south_china", "广西壮族自治区", "广西壮族"),
    ("south_china", "Guangdong Province", "Guangzhou"),
    ("south_china", "Guangxi Zhuang Autonomous Region", "Zhuang Autonomous Region"),
    ("northwest", "Xinjiang Uygur Autonomous Region", "Uygur"),
    ("southwest", "西藏自治区", "Tibet Plateau"),
    ("southwest", "Chongqing Municipality", "Hunan"),
    ("northwest", "新疆维吾尔自治区", "新疆维吾尔"),
    ("northwest", "宁夏回族自治区", "Shanxi"),
    ("hk_macao_taiwan", "香港特别行政区", "Kowloon"),
    ("hk_macao_taiwan", "Hong Kong SAR", "Macaw"),
)
COMPLETE = {"gender": "female", "birth_year": 1990, "province": "广东", "city": "深圳"}

PROFILE = [
    by_fields("profile.female", {"gender": "female"}, {"gender": "male"}),
    by_fields("profile.male", {"gender": "male"}, {"gender": "female"}),
    by_fields("profile.gender_other", {"gender": "other"}, {"gender": "unknown"}),
    by_fields("profile.gender_unknown", {"gender": "unknown"}, {"gender": "other"}),
    by_fields("profile.gender_unknown", {}, {"gender": "female"}, label="not given"),
    *_age_edges(),
    by_fields(
        "profile.age_under_18",
        {"birth_year": 2008, "timezone": NEW_YORK},
        {"birth_year": 2008},
        at=NEW_YEAR,
        label="the year turns later in the member's zone",
    ),
    by_time(
        "profile.age_18_24",
        NEW_YEAR,
        NEW_YEAR - EPS,
        birth_year=2008,
        timezone="Asia/Shanghai",
        label="2026 begins at 16:00 UTC in the member's zone",
    ),
    by_fields("profile.age_unknown", {}, {"birth_year": 2000}),
    by_fields("profile.birthday_known", {"birthday": "2024-02-29"}, {"birthday": "2023-02-29"}),
    by_fields("profile.birthday_known", {"birthday": "02-29"}, {"birthday": "02-30"}, label="no year"),
    by_fields("profile.birthday_known", {"birthday": "12-31"}, {}, label="not given"),
    by_fields("profile.offline_member", {"channel": "offline"}, {"channel": "app"}),
    by_fields("profile.offline_member", {"channel": "app", "store_id": "st-1"}, {"channel": "app"}, label="store"),
    by_fields("profile.online_member", {"channel": "app"}, {"channel": "offline"}),
    by_fields("profile.online_member", {}, {"store_id": "st-1"}, label="store"),
    by_fields("profile.store_assigned", {"store_id": "st-1"}, {"channel": "offline"}),
    by_fields("profile.marketing_consent", {"marketing_consent": True}, {"marketing_consent": False}),
    by_fields("profile.marketing_opt_out", {"marketing_consent": False}, {"marketing_consent": True}),
    by_fields("profile.province_known", {"province": "Atlantis"}, {}),
    by_fields("profile.city_known", {"city": "深圳"}, {}),
    *(
        by_fields(f"profile.region_{region}", {"province": inside}, {"province": outside}, label=inside.strip())
        for region, inside, outside in REGION_NAMES
    ),
    by_fields("profile.region_unknown", {}, {"province": "广东"}),
    by_fields("profile.region_unknown", {"province": "Atlantis"}, {"province": "Guangdong Province"}, label="other"),
    by_fields("profile.first_tier_city", {"city": "深圳市"}, {"city": "杭州市"}),
    by_fields("profile.first_tier_city", {"city": " Beijing City "}, {"city": "Chengdu"}, label="pinyin"),
    by_fields("profile.new_first_tier_city", {"city": "杭州市"}, {"city": "深圳市"}),
    by_fields("profile.new_first_tier_city", {"city": "Xi'an"}, {"city": "Lhasa"}, label="pinyin"),
    by_fields("profile.new_first_tier_city", {"city": "Xi\u2019an"}, {"city": "Xi an"}, label="typographic apostrophe"),
    by_fields("profile.own_timezone", {"timezone": NEW_YORK}, {}),
    by_fields("profile.complete", COMPLETE, {**COMPLETE, "gender": "unknown"}),
    by_fields(
        "profile.complete",
        {**COMPLETE, "birth_year": None, "birthday": "05-01"},
        {**COMPLETE, "birth_year": None},
        label="birthday for birth year",
    ),
    by_fields("profile.complete", COMPLETE, {**COMPLETE, "province": None}, label="province"),
    by_fields("profile.complete", COMPLETE, {**COMPLETE, "city": None}, label="city"),
]

# --- purchase -------------------------------------------------------------------------------------


def spend(amount: str, orders: int = 1) -> dict[str, Any]:
    return {"net_spend": Decimal(amount), "paid_orders": orders}


WEEKDAY = local(2025, 6, 11, 12)
SATURDAY = local(2025, 6, 14)
MONDAY = local(2025, 6, 16)
AFTER = local(2025, 6, 20)
SEEN = local(2025, 5, 1, 12)  # when orders of the journey tags were created, paid or shipped
IN_TRANSIT = {"s-1": shipment_record(SEEN)}


def pair(second: datetime) -> list[Order]:
    """A payment on a local Wednesday noon and a second one at ``second``."""
    return [bought(WEEKDAY), bought(second, order_id="o-2")]


PURCHASE = [
    by_fields("purchase.never_purchased", {"paid_orders": 0}, {"paid_orders": 1}),
    by_fields("purchase.first_time_buyer", {"paid_orders": 1}, {"paid_orders": 2}),
    by_fields("purchase.first_time_buyer", {"paid_orders": 1}, {"paid_orders": 0}, label="none"),
    by_fields("purchase.repeat_buyer", {"paid_orders": 2}, {"paid_orders": 1}),
    by_fields("purchase.frequent_buyer", {"paid_orders": 5}, {"paid_orders": 4}),
    by_fields("purchase.loyal_buyer", {"paid_orders": 10}, {"paid_orders": 9}),
    by_fields("purchase.spend_under_1r", spend("0.01"), spend("0.00")),
    by_fields("purchase.spend_under_1r", spend("99.99"), spend("100.00"), label="1R"),
    by_fields("purchase.spend_1r_to_3r", spend("100.00"), spend("99.99")),
    by_fields("purchase.spend_1r_to_3r", spend("299.99"), spend("300.00"), label="3R"),
    by_fields("purchase.spend_3r_to_5r", spend("300.00"), spend("299.99")),
    by_fields("purchase.spend_3r_to_5r", spend("499.99"), spend("500.00"), label="5R"),
    by_fields("purchase.spend_5r_to_10r", spend("500.00"), spend("499.99")),
    by_fields("purchase.spend_5r_to_10r", spend("999.99"), spend("1000.00"), label="10R"),
    by_fields("purchase.spend_10r_plus", spend("1000.00"), spend("999.99")),
    by_fields("purchase.aov_low", spend("99.98", 2), spend("100.00", 2)),
    by_fields("purchase.aov_low", spend("0.00", 1), spend("0.00", 0), label="no orders"),
    by_fields("purchase.aov_mid", spend("100.00", 2), spend("99.98", 2)),
    by_fields("purchase.aov_mid", spend("299.98", 2), spend("300.00", 2), label="1.5R"),
    by_fields("purchase.aov_high", spend("300.00", 2), spend("299.98", 2)),
    by_orders("purchase.big_order", [bought(SEEN, "300.00")], [bought(SEEN, "299.99")]),
    by_orders(
        "purchase.big_order", [bought(SEEN, "300.00")], [bought(SEEN, "300.00", counted=False)], label="not counted"
    ),
    by_orders("purchase.refunder", [refunded(completed_refund("10.00", NOW))], [refunded()]),
    by_orders(
        "purchase.refunder",
        [refunded(completed_refund("10.00", NOW))],
        [refunded(RefundRecord(status="approved", amount=Decimal("10.00")))],
        label="not completed",
    ),
    by_orders(
        "purchase.refunder",
        [refunded(completed_refund("10.00", NOW))],
        [refunded(completed_refund("10.00", NOW + EPS))],
        label="completed later",
    ),
    by_orders(
        "purchase.frequent_refunder",
        [refunded(*(completed_refund("1.00", NOW) for _ in range(3)))],
        [refunded(*(completed_refund("1.00", NOW) for _ in range(2)))],
    ),
    by_orders(
        "purchase.full_refund",
        [bought(SEEN, refunded_amount=Decimal("100.00"))],
        [bought(SEEN, refunded_amount=Decimal("99.99"))],
    ),
    by_orders("purchase.canceller", [bought(SEEN, cancelled_at=SEEN + DAY)], [bought(SEEN)]),
    by_orders("purchase.unpaid_order_open", [created_order("o-1", SEEN, "100.00")], [bought(SEEN, created_at=SEEN)]),
    by_orders(
        "purchase.unpaid_order_open",
        [created_order("o-1", SEEN, "100.00")],
        [created_order("o-1", SEEN, "100.00", cancelled_at=SEEN + DAY)],
        label="cancelled",
    ),
    by_orders(
        "purchase.order_in_transit",
        [bought(SEEN, shipments=IN_TRANSIT)],
        [bought(SEEN, shipments={"s-1": shipment_record(SEEN, SEEN + DAY)})],
    ),
    by_orders(
        "purchase.order_in_transit",
        [bought(SEEN, shipments=IN_TRANSIT)],
        [bought(SEEN, shipments=IN_TRANSIT, cancelled_at=SEEN + DAY)],
        label="cancelled",
    ),
    by_orders("purchase.awaiting_completion", [bought(SEEN)], [bought(SEEN, completed_at=SEEN + DAY)]),
    by_orders(
        "purchase.awaiting_completion", [bought(SEEN)], [bought(SEEN, cancelled_at=SEEN + DAY)], label="cancelled"
    ),
    by_orders(
        "purchase.multi_shipment_order",
        [bought(SEEN, shipments={**IN_TRANSIT, "s-2": shipment_record(SEEN)})],
        [bought(SEEN, shipments=IN_TRANSIT)],
    ),
    by_orders(
        "purchase.multi_category",
        [bought(SEEN, paid_categories=["shoes", "bags"]), bought(SEEN, order_id="o-2", paid_categories=["toys"])],
        [bought(SEEN, paid_categories=["shoes", "bags"]), bought(SEEN, order_id="o-2", paid_categories=["shoes"])],
    ),
    by_time(
        "purchase.multi_category",
        SEEN + 365 * DAY - EPS,
        SEEN + 365 * DAY,
        bought(SEEN, paid_categories=["toys"]),
        bought(SEEN + DAY, order_id="o-2", paid_categories=["shoes", "bags"]),
        label="365 days",
    ),
    by_orders(
        "purchase.repurchase_within_30_days",
        [bought(SEEN), bought(SEEN + 30 * DAY, order_id="o-2")],
        [bought(SEEN), bought(SEEN + 30 * DAY + EPS, order_id="o-2")],
    ),
    by_orders("purchase.weekend_shopper", pair(SATURDAY), pair(SATURDAY - EPS), at=AFTER),
    by_orders("purchase.weekend_shopper", pair(MONDAY - EPS), pair(MONDAY), at=AFTER, label="sunday night"),
    by_fields(
        "purchase.weekend_shopper",
        {},
        {"timezone": NEW_YORK},
        *pair(SATURDAY),
        at=AFTER,
        label="friday in the member's zone",
    ),
    by_orders("purchase.night_shopper", pair(local(2025, 6, 12, 22)), pair(local(2025, 6, 12, 22) - EPS), at=AFTER),
    by_orders(
        "purchase.night_shopper", pair(local(2025, 6, 12, 6) - EPS), pair(local(2025, 6, 12, 6)), at=AFTER, label="6:00"
    ),
]

# --- engagement -----------------------------------------------------------------------------------

ENGAGEMENT = [
    by_orders("engagement.reviewer", [reviewed(posted_review(NOW))], [reviewed()]),
    by_orders(
        "engagement.reviewer", [reviewed(posted_review(NOW))], [reviewed(posted_review(NOW + EPS))], label="later"
    ),
    by_orders(
        "engagement.frequent_reviewer",
        [reviewed(*(posted_review(NOW) for _ in range(3)))],
        [reviewed(*(posted_review(NOW) for _ in range(2)))],
    ),
    by_orders("engagement.photo_reviewer", [reviewed(posted_review(NOW, photos=1))], [reviewed(posted_review(NOW))]),
    by_orders("engagement.video_reviewer", [reviewed(posted_review(NOW, videos=1))], [reviewed(posted_review(NOW))]),
    by_orders(
        "engagement.detailed_reviewer",
        [reviewed(posted_review(NOW, text_length=100))],
        [reviewed(posted_review(NOW, text_length=99))],
    ),
    by_orders(
        "engagement.five_star_reviewer", [reviewed(posted_review(NOW))], [reviewed(posted_review(NOW, rating=4))]
    ),
    by_orders(
        "engagement.critical_reviewer",
        [reviewed(posted_review(NOW, rating=2))],
        [reviewed(posted_review(NOW, rating=3))],
    ),
    by_orders(
        "engagement.follow_up_reviewer",
        [reviewed(posted_review(NOW - DAY, appended=(NOW,)))],
        [reviewed(posted_review(NOW - DAY))],
    ),
    by_orders("engagement.review_rewarded", [bought(SEEN, review_rewarded=True)], [bought(SEEN)]),
    by_fields("engagement.points_holder", {"points_balance": 1}, {"points_balance": 0}),
    by_fields("engagement.points_1000_plus", {"points_balance": 1000}, {"points_balance": 999}),
    by_fields("engagement.points_none", {"points_balance": 0}, {"points_balance": 1}),
    by_fields("engagement.marketing_reachable", {"paid_orders": 1}, {"paid_orders": 0}),
    by_fields(
        "engagement.marketing_reachable",
        {"paid_orders": 1},
        {"paid_orders": 1, "marketing_consent": False},
        label="opted out",
    ),
    by_fields("engagement.won_back", {"win_backs": 1}, {"win_backs": 0}),
    by_fields("engagement.won_back_twice", {"win_backs": 2}, {"win_backs": 1}),
]

# --- lifecycle ------------------------------------------------------------------------------------

LEAP_JOIN = local(2024, 2, 29, 6)  # a year on is 28 February 2025, 06:00 local


def _member_years_edges() -> list[Edge]:
    edges = []
    for years, suffix in ((1, "1_year"), (2, "2_years"), (3, "3_years")):
        since = local(2024 + years, 2, 28, 6)
        tag = f"lifecycle.member_{suffix}_plus"
        edges.append(by_time(tag, since, since - EPS, joined_at=LEAP_JOIN))
        edges.append(by_time(tag, since, since - EPS, joined_at=LEAP_JOIN.astimezone(UTC), label="joined_at in UTC"))
    return edges


STAGES = lifecycle.STAGES

LIFECYCLE = [
    *(
        by_fields(f"lifecycle.stage_{stage}", {"stage": stage}, {"stage": STAGES[(index + 1) % len(STAGES)]})
        for index, stage in enumerate(STAGES)
    ),
    by_fields("lifecycle.tier_base", {"tier": "member"}, {"tier": "advanced"}),
    by_fields("lifecycle.tier_base", {"tier": "member"}, {"tier": "gold"}, label="not on the ladder"),
    by_fields("lifecycle.tier_top", {"tier": "supreme"}, {"tier": "vip"}),
    by_fields("lifecycle.tier_upgraded", {"rewarded_tiers": ["member", "advanced"]}, {"rewarded_tiers": ["member"]}),
    by_fields("lifecycle.tier_lowered", {"tier_lowered_at": NOW - DAY}, {}),
    by_fields("lifecycle.joined_by_purchase", {"joined_at": SEEN}, {"joined_at": SEEN, "joined_by_event": True}),
    by_fields("lifecycle.joined_by_purchase", {"joined_at": SEEN}, {}, label="not joined"),
    *_member_years_edges(),
    by_fields("lifecycle.win_back_target", {"stage": "dormant"}, {"stage": "at_risk"}),
    by_fields("lifecycle.win_back_target", {"stage": "churned"}, {"stage": "active"}, label="churned"),
    by_fields(
        "lifecycle.at_risk_high_value",
        {"stage": "at_risk", "net_spend": Decimal("500.00")},
        {"stage": "at_risk", "net_spend": Decimal("499.99")},
    ),
    by_fields(
        "lifecycle.at_risk_high_value",
        {"stage": "at_risk", "net_spend": Decimal("500.00")},
        {"stage": "active", "net_spend": Decimal("500.00")},
        label="active",
    ),
    by_fields("lifecycle.returning", {"stage": "active", "win_backs": 1}, {"stage": "active"}),
    by_fields(
        "lifecycle.returning", {"stage": "active", "win_backs": 1}, {"stage": "new", "win_backs": 1}, label="new"
    ),
]

# --- generated families: tiers, score bands, categories, external tags -----------------------------

TIER_CODES = [tier.code for tier in DEFAULT.tiers]
BANDS = [band.name for band in DEFAULT.score.bands]
SHOES = local(2025, 3, 1, 12)

FAMILIES = [
    *(
        by_fields(f"lifecycle.tier_{code}", {"tier": code}, {"tier": TIER_CODES[(index + 1) % len(TIER_CODES)]})
        for index, code in enumerate(TIER_CODES)
    ),
    by_fields("lifecycle.tier_vip", {"tier": "vip"}, {"tier": "VIP"}, label="codes are exact"),
    *(
        by_fields(f"engagement.score_{band}", {"score_band": band}, {"score_band": BANDS[(index + 1) % len(BANDS)]})
        for index, band in enumerate(BANDS)
    ),
    window("purchase.category_shoes", SHOES, paid_categories=["shoes"]),
    by_orders(
        "purchase.category_shoes",
        [bought(SHOES, created_categories=["shoes"])],
        [bought(SHOES, created_categories=["shoes"], paid_categories=[])],
        label="paid items replace created ones",
    ),
    by_fields(
        "external.vip_club",
        {"external_tags": {"external.vip_club": ExternalTag(True, NOW)}},
        {"external_tags": {"external.vip_club": ExternalTag(False, NOW)}},
    ),
]

EDGES = [*PROFILE, *PURCHASE, *ENGAGEMENT, *LIFECYCLE, *FAMILIES]


@pytest.mark.parametrize("edge", EDGES, ids=[edge.id for edge in EDGES])
def test_each_tag_is_present_just_inside_its_edge_and_absent_just_outside(edge: Edge) -> None:
    assert_one_change(edge)
    assert edge.tag in edge.inside.tags()
    assert edge.tag not in edge.outside.tags()
