"""Audience benchmark: ``make bench-audience`` (``BENCH_MEMBERS`` members, default 1,000,000).

Loads a fresh database, migrated by Alembic, with set-based SQL: ``BENCH_MEMBERS`` members
in ``BENCH_SHOPS`` shops (default 1: every member in the shop measured, the hardest case
for the per-shop filter) with correlated profiles and figures relative to the wall clock
at load, as the API evaluates definitions at the wall clock:

- gender (55% female, 40% male, 5% unknown or none), birth year (12% none; ages around
  31), province and city from a weighted list of Chinese places (5% none), channel (15%
  offline with a store), marketing consent (85%), a time zone for about 1%;
- orders: 20% never bought, most buyers once, a tail of loyal ones (6% of buyers with 5
  or more); net spend from a log-normal order value around the reference order value;
  first and last payment, stage, tier and score derived from them as the playbook does;
- ``tags``: the built-in tag ids those columns make true (profile, purchase, engagement,
  lifecycle, dynamic; habits such as reviews or weekend shopping drawn for a share of
  the buyers, photo reviewers about 10%), plus 3 to 8 of 30 ``purchase.category_*`` for
  members who paid in the last 365 days, drawn by weighted sampling with popularity that
  depends on gender: about 27 tags per member on average, from about 11 for a member who
  never bought to about 50 (the load line prints the spread);
- manual tags for about 2% of members, and ``manual.bench_export`` on exactly
  ``min(100,000, members of the shop)`` members of the measured shop, spread evenly
  over its member ids: the definition the export runs.

Load time and the table and GIN index sizes are printed (the load is not a target). Then,
``BENCH_REPEAT`` times each (default 5, after one untimed first run), min and median:

1. counts through the segment compiler (``shared.audience.segment_query``) of three
   three-condition definitions: ``mixed`` (a tag, a money field, a tag or recency),
   ``tags`` (three tags: the GIN path) and ``fields`` (tier, stage and age: the column
   path), each with its plan and its share of the shop; target under 1 s;
2. the preview (size and sample) of each, through the compiler, and of ``mixed`` through
   the API route;
3. the CSV export of the export segment through the real API route over HTTP, from
   ``python -m services.api`` started as ``make bench-api`` starts it, streamed and counted
   on the client (rows checked: the members plus the header); target under 5 s for
   100,000 rows; the API process's resident memory before and its peak during each
   export (/proc/<pid>/status, the peak reset before each export), to show that an export's
   memory does not grow with its size;
4. the storage alternative, measured: the tags as rows of a side table
   ``member_tag_rows(shop_id, member_id, tag)`` with a btree on (shop_id, tag, member_id),
   the ``tags`` and ``mixed`` counts written with EXISTS against it (and the tags-only
   count as an intersection of the rows alone) next to the GIN array figures, and both
   storage sizes; the side table is dropped afterwards.

One summary line (``audience bench: ...``) gives the key figures and whether each target
was met; the whole output goes to tests/bench/results/audience.log. The database is
dropped at the end, also when the run fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import structlog
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.api.segment_routes import PREVIEW_SAMPLE
from shared.audience import segment_query
from shared.audience.segment_query import MEMBER_FIELDS, Audience
from shared.domain.playbook import ShopPlaybook
from shared.domain.regions import city_tier, region_of
from shared.domain.segments import Vocabulary, parse_definition
from shared.playbook_file import load_playbook
from tests.bench.harness import (
    Api,
    admin_sql,
    backend_cpu_seconds,
    create_database,
    machine_line,
    process_cpu_seconds,
    scalar,
)
from tests.bench.results import Transcript
from tests.support import ROOT

SHOP = "shop-000"  # the shop measured: member n belongs to shop n % BENCH_SHOPS
EXPORT_ROWS = 100_000
EXPORT_TAG = "manual.bench_export"
COUNT_TARGET_S = 1.0
EXPORT_TARGET_S = 5.0
TOKEN = "bench-audience-token-" + uuid.uuid4().hex
MIB = 1024 * 1024

# (province, city, weight): where members live; None for no province or city on file.
PLACES: tuple[tuple[str | None, str | None, float], ...] = (
    ("广东省", "深圳市", 7), ("广东省", "广州市", 6), ("广东省", "东莞市", 3), ("广东省", "佛山市", 2),
    ("广东省", None, 1), ("浙江省", "杭州市", 6), ("浙江省", "宁波市", 2), ("浙江省", "温州市", 2),
    ("江苏省", "苏州市", 4), ("江苏省", "南京市", 3), ("江苏省", "无锡市", 2), ("上海市", "上海市", 7),
    ("北京市", "北京市", 6), ("天津市", "天津市", 2), ("四川省", "成都市", 4), ("重庆市", "重庆市", 3),
    ("湖北省", "武汉市", 3), ("湖南省", "长沙市", 2), ("山东省", "青岛市", 2), ("山东省", "济南市", 2),
    ("河南省", "郑州市", 2), ("福建省", "厦门市", 2), ("福建省", "福州市", 1), ("陕西省", "西安市", 2),
    ("安徽省", "合肥市", 2), ("辽宁省", "沈阳市", 1), ("黑龙江省", "哈尔滨市", 1), ("云南省", "昆明市", 1),
    ("广西壮族自治区", "南宁市", 1), ("河北省", "石家庄市", 1), ("新疆维吾尔自治区", "乌鲁木齐市", 0.5),
    ("香港特别行政区", "香港", 0.5), (None, None, 5),
)  # fmt: skip

# (category slug, popularity, factor for women, factor for men): 30 categories, a few popular.
CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    ("women_apparel", 10, 3, 0.2), ("skincare", 9, 2.5, 0.5), ("snacks", 9, 1, 1), ("makeup", 6, 3, 0.1),
    ("home_textiles", 6, 1.2, 0.7), ("kitchen", 5, 1.2, 0.8), ("personal_care", 5, 1, 1), ("shoes", 5, 1, 1),
    ("bags", 4, 2, 0.5), ("mens_apparel", 4, 0.4, 3), ("digital", 4, 0.5, 2.5), ("phone_accessories", 4, 1, 1.3),
    ("tea", 3, 0.8, 1.3), ("coffee", 3, 1, 1), ("baby_care", 3, 1.8, 0.5), ("toys", 2.5, 1.2, 0.8),
    ("small_appliances", 2.5, 1, 1.2), ("health_supplements", 2.5, 1.1, 0.9), ("sports", 2, 0.6, 2),
    ("pet_supplies", 2, 1.2, 0.8), ("cleaning", 2, 1.2, 0.8), ("fresh_food", 2, 1, 1), ("books", 1.5, 1, 1),
    ("stationery", 1.5, 1, 1), ("jewelry", 1.5, 2.5, 0.3), ("outdoor", 1.2, 0.5, 2), ("wine", 1, 0.5, 2.5),
    ("watches", 1, 0.6, 2), ("furniture", 0.8, 1, 1), ("car_accessories", 0.6, 0.3, 3),
)  # fmt: skip
POPULAR = "purchase.category_skincare"
MANUAL_TAGS = ("manual.vip_care", "manual.complaint_followup", "manual.influencer", "manual.wholesale")

DEFINITIONS: Mapping[str, dict[str, Any]] = {
    # women who spent 3R or more and either buy the popular category or ordered in the last 90 days
    "mixed": {
        "all": [
            {"tag": "profile.female"},
            {"field": "net_spend", "op": ">=", "value": 300},
            {"any": [{"tag": POPULAR}, {"field": "days_since_last_order", "op": "<=", "value": 90}]},
        ]
    },
    # women, repeat buyers, buyers of the popular category: three tags, the GIN path
    "tags": {"all": [{"tag": "profile.female"}, {"tag": "purchase.repeat_buyer"}, {"tag": POPULAR}]},
    # advanced tier or above, active or at risk, aged 25 to 39: columns only
    "fields": {
        "all": [
            {"field": "tier", "op": ">=", "value": "advanced"},
            {"field": "stage", "op": "in", "value": ["active", "at_risk"]},
            {"field": "age", "op": "between", "value": [25, 39]},
        ]
    },
}
EXPORT_DEFINITION = {"tag": EXPORT_TAG}


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _places_sql() -> str:
    """The places, with the region and city tier the domain reads from them."""
    rows = []
    for index, (province, city, _) in enumerate(PLACES, start=1):
        tier = city_tier(city)
        rows.append(
            f"({index}, {_literal(province)}, {_literal(city)}, {_literal(region_of(province))}, "
            f"{'NULL' if tier is None else tier})"
        )
    return (
        "CREATE UNLOGGED TABLE bench_place (idx int PRIMARY KEY, province text, city text, region text, "
        "city_tier int);\n"
        "INSERT INTO bench_place VALUES " + ",\n".join(rows)
    )


def _place_index(uniform: str) -> str:
    """SQL: the index (1-based) of the place a uniform draw picks, by the places' weights."""
    total = sum(weight for _, _, weight in PLACES)
    bounds, upper = [], 0.0
    for _, _, weight in PLACES[:-1]:
        upper += weight / total
        bounds.append(repr(upper))
    return f"1 + width_bucket({uniform}, ARRAY[{', '.join(bounds)}]::float8[])"


