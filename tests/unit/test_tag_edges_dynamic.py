"""The dynamic tags at their edges: one case just inside (the tag is present), one just outside (absent).

The helpers and the other groups' tables are in test_tag_edges.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.builders import posted_review
from tests.unit.test_tag_edges import (
    DAY,
    EPS,
    NEW_YEAR,
    NEW_YORK,
    NOW,
    Case,
    Edge,
    assert_one_change,
    bought,
    by_fields,
    by_time,
    local,
    reviewed,
    window,
)

LAST_ORDER = local(2025, 1, 10, 12)
JOINED = local(2025, 1, 10, 12)
EXPIRY = local(2025, 9, 1, 10)
YEAR_END_JOIN = local(2024, 12, 31, 9)  # a Tuesday; the 2025 anniversary's week runs 29 Dec 2025 to 4 Jan 2026
BIRTHDAY_WEEK = local(2025, 12, 29)  # Monday of the week of 1 January 2026
BIRTHDAY_WEEK_END = local(2026, 1, 5)


def paid_between(tag: str, inside: datetime, outside: datetime, label: str = "", **fields: Any) -> Edge:
    """One order paid at ``inside`` or at ``outside``, looked at 30 days after the later."""
    at = max(inside, outside) + 30 * DAY
    return Edge(tag, Case(at, fields, (bought(inside),)), Case(at, fields, (bought(outside),)), label)


DYNAMIC = [
    by_time("dynamic.birthday_this_month", local(2025, 7, 1), local(2025, 7, 1) - EPS, birthday="07-15"),
    by_time("dynamic.birthday_this_month", local(2025, 8, 1) - EPS, local(2025, 8, 1), birthday="07-15", label="end"),
    by_time(
        "dynamic.birthday_this_month",
        local(2025, 7, 1, tz=NEW_YORK),
        local(2025, 7, 1, tz=NEW_YORK) - EPS,
        birthday="07-15",
        timezone=NEW_YORK,
        label="member's zone",
    ),
    by_fields(
        "dynamic.birthday_this_month",
        {"birthday": "07-15"},
        {"birthday": "07-15", "timezone": NEW_YORK},
        at=local(2025, 7, 1),
        label="shop's zone",
    ),
    by_time("dynamic.birthday_this_month", NEW_YEAR, NEW_YEAR - EPS, birthday="01-05", label="new year"),
    by_time("dynamic.birthday_this_month", NEW_YEAR - EPS, NEW_YEAR, birthday="12-25", label="old year"),
    by_time("dynamic.birthday_next_month", local(2025, 12, 1), local(2025, 12, 1) - EPS, birthday="01-05"),
    by_time("dynamic.birthday_next_month", NEW_YEAR - EPS, NEW_YEAR, birthday="01-05", label="year end"),
    by_fields(
        "dynamic.birthday_next_month",
        {"birthday": "01-05"},
        {"birthday": "01-05", "timezone": NEW_YORK},
        at=local(2025, 12, 1),
        label="shop's zone",
    ),
    by_time("dynamic.birthday_this_week", BIRTHDAY_WEEK, BIRTHDAY_WEEK - EPS, birthday="01-01"),
    by_time("dynamic.birthday_this_week", BIRTHDAY_WEEK_END - EPS, BIRTHDAY_WEEK_END, birthday="12-31", label="31 Dec"),
    by_fields(
        "dynamic.birthday_this_week",
        {"birthday": "01-01"},
        {"birthday": "01-01", "timezone": NEW_YORK},
        at=BIRTHDAY_WEEK,
        label="shop's zone",
    ),
    # 28 February 2027 is a Sunday: a 29 February birthday is that week's, not the next one's.
    by_time(
        "dynamic.birthday_this_week", local(2027, 3, 1) - EPS, local(2027, 3, 1), birthday="2000-02-29", label="29 Feb"
    ),
    by_time("dynamic.birthday_today", local(2025, 2, 28), local(2025, 2, 28) - EPS, birthday="02-29"),
    by_time("dynamic.birthday_today", local(2025, 3, 1) - EPS, local(2025, 3, 1), birthday="02-29", label="1 Mar"),
    by_time("dynamic.birthday_today", local(2028, 2, 29), local(2028, 2, 29) - EPS, birthday="02-29", label="leap"),
    by_time(
        "dynamic.birthday_today",
        local(2025, 6, 11, tz=NEW_YORK),
        local(2025, 6, 11, tz=NEW_YORK) - EPS,
        birthday="06-11",
        timezone=NEW_YORK,
        label="member's zone",
    ),
    by_fields(
        "dynamic.birthday_today",
        {"birthday": "06-11"},
        {"birthday": "06-11", "timezone": NEW_YORK},
        at=local(2025, 6, 11),
        label="shop's zone",
    ),
    by_time("dynamic.join_anniversary_this_week", BIRTHDAY_WEEK, BIRTHDAY_WEEK - EPS, joined_at=YEAR_END_JOIN),
    by_time(
        "dynamic.join_anniversary_this_week",
        BIRTHDAY_WEEK_END - EPS,
        BIRTHDAY_WEEK_END,
        joined_at=YEAR_END_JOIN,
        label="next year",
    ),
    by_time(
        "dynamic.join_anniversary_this_week",
        BIRTHDAY_WEEK,
        local(2025, 1, 2),
        joined_at=YEAR_END_JOIN,
        label="not the week of joining",
    ),
    by_time(
        "dynamic.join_anniversary_this_month",
        local(2025, 3, 1),
        local(2025, 3, 1) - EPS,
        joined_at=local(2024, 3, 15, 9),
    ),
    by_time(
        "dynamic.join_anniversary_this_month",
        local(2025, 4, 1) - EPS,
        local(2025, 4, 1),
        joined_at=local(2024, 3, 15, 9),
        label="end",
    ),
    by_time(
        "dynamic.join_anniversary_this_month",
        local(2025, 3, 20),
        local(2024, 3, 20),
        joined_at=local(2024, 3, 15, 9),
        label="not the month of joining",
    ),
    by_time(
        "dynamic.join_anniversary_this_month",
        NEW_YEAR - EPS,
        NEW_YEAR,
        joined_at=local(2024, 12, 15, 9),
        label="December",
    ),
    *(
        by_time(
            f"dynamic.ordered_last_{days}_days",
            LAST_ORDER + days * DAY - EPS,
            LAST_ORDER + days * DAY,
            last_order_at=LAST_ORDER,
            paid_orders=1,
        )
        for days in (7, 30, 90, 180, 365)
    ),
    *(
        by_time(
            f"dynamic.no_order_{days}_days",
            LAST_ORDER + days * DAY,
            LAST_ORDER + days * DAY - EPS,
            last_order_at=LAST_ORDER,
            paid_orders=1,
        )
        for days in (90, 180, 365)
    ),
    by_fields("dynamic.no_order_90_days", {"last_order_at": LAST_ORDER}, {}, label="never ordered"),
    *(
        by_time(f"dynamic.joined_last_{days}_days", JOINED + days * DAY - EPS, JOINED + days * DAY, joined_at=JOINED)
        for days in (7, 30, 90)
    ),
    by_time("dynamic.ordered_this_month", local(2025, 7, 1) - EPS, local(2025, 7, 1), last_order_at=local(2025, 6, 1)),
    by_fields(
        "dynamic.ordered_this_month",
        {"last_order_at": local(2025, 6, 1)},
        {"last_order_at": local(2025, 6, 1) - EPS},
        label="last month",
    ),
    by_fields(
        "dynamic.ordered_this_month",
        {"last_order_at": local(2025, 6, 1)},
        {"last_order_at": local(2025, 6, 1), "timezone": NEW_YORK},
        label="shop's zone",
    ),
    *(
        edge
        for days in (7, 30)
        for edge in (
            by_time(
                f"dynamic.points_expiring_{days}_days",
                EXPIRY - days * DAY,
                EXPIRY - days * DAY - EPS,
                points_expiries=[EXPIRY],
            ),
            by_time(
                f"dynamic.points_expiring_{days}_days",
                EXPIRY - EPS,
                EXPIRY,
                points_expiries=[EXPIRY, EXPIRY + 365 * DAY],
                label="expiry",
            ),
            by_fields(
                f"dynamic.points_expiring_{days}_days",
                {"points_expiries": [EXPIRY - 40 * DAY, EXPIRY]},
                {"points_expiries": [EXPIRY - 40 * DAY]},
                at=EXPIRY - days * DAY,
                label="after an expiry not booked yet",
            ),
        )
    ),
    by_time(
        "dynamic.reviewed_last_90_days",
        NOW + 90 * DAY - EPS,
        NOW + 90 * DAY,
        reviewed(posted_review(NOW - 5 * DAY), posted_review(NOW)),
    ),
    paid_between("dynamic.promo_618_buyer", local(2025, 6, 1), local(2025, 6, 1) - EPS),
    paid_between("dynamic.promo_618_buyer", local(2025, 6, 19) - EPS, local(2025, 6, 19), label="end"),
    by_fields(  # 1 June 00:00 in Shanghai is still 31 May in New York
        "dynamic.promo_618_buyer",
        {},
        {"timezone": NEW_YORK},
        bought(local(2025, 6, 1)),
        at=local(2025, 7, 1),
        label="shop's zone",
    ),
    window("dynamic.promo_618_buyer", local(2025, 6, 18, 20)),
    paid_between("dynamic.promo_1111_buyer", local(2025, 11, 1), local(2025, 11, 1) - EPS),
    paid_between("dynamic.promo_1111_buyer", local(2025, 11, 12) - EPS, local(2025, 11, 12), label="end"),
    window("dynamic.promo_1111_buyer", local(2025, 11, 11, 20)),
    paid_between("dynamic.promo_1212_buyer", local(2025, 12, 1), local(2025, 12, 1) - EPS),
    paid_between("dynamic.promo_1212_buyer", local(2025, 12, 13) - EPS, local(2025, 12, 13), label="end"),
    window("dynamic.promo_1212_buyer", local(2025, 12, 12, 20)),
    paid_between("dynamic.spring_buyer", local(2025, 3, 1), local(2025, 3, 1) - EPS),
    paid_between("dynamic.spring_buyer", local(2025, 6, 1) - EPS, local(2025, 6, 1), label="end"),
    window("dynamic.spring_buyer", local(2025, 4, 1, 12)),
    paid_between("dynamic.summer_buyer", local(2025, 6, 1), local(2025, 6, 1) - EPS),
    paid_between("dynamic.summer_buyer", local(2025, 9, 1) - EPS, local(2025, 9, 1), label="end"),
    window("dynamic.summer_buyer", local(2025, 7, 1, 12)),
    paid_between("dynamic.autumn_buyer", local(2025, 9, 1), local(2025, 9, 1) - EPS),
    paid_between("dynamic.autumn_buyer", local(2025, 12, 1) - EPS, local(2025, 12, 1), label="end"),
    window("dynamic.autumn_buyer", local(2025, 10, 1, 12)),
    paid_between("dynamic.winter_buyer", local(2024, 12, 1), local(2024, 12, 1) - EPS),
    paid_between("dynamic.winter_buyer", local(2025, 3, 1) - EPS, local(2025, 3, 1), label="end"),
    window("dynamic.winter_buyer", local(2025, 1, 1, 12)),
]


@pytest.mark.parametrize("edge", DYNAMIC, ids=[edge.id for edge in DYNAMIC])
def test_each_dynamic_tag_is_present_just_inside_its_edge_and_absent_just_outside(edge: Edge) -> None:
    assert_one_change(edge)
    assert edge.tag in edge.inside.tags()
    assert edge.tag not in edge.outside.tags()