def _categories_sql() -> str:
    rows = ", ".join(
        f"('{slug}', {weight * women!r}, {weight * men!r}, {float(weight)!r})"
        for slug, weight, women, men in CATEGORIES
    )
    return (
        "CREATE UNLOGGED TABLE bench_category (slug text, w_female float8, w_male float8, w_any float8);\n"
        f"INSERT INTO bench_category VALUES {rows}"
    )


def _seed_sql(members: int, shops: int, t0: str, r: Decimal) -> str:
    """Per member: the random draws and every column derived from them (not yet the tags)."""
    return f"""
CREATE UNLOGGED TABLE bench_seed AS
WITH draws AS (
    SELECT n,
        'shop-' || lpad((n % {shops})::text, 3, '0') AS shop_id,
        'm' || lpad(n::text, 9, '0') AS member_id,
        random() AS u_gender, random() AS u_age_known, random() AS u_age1, random() AS u_age2,
        random() AS u_place, random() AS u_channel, random() AS u_store, random() AS u_consent, random() AS u_tz,
        random() AS u_join, random() AS u_buyer, random() AS u_loyal, random() AS u_orders, random() AS u_aov1,
        random() AS u_aov2, random() AS u_first, random() AS u_last, random() AS u_points, random() AS u_review,
        random() AS u_photo, random() AS u_stars, random() AS u_habit, random() AS u_promo, random() AS u_win,
        random() AS u_refund, random() AS u_cats, random() AS u_manual, random() AS u_recent
    FROM generate_series(1, {members}) AS n
), profile AS (
    SELECT d.*,
        CASE WHEN u_gender < 0.55 THEN 'female' WHEN u_gender < 0.95 THEN 'male'
             WHEN u_gender < 0.97 THEN 'unknown' END AS gender,
        CASE WHEN u_age_known >= 0.12 THEN
            greatest(16, least(75, round(31 + 9 * sqrt(-2 * ln(1 - u_age1)) * cos(2 * pi() * u_age2))))::int
        END AS age,
        p.province, p.city, p.region, p.city_tier,
        CASE WHEN u_channel < 0.15 THEN 'offline' WHEN u_channel < 0.55 THEN 'tmall' WHEN u_channel < 0.80 THEN 'wechat'
             WHEN u_channel < 0.93 THEN 'douyin' ELSE 'jd' END AS channel,
        CASE WHEN u_channel < 0.15 THEN 'store-' || lpad(floor(u_store * 40)::int::text, 3, '0') END AS store_id,
        u_consent < 0.85 AS marketing_consent,
        CASE WHEN u_tz < 0.006 THEN 'Asia/Shanghai' WHEN u_tz < 0.009 THEN 'Asia/Hong_Kong'
             WHEN u_tz < 0.011 THEN 'America/Los_Angeles' WHEN u_tz < 0.012 THEN 'Europe/London' END AS timezone,
        date_trunc('second', {t0} - power(u_join, 1.2) * interval '1100 days') AS joined_at,
        CASE WHEN u_buyer < 0.2 THEN 0
             WHEN u_loyal < 0.06 THEN least(60, 5 + floor(-ln(1 - u_orders) * 6))
             ELSE least(60, 1 + floor(-ln(1 - u_orders) * 0.9)) END::int AS paid_orders,
        greatest(9.9, least(2000, exp(ln(95) + 0.55 * sqrt(-2 * ln(1 - u_aov1)) * cos(2 * pi() * u_aov2)))) AS aov
    FROM draws d
    JOIN bench_place p ON p.idx = {_place_index("d.u_place")}
), firsts AS (
    SELECT *,
        CASE WHEN paid_orders > 0 THEN date_trunc('second', joined_at + ({t0} - joined_at) * power(u_first, 2))
        END AS first_order_at,
        round((paid_orders * aov)::numeric, 2) AS net_spend
    FROM profile
), orders AS (
    -- A repeat buyer orders again every 60 days or so and stops after the last of them; one whose
    -- orders would run past now still buys, and last did in the past 60 days.
    SELECT *,
        CASE WHEN paid_orders = 1 THEN first_order_at
             WHEN paid_orders > 1 THEN date_trunc('second', least(
                first_order_at + (paid_orders - 1) * -ln(1 - u_last) * interval '60 days',
                greatest(first_order_at, {t0} - u_recent * interval '60 days')))
        END AS last_order_at
    FROM firsts
), standing AS (
    SELECT *,
        CASE WHEN paid_orders = 0 THEN 'prospect'
             WHEN {t0} - first_order_at < interval '30 days' THEN 'new'
             WHEN {t0} - last_order_at < interval '90 days' THEN 'active'
             WHEN {t0} - last_order_at < interval '180 days' THEN 'at_risk'
             WHEN {t0} - last_order_at < interval '365 days' THEN 'dormant' ELSE 'churned' END AS stage,
        CASE WHEN net_spend >= {10 * r} OR paid_orders >= 10 THEN 3 WHEN net_spend >= {5 * r} OR paid_orders >= 5 THEN 2
             WHEN net_spend >= {3 * r} OR paid_orders >= 3 THEN 1 ELSE 0 END AS tier_rank,
        CASE WHEN paid_orders >= 2 AND u_win < 0.008 THEN 2 WHEN paid_orders >= 2 AND u_win < 0.06 THEN 1 ELSE 0
        END AS win_backs,
        paid_orders > 0 AND u_review < 0.35 AS reviewer,
        paid_orders > 0 AND u_review < 0.35 AND u_photo < 0.36 AS photo_reviewer,
        CASE WHEN last_order_at > {t0} - interval '365 days' THEN 3 + floor(u_cats * 6)::int ELSE 0 END AS categories,
        floor(extract(epoch FROM {t0} - joined_at) / (30 * 86400))::int AS membership_months
    FROM orders
)
SELECT *,
    (ARRAY['member', 'advanced', 'vip', 'supreme'])[tier_rank + 1] AS tier,
    least(1500, floor(net_spend / {r} * 100)::int) + least(500, 50 * paid_orders)
        + CASE WHEN reviewer THEN 10 ELSE 0 END + CASE WHEN photo_reviewer THEN 20 ELSE 0 END
        + 100 + least(240, 10 * membership_months) + 50 * tier_rank AS score,
    CASE WHEN paid_orders = 0 THEN 0 ELSE floor(net_spend * (0.15 + 0.85 * u_points))::bigint END
        + CASE WHEN joined_at <= {t0} - interval '100 days' THEN 100 ELSE 0 END AS points_balance
FROM standing
"""


def _season(moment: str) -> str:
    """SQL: the dynamic season tag of a payment at ``moment`` (local to the shop)."""
    month = f"extract(month FROM ({moment}) AT TIME ZONE 'Asia/Shanghai')"
    return (
        f"'dynamic.' || CASE WHEN {month} IN (3, 4, 5) THEN 'spring' WHEN {month} IN (6, 7, 8) THEN 'summer' "
        f"WHEN {month} IN (9, 10, 11) THEN 'autumn' ELSE 'winter' END || '_buyer'"
    )


def _tags_sql(t0: str, r: Decimal) -> str:
    """The built-in tags each member's columns make true, as the domain names them (without categories)."""
    within = [
        f"CASE WHEN last_order_at > {t0} - interval '{days} days' THEN 'dynamic.ordered_last_{days}_days' END"
        for days in (7, 30, 90, 180, 365)
    ]
    quiet = [
        f"CASE WHEN last_order_at <= {t0} - interval '{days} days' THEN 'dynamic.no_order_{days}_days' END"
        for days in (90, 180, 365)
    ]
    joined = [
        f"CASE WHEN joined_at > {t0} - interval '{days} days' THEN 'dynamic.joined_last_{days}_days' END"
        for days in (7, 30, 90)
    ]
    years = [
        f"CASE WHEN joined_at <= {t0} - interval '{n} years' THEN 'lifecycle.member_{n}_{unit}_plus' END"
        for n, unit in ((1, "year"), (2, "years"), (3, "years"))
    ]
    local_month = "date_trunc('month', ({}) AT TIME ZONE 'Asia/Shanghai')"
    recent = f"last_order_at > {t0} - interval '365 days'"
    tags = [
        # profile
        "CASE gender WHEN 'female' THEN 'profile.female' WHEN 'male' THEN 'profile.male' "
        "ELSE 'profile.gender_unknown' END",
        "CASE WHEN age IS NULL THEN 'profile.age_unknown' WHEN age < 18 THEN 'profile.age_under_18' "
        "WHEN age <= 24 THEN 'profile.age_18_24' WHEN age <= 29 THEN 'profile.age_25_29' "
        "WHEN age <= 34 THEN 'profile.age_30_34' WHEN age <= 39 THEN 'profile.age_35_39' "
        "WHEN age <= 49 THEN 'profile.age_40_49' WHEN age <= 59 THEN 'profile.age_50_59' "
        "ELSE 'profile.age_60_plus' END",
        "CASE WHEN channel = 'offline' OR store_id IS NOT NULL THEN 'profile.offline_member' "
        "ELSE 'profile.online_member' END",
        "CASE WHEN store_id IS NOT NULL THEN 'profile.store_assigned' END",
        "CASE WHEN marketing_consent THEN 'profile.marketing_consent' ELSE 'profile.marketing_opt_out' END",
        "CASE WHEN province IS NOT NULL THEN 'profile.province_known' END",
        "CASE WHEN city IS NOT NULL THEN 'profile.city_known' END",
        "'profile.region_' || coalesce(region, 'unknown')",
        "CASE city_tier WHEN 1 THEN 'profile.first_tier_city' WHEN 2 THEN 'profile.new_first_tier_city' END",
        "CASE WHEN timezone IS NOT NULL THEN 'profile.own_timezone' END",
        "CASE WHEN gender IN ('female', 'male') AND age IS NOT NULL AND province IS NOT NULL AND city IS NOT NULL "
        "THEN 'profile.complete' END",
        # purchase
        "CASE paid_orders WHEN 0 THEN 'purchase.never_purchased' WHEN 1 THEN 'purchase.first_time_buyer' "
        "ELSE 'purchase.repeat_buyer' END",
        "CASE WHEN paid_orders >= 5 THEN 'purchase.frequent_buyer' END",
        "CASE WHEN paid_orders >= 10 THEN 'purchase.loyal_buyer' END",
        f"CASE WHEN net_spend <= 0 THEN NULL WHEN net_spend < {r} THEN 'purchase.spend_under_1r' "
        f"WHEN net_spend < {3 * r} THEN 'purchase.spend_1r_to_3r' "
        f"WHEN net_spend < {5 * r} THEN 'purchase.spend_3r_to_5r' "
        f"WHEN net_spend < {10 * r} THEN 'purchase.spend_5r_to_10r' ELSE 'purchase.spend_10r_plus' END",
        f"CASE WHEN paid_orders = 0 THEN NULL WHEN net_spend < {r / 2} * paid_orders THEN 'purchase.aov_low' "
        f"WHEN net_spend < {r * 3 / 2} * paid_orders THEN 'purchase.aov_mid' ELSE 'purchase.aov_high' END",
        f"CASE WHEN paid_orders > 0 AND aov * (1 + u_habit) >= {3 * r} THEN 'purchase.big_order' END",
        "CASE WHEN paid_orders >= 2 AND u_habit < 0.35 THEN 'purchase.repurchase_within_30_days' END",
        "CASE WHEN paid_orders >= 2 AND u_promo < 0.30 THEN 'purchase.weekend_shopper' END",
        "CASE WHEN paid_orders >= 2 AND u_stars > 0.85 THEN 'purchase.night_shopper' END",
        "CASE WHEN paid_orders > 0 AND u_refund < 0.08 THEN 'purchase.refunder' END",
        "CASE WHEN paid_orders > 0 AND u_refund < 0.01 THEN 'purchase.full_refund' END",
        "CASE WHEN categories >= 3 THEN 'purchase.multi_category' END",
        # engagement
        "CASE WHEN reviewer THEN 'engagement.reviewer' END",
        "CASE WHEN reviewer AND paid_orders >= 3 AND u_stars < 0.5 THEN 'engagement.frequent_reviewer' END",
        "CASE WHEN photo_reviewer THEN 'engagement.photo_reviewer' END",
        "CASE WHEN reviewer AND u_stars < 0.7 THEN 'engagement.five_star_reviewer' END",
        "CASE WHEN reviewer AND u_stars > 0.93 THEN 'engagement.critical_reviewer' END",
        "CASE WHEN reviewer AND u_photo < 0.5 THEN 'engagement.detailed_reviewer' END",
        "CASE WHEN photo_reviewer THEN 'engagement.review_rewarded' END",
        "CASE WHEN points_balance > 0 THEN 'engagement.points_holder' ELSE 'engagement.points_none' END",
        "CASE WHEN points_balance >= 1000 THEN 'engagement.points_1000_plus' END",
        "CASE WHEN marketing_consent AND paid_orders > 0 THEN 'engagement.marketing_reachable' END",
        "CASE WHEN win_backs >= 1 THEN 'engagement.won_back' END",
        "CASE WHEN win_backs >= 2 THEN 'engagement.won_back_twice' END",
        "'engagement.score_' || CASE WHEN score >= 2500 THEN 'diamond' WHEN score >= 1000 THEN 'gold' "
        "WHEN score >= 300 THEN 'silver' ELSE 'basic' END",
        # lifecycle
        "'lifecycle.stage_' || stage",
        "'lifecycle.tier_' || tier",
        "CASE tier_rank WHEN 0 THEN 'lifecycle.tier_base' WHEN 3 THEN 'lifecycle.tier_top' END",
        "CASE WHEN tier_rank > 0 THEN 'lifecycle.tier_upgraded' END",
        *years,
        "CASE WHEN stage IN ('dormant', 'churned') THEN 'lifecycle.win_back_target' END",
        f"CASE WHEN stage = 'at_risk' AND net_spend >= {5 * r} THEN 'lifecycle.at_risk_high_value' END",
        "CASE WHEN stage = 'active' AND win_backs >= 1 THEN 'lifecycle.returning' END",
        # dynamic
        *within,
        *quiet,
        *joined,
        f"CASE WHEN {local_month.format('last_order_at')} = {local_month.format(t0)} "
        "THEN 'dynamic.ordered_this_month' END",
        f"CASE WHEN joined_at <= {t0} - interval '1 year' AND extract(month FROM joined_at AT TIME ZONE "
        f"'Asia/Shanghai') = extract(month FROM {t0} AT TIME ZONE 'Asia/Shanghai') "
        "THEN 'dynamic.join_anniversary_this_month' END",
        f"CASE WHEN {recent} THEN {_season('last_order_at')} END",
        f"CASE WHEN first_order_at > {t0} - interval '365 days' THEN {_season('first_order_at')} END",
        f"CASE WHEN {recent} AND u_promo < 0.25 THEN 'dynamic.promo_1111_buyer' END",
        f"CASE WHEN {recent} AND u_promo >= 0.25 AND u_promo < 0.37 THEN 'dynamic.promo_618_buyer' END",
        f"CASE WHEN {recent} AND u_promo >= 0.9 THEN 'dynamic.promo_1212_buyer' END",
        f"CASE WHEN reviewer AND last_order_at > {t0} - interval '120 days' AND u_photo < 0.6 "
        "THEN 'dynamic.reviewed_last_90_days' END",
    ]
    return "ARRAY[\n        " + ",\n        ".join(tags) + "\n    ]::text[]"


def _members_sql(t0: str, r: Decimal) -> str:
    """Members with their tags: the built-in ones, then the categories drawn by weighted sampling, sorted."""
    return f"""
INSERT INTO members (
    shop_id, member_id, joined_at, joined_by_event, tier, tier_since, net_spend, paid_orders, first_order_at,
    last_order_at, timezone, channel, marketing_consent, consent_at, first_purchase_rewarded, last_event_at,
    repurchase_rewarded, stage, stage_since, win_backs, qualifying_net_spend, qualifying_orders, points_balance,
    score, score_band, gender, birth_year, province, city, store_id, rewarded_tiers, tags)
SELECT shop_id, member_id, joined_at, true, tier, coalesce(last_order_at, joined_at), net_spend, paid_orders,
    first_order_at, last_order_at, timezone, channel, marketing_consent, joined_at, paid_orders > 0,
    greatest(joined_at, last_order_at), paid_orders > 1, stage, coalesce(last_order_at, joined_at), win_backs,
    net_spend, paid_orders, points_balance, score,
    CASE WHEN score >= 2500 THEN 'diamond' WHEN score >= 1000 THEN 'gold' WHEN score >= 300 THEN 'silver'
         ELSE 'basic' END,
    gender, extract(year FROM {t0} AT TIME ZONE 'Asia/Shanghai')::int - age, province, city, store_id,
    (ARRAY['member', 'advanced', 'vip', 'supreme'])[1:tier_rank + 1],
    ARRAY(SELECT tag FROM unnest(array_remove({_tags_sql(t0, r)}, NULL) || bought.tags) AS tag ORDER BY tag COLLATE "C")
FROM bench_seed s
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg('purchase.category_' || slug), '{{}}') AS tags FROM (
        SELECT slug FROM bench_category  -- weighted sampling without replacement (Efraimidis-Spirakis)
        ORDER BY -ln(1 - random()) / CASE s.gender WHEN 'female' THEN w_female WHEN 'male' THEN w_male ELSE w_any END
        LIMIT s.categories
    ) drawn
) bought
ORDER BY shop_id, member_id
"""


def _manual_sql(t0: str, shops: int, shop_members: int, export_rows: int) -> str:
    """About 2% of members with a hand-set tag (some expired, some expiring), and the export tag."""
    rank = f"(n / {shops})::bigint"  # the member's place in the measured shop, 1 to shop_members
    return f"""
INSERT INTO member_manual_tags (shop_id, member_id, tag, expires_at, created_at)
SELECT shop_id, member_id, tag, expires_at, created_at FROM (
    SELECT shop_id, member_id,
        (ARRAY{list(MANUAL_TAGS)!r})[1 + floor(u_manual * {len(MANUAL_TAGS)} / 0.02)::int] AS tag,
        CASE WHEN u_stars < 0.7 THEN NULL WHEN u_stars < 0.9 THEN {t0} + u_photo * interval '180 days'
             ELSE {t0} - u_photo * interval '90 days' END AS expires_at,
        {t0} - u_points * interval '365 days' AS created_at
    FROM bench_seed WHERE u_manual < 0.02
    UNION ALL
    -- exactly {export_rows} members of the measured shop, spread evenly over its member ids
    SELECT shop_id, member_id, '{EXPORT_TAG}', NULL, {t0}
    FROM bench_seed
    WHERE n % {shops} = 0
      AND {rank} * {export_rows} / {shop_members} > ({rank} - 1) * {export_rows} / {shop_members}
) manual
ORDER BY shop_id, member_id, tag
"""


async def _load(engine: AsyncEngine, members: int, shops: int, t0: datetime, r: Decimal) -> None:
    at = f"TIMESTAMPTZ '{t0.isoformat()}'"
    shop_members = members // shops
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL TimeZone = 'UTC'"))
        await connection.execute(text("SET LOCAL work_mem = '256MB'"))
        await connection.execute(text("SELECT setseed(0.2026)"))
        for statement in (
            _places_sql(),
            _categories_sql(),
            _seed_sql(members, shops, at, r),
            _members_sql(at, r),
            _manual_sql(at, shops, shop_members, min(EXPORT_ROWS, shop_members)),
            "DROP TABLE bench_seed, bench_place, bench_category",
        ):
            for part in statement.split(";\n"):
                await connection.execute(text(part))
    await _vacuum(engine, "VACUUM ANALYZE")


async def _vacuum(engine: AsyncEngine, statement: str) -> None:
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(statement))


# --- timing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    first: float  # seconds of the untimed first run
    runs: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def text(self, unit: str = "ms") -> str:
        scale, digits = (1000, 0) if unit == "ms" else (1, 2)
        return (
            f"min {self.min * scale:,.{digits}f} {unit}, median {self.median * scale:,.{digits}f} {unit} "
            f"(first {self.first * scale:,.{digits}f} {unit}, {len(self.runs)} runs)"
        )


async def _timed(repeat: int, run: Callable[[], Awaitable[Any]]) -> tuple[Timing, Any]:
    """One untimed first run, then ``repeat`` timed ones; the last run's answer."""
    started = time.perf_counter()
    answer = await run()
    first = time.perf_counter() - started
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = await run()
        runs.append(time.perf_counter() - started)
    return Timing(first, tuple(runs)), answer


def _verdict(seconds: float, target: float) -> str:
    return f"target < {target:g} s {'met' if seconds < target else 'MISSED'}"


# --- plans ---------------------------------------------------------------------------------------


def _plan_text(node: Mapping[str, Any]) -> str:
    """A plan as nested node names: ``Aggregate(Bitmap Heap Scan members(BitmapAnd(...)))``."""
    label = str(node["Node Type"])
    if "Relation Name" in node:
        label += f" {node['Relation Name']}"
    if "Index Name" in node:
        label += f" {node['Index Name']}"
    children = [_plan_text(child) for child in node.get("Plans", [])]
    return label + (f"({', '.join(children)})" if children else "")


async def _explain(connection: AsyncConnection, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> str:
    if isinstance(params, Mapping):
        answer = await connection.scalar(text("EXPLAIN (FORMAT JSON) " + sql), dict(params))
    else:
        answer = (await connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, tuple(params))).scalar()
    document = json.loads(answer) if isinstance(answer, str) else answer
    return _plan_text(document[0]["Plan"])


async def _explain_statement(connection: AsyncConnection, statement: Select[Any]) -> str:
    """The plan of a compiled statement, its values bound as the driver binds them."""
    compiled = statement.compile(dialect=connection.dialect)
    values = compiled.construct_params()
    return await _explain(connection, compiled.string, [values[name] for name in compiled.positiontup or ()])


# --- the phases ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountResult:
    name: str
    size: int
    count: Timing
    preview: Timing


async def _counts(
    engine: AsyncEngine, shop: ShopPlaybook, at: datetime, shop_members: int, repeat: int, say: Callable[[str], None]
) -> list[CountResult]:
    """Count and preview of each definition through the compiler, at ``at`` (one time for every run)."""
    vocabulary = Vocabulary.of(shop)
    measured = []
    async with engine.connect() as connection:
        for name, document in DEFINITIONS.items():
            definition = parse_definition(document, vocabulary)

            async def audience(definition: Any = definition) -> Audience:
                return await segment_query.prepare(connection, definition, SHOP, shop, at)

            async def count(audience: Callable[[], Awaitable[Audience]] = audience) -> int:
                return await segment_query.count_members(connection, await audience())

            async def preview(audience: Callable[[], Awaitable[Audience]] = audience) -> tuple[int, list[str]]:
                return await segment_query.preview(connection, await audience(), PREVIEW_SAMPLE)

            plan = await _explain_statement(connection, segment_query.count_statement(await audience()))
            counted, size = await _timed(repeat, count)
            previewed, (preview_size, sample) = await _timed(repeat, preview)
            if preview_size != size or len(sample) != min(size, PREVIEW_SAMPLE):
                raise SystemExit(f"{name}: the preview's size {preview_size} and sample {len(sample)} for {size}")
            say(
                f"count {name}: {size:,} members ({size / shop_members:.1%} of the shop) | {counted.text()} | "
                f"{_verdict(counted.median, COUNT_TARGET_S)} (median) | plan {plan}"
            )
            say(f"  preview {name} (size and the first {PREVIEW_SAMPLE} ids): {previewed.text()}")
            say(f"  definition {json.dumps(document)}")
            measured.append(CountResult(name, size, counted, previewed))
    return measured


# The alternative: tags as rows. Hand-written, as a compiler for that design would write them.
_ROWS_EXISTS = (
    "EXISTS (SELECT FROM member_tag_rows t WHERE t.shop_id = m.shop_id AND t.member_id = m.member_id "
    "AND t.tag = :{name})"
)
_ROWS_TAGS_SQL = f"""
SELECT count(*) FROM members m
WHERE m.shop_id = :shop AND {_ROWS_EXISTS.format(name="t1")} AND {_ROWS_EXISTS.format(name="t2")}
  AND {_ROWS_EXISTS.format(name="t3")}
"""
_ROWS_MIXED_SQL = f"""
SELECT count(*) FROM members m
WHERE m.shop_id = :shop AND {_ROWS_EXISTS.format(name="t1")} AND m.net_spend >= :spend
  AND ({_ROWS_EXISTS.format(name="t2")} OR m.last_order_at > :since)
"""
_ROWS_INTERSECT_SQL = """
SELECT count(*) FROM (
    SELECT member_id FROM member_tag_rows WHERE shop_id = :shop AND tag IN (:t1, :t2, :t3)
    GROUP BY member_id HAVING count(*) = 3
) matched
"""


@dataclass(frozen=True, slots=True)
class Storage:
    array_bytes: int  # the tags column's share of the members heap
    gin_bytes: int
    rows_heap_bytes: int
    rows_index_bytes: int
    build_seconds: float
    rows: int
    tags: Timing
    mixed: Timing
    intersect: Timing


async def _storage(
    engine: AsyncEngine, counts: Sequence[CountResult], at: datetime, repeat: int, say: Callable[[str], None]
) -> Storage:
    started = time.perf_counter()
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        await connection.execute(
            text(
                "CREATE UNLOGGED TABLE member_tag_rows AS "
                "SELECT shop_id, member_id, unnest(tags) AS tag FROM members ORDER BY shop_id, member_id"
            )
        )
        await connection.execute(text("CREATE INDEX ix_member_tag_rows ON member_tag_rows (shop_id, tag, member_id)"))
    await _vacuum(engine, "VACUUM ANALYZE member_tag_rows")  # as for members: index-only scans can skip the heap
    build = time.perf_counter() - started
    try:
        sizes = await _sizes(engine)
        rows = int(await scalar(engine, "SELECT count(*) FROM member_tag_rows"))
        by_name = {result.name: result for result in counts}
        tags_doc, mixed_doc = DEFINITIONS["tags"]["all"], DEFINITIONS["mixed"]["all"]
        tag_params = {"shop": SHOP, **{f"t{i}": part["tag"] for i, part in enumerate(tags_doc, start=1)}}
        results: dict[str, Timing] = {}
        async with engine.connect() as connection:
            for name, sql, expected in (
                ("tags", _ROWS_TAGS_SQL, by_name["tags"].size),
                ("mixed", _ROWS_MIXED_SQL, by_name["mixed"].size),
                ("tags", _ROWS_INTERSECT_SQL, by_name["tags"].size),
            ):

                async def run(sql: str = sql, name: str = name) -> int:
                    return int(await connection.scalar(text(sql), _row_params(name, tag_params, mixed_doc, at)))

                plan = await _explain(connection, sql, _row_params(name, tag_params, mixed_doc, at))
                timing, size = await _timed(repeat, run)
                if size != expected:
                    raise SystemExit(f"rows {name}: {size} members, but the compiled definition counts {expected}")
                form = "intersection of rows alone" if sql is _ROWS_INTERSECT_SQL else "EXISTS per tag"
                key = "intersect" if sql is _ROWS_INTERSECT_SQL else name
                results[key] = timing
                array = by_name[name].count
                say(
                    f"count {name} on tag rows ({form}): {size:,} members | {timing.text()} | GIN array "
                    f"min {array.min * 1000:,.0f} ms, median {array.median * 1000:,.0f} ms | plan {plan}"
                )
    finally:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE IF EXISTS member_tag_rows"))
    storage = Storage(
        array_bytes=sizes["tags column"],
        gin_bytes=sizes["ix_members_tags"],
        rows_heap_bytes=sizes["member_tag_rows"],
        rows_index_bytes=sizes["ix_member_tag_rows"],
        build_seconds=build,
        rows=rows,
        tags=results["tags"],
        mixed=results["mixed"],
        intersect=results["intersect"],
    )
    say(
        f"storage: array {_mib(storage.array_bytes)} (the tags column in the members heap) + GIN "
        f"{_mib(storage.gin_bytes)} = {_mib(storage.array_bytes + storage.gin_bytes)} | rows: {storage.rows:,} rows, "
        f"heap {_mib(storage.rows_heap_bytes)} + btree {_mib(storage.rows_index_bytes)} = "
        f"{_mib(storage.rows_heap_bytes + storage.rows_index_bytes)} (built in {build:.1f} s, dropped again)"
    )
    return storage


def _row_params(
    name: str, tag_params: Mapping[str, Any], mixed: Sequence[Mapping[str, Any]], at: datetime
) -> dict[str, Any]:
    if name == "tags":
        return dict(tag_params)
    days = int(mixed[2]["any"][1]["value"])
    return {
        "shop": SHOP,
        "t1": mixed[0]["tag"],
        "spend": Decimal(str(mixed[1]["value"])),
        "t2": mixed[2]["any"][0]["tag"],
        # days_since_last_order <= d, as the compiler writes it: the last order less than d + 1 days before at
        "since": at - timedelta(days=days + 1),
    }


async def _sizes(engine: AsyncEngine) -> dict[str, int]:
    """Bytes of the relations the bench reports, and of the tags column's values in the members heap."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
                "WHERE c.relname IN ('members', 'members_pkey', 'ix_members_tags', 'member_manual_tags', "
                "'member_tag_rows', 'ix_member_tag_rows')"
            )
        )
        sizes = {str(row[0]): int(row[1]) for row in rows}
        sizes["members toast"] = int(
            await connection.scalar(
                text("SELECT coalesce(pg_relation_size(reltoastrelid), 0) FROM pg_class WHERE relname = 'members'")
            )
            or 0
        )
        sizes["tags column"] = int(await connection.scalar(text("SELECT sum(pg_column_size(tags)) FROM members")) or 0)
    return sizes


def _mib(size: int) -> str:
    return f"{size / MIB:,.0f} MiB" if size >= 10 * MIB else f"{size / MIB:,.1f} MiB"


# --- the export over HTTP ------------------------------------------------------------------------


def _memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of a process, in KiB, from /proc/<pid>/status."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def _reset_peak(pid: int) -> bool:
    """Resets the process's VmHWM to its current RSS (``clear_refs`` 5); False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Export:
    seconds: float
    first_byte: float
    rows: int
    body_bytes: int
    rss_before_kib: int
    peak_kib: int
    rss_after_kib: int
    cpu_seconds: float  # of the API process
    backend_cpu_seconds: float  # of its PostgreSQL backends


async def _export(client: httpx.AsyncClient, api: Api, database_url: str, segment_id: str, expected: int) -> Export:
    """One CSV export, streamed and counted without keeping the body: rows, bytes, time, the API's memory."""
    pid = api.pid
    _reset_peak(pid)
    before = _memory_kib(pid)
    cpu, backends = process_cpu_seconds(pid), await backend_cpu_seconds(database_url)
    lines = size = 0
    head = b""
    first_byte = 0.0
    last = b""
    started = time.perf_counter()
    path = f"/v1/shops/{SHOP}/segments/{segment_id}/export"
    async with client.stream("GET", path, params={"format": "csv"}) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"the export answered {answer.status_code}: {(await answer.aread())[:500]!r}")
        async for chunk in answer.aiter_raw():
            if not first_byte:
                first_byte = time.perf_counter() - started
            lines += chunk.count(b"\n")
            size += len(chunk)
            if len(head) < 4096:
                head += chunk[:4096]
            last = chunk[-1:] or last
    seconds = time.perf_counter() - started
    after = _memory_kib(pid)
    header = head.split(b"\r\n", 1)[0].decode()
    if header != ",".join(MEMBER_FIELDS) or lines != expected + 1 or last != b"\n":
        raise SystemExit(f"the export gave {lines} lines (expected {expected} and a header), header {header!r}")
    return Export(
        seconds=seconds,
        first_byte=first_byte,
        rows=lines - 1,
        body_bytes=size,
        rss_before_kib=before["VmRSS"],
        peak_kib=after["VmHWM"],
        rss_after_kib=after["VmRSS"],
        cpu_seconds=process_cpu_seconds(pid) - cpu,
        backend_cpu_seconds=await backend_cpu_seconds(database_url) - backends,
    )


@dataclass(frozen=True, slots=True)
class ApiResult:
    exports: tuple[Export, ...]
    preview: Timing
    size_seconds: float
    peak_resettable: bool
    rss_start_kib: int


async def _through_api(
    database_url: str, expected: int, repeat: int, work: Path, say: Callable[[str], None]
) -> ApiResult:
    api = Api(ROOT, database_url, TOKEN, work / "api.log")
    try:
        await asyncio.to_thread(api.start)
        start = _memory_kib(api.pid)
        say(
            f"api: python -m services.api from {ROOT} (pid {api.pid}), RSS {start['VmRSS'] / 1024:,.0f} MiB after "
            "start-up"
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=300) as client:
            created = await client.post(
                f"/v1/shops/{SHOP}/segments", json={"name": "bench export", "definition": EXPORT_DEFINITION}
            )
            if created.status_code != 201:
                raise SystemExit(f"creating the export segment answered {created.status_code}: {created.text[:500]}")
            segment_id = str(created.json()["segment_id"])
            started = time.perf_counter()
            detail = await client.get(f"/v1/shops/{SHOP}/segments/{segment_id}")
            size_seconds = time.perf_counter() - started
            if detail.status_code != 200 or detail.json()["size"] != expected:
                raise SystemExit(f"the export segment's size: {detail.status_code} {detail.text[:500]}")

            async def preview() -> int:
                answer = await client.post(
                    f"/v1/shops/{SHOP}/segments/preview", json={"definition": DEFINITIONS["mixed"]}
                )
                if answer.status_code != 200:
                    raise SystemExit(f"the preview answered {answer.status_code}: {answer.text[:500]}")
                return int(answer.json()["size"])

            previewed, preview_size = await _timed(repeat, preview)
            say(f"preview mixed over HTTP (POST .../segments/preview): {preview_size:,} members | {previewed.text()}")
            resettable = _reset_peak(api.pid)
            exports = []
            for index in range(repeat + 1):  # the first one untimed, as everywhere
                export = await _export(client, api, database_url, segment_id, expected)
                exports.append(export)
                say(
                    f"  export {index or 'first (untimed)'}: {export.rows:,} rows, {export.body_bytes / MIB:,.1f} "
                    f"MiB in {export.seconds:.2f} s (first byte {export.first_byte * 1000:,.0f} ms, "
                    f"{export.rows / export.seconds:,.0f} rows/s; CPU: API {export.cpu_seconds:.2f} s, PostgreSQL "
                    f"{export.backend_cpu_seconds:.2f} s) | API RSS "
                    f"{export.rss_before_kib / 1024:,.0f} MiB before, peak {export.peak_kib / 1024:,.0f} MiB, "
                    f"{export.rss_after_kib / 1024:,.0f} MiB after"
                )
    finally:
        api.stop()
    return ApiResult(tuple(exports), previewed, size_seconds, resettable, start["VmRSS"])


# --- the run -------------------------------------------------------------------------------------

_TRANSCRIPT = Transcript("audience")
_say = _TRANSCRIPT.say


async def main() -> None:
    with _TRANSCRIPT:
        await _main()


async def _main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and errors only
    members = int(os.environ.get("BENCH_MEMBERS", "1000000"))
    shops = int(os.environ.get("BENCH_SHOPS", "1"))
    repeat = int(os.environ.get("BENCH_REPEAT", "5"))
    if members < shops or shops < 1 or repeat < 1:
        raise SystemExit("BENCH_MEMBERS >= BENCH_SHOPS >= 1 and BENCH_REPEAT >= 1, please")
    shop_members = members // shops
    export_rows = min(EXPORT_ROWS, shop_members)
    shop = load_playbook().for_shop(SHOP)
    r = shop.reference_order_value
    t0 = datetime.now(UTC).replace(microsecond=0)

    database = f"audience_bench_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(database)
    engine = create_async_engine(database_url)
    try:
        version = str(await scalar(engine, "SELECT version()")).split(",")[0]
        _say(machine_line(version))
        started = time.perf_counter()
        await _load(engine, members, shops, t0, r)
        load_seconds = time.perf_counter() - started
        loaded = int(await scalar(engine, "SELECT count(*) FROM members"))
        manual = int(await scalar(engine, "SELECT count(*) FROM member_manual_tags"))
        per_member = await scalar(
            engine,
            "SELECT json_build_array(min(n), percentile_disc(0.5) WITHIN GROUP (ORDER BY n), max(n), avg(n)) "
            "FROM (SELECT cardinality(tags) AS n FROM members) counts",
        )
        least, median, most, mean = per_member if isinstance(per_member, list) else json.loads(per_member)
        distinct = int(await scalar(engine, "SELECT count(DISTINCT tag) FROM members, unnest(tags) AS tag"))
        sizes = await _sizes(engine)
        _say(
            f"load: {loaded:,} members in {shops} shop{'s' if shops > 1 else ''} ({shop_members:,} in {SHOP}), "
            f"{manual:,} manual tags ({export_rows:,} of them {EXPORT_TAG}) in {load_seconds:.1f} s (set-based SQL and "
            f"VACUUM ANALYZE; not a target) | tags per member min {least}, median {median}, mean {float(mean):.1f}, "
            f"max {most}; {distinct} distinct tags"
        )
        _say(
            f"sizes: members heap {_mib(sizes['members'])} (TOAST {_mib(sizes['members toast'])}, the tags column "
            f"{_mib(sizes['tags column'])} of it), primary key {_mib(sizes['members_pkey'])}, GIN ix_members_tags "
            f"{_mib(sizes['ix_members_tags'])}, member_manual_tags {_mib(sizes['member_manual_tags'])}"
        )

        at = datetime.now(UTC)  # as the API would evaluate them now; one time for all the compiler's runs
        counts = await _counts(engine, shop, at, shop_members, repeat, _say)
        await engine.dispose()  # the API gets the cores' attention; the pool is reopened for the side table
        with tempfile.TemporaryDirectory(prefix="audience-bench-") as directory:
            api = await _through_api(database_url, export_rows, repeat, Path(directory), _say)
        storage = await _storage(engine, counts, at, repeat, _say)
    finally:
        await engine.dispose()
        await admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    timed = api.exports[1:]
    export_seconds = Timing(api.exports[0].seconds, tuple(export.seconds for export in timed))
    export_verdict = _verdict(export_seconds.median, EXPORT_TARGET_S)
    if export_rows < EXPORT_ROWS:
        export_verdict = f"target for {EXPORT_ROWS:,} rows not measured at this size"
    peak = max(export.peak_kib for export in timed) / 1024
    baseline = min(export.rss_before_kib for export in timed) / 1024
    peak_note = "reset before each export" if api.peak_resettable else "since start-up: clear_refs refused"
    _say(
        f"export: {export_rows:,} rows, {timed[0].body_bytes / MIB:,.1f} MiB of CSV over HTTP | "
        f"{export_seconds.text('s')} | {export_verdict} (median) | API RSS {baseline:,.0f} MiB before an export, "
        f"peak {peak:,.0f} MiB during one ({peak_note}), {api.rss_start_kib / 1024:,.0f} MiB after start-up | "
        f"size of the export segment through GET .../segments/<id> {api.size_seconds * 1000:,.0f} ms"
    )

    def count_figure(result: CountResult) -> str:
        return (
            f"{result.name} {result.size / shop_members:.1%} min {result.count.min * 1000:,.0f} ms median "
            f"{result.count.median * 1000:,.0f} ms ({'met' if result.count.median < COUNT_TARGET_S else 'MISSED'})"
        )

    _say(
        f"audience bench: {members:,} members, {shops} shop{'s' if shops > 1 else ''} | counts (target < 1 s): "
        + ", ".join(count_figure(result) for result in counts)
        + f" | preview mixed median {counts[0].preview.median * 1000:,.0f} ms | export {export_rows:,} rows CSV over "
        f"HTTP min {export_seconds.min:.2f} s median {export_seconds.median:.2f} s ({export_verdict}), API peak RSS "
        f"{peak:,.0f} MiB against {baseline:,.0f} MiB before | tags count as GIN array "
        f"{counts[1].count.median * 1000:,.0f} ms vs as rows with EXISTS {storage.tags.median * 1000:,.0f} ms "
        f"(medians), storage {_mib(storage.array_bytes + storage.gin_bytes)} vs "
        f"{_mib(storage.rows_heap_bytes + storage.rows_index_bytes)} | load {load_seconds:.0f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
