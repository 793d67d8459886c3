"""The inputs audiences read: profile attributes, order categories and external tags, applied in business time."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from typing import Any

import pytest

from shared.domain.categories import category_slug, item_categories
from shared.domain.engagement import MemberContext
from shared.domain.events import PROFILE_FIELDS, MemberJoined, ProfileUpdated
from shared.domain.model import Event, ExternalTag, Member, Order
from tests.builders import item, joined, order_created, order_paid, profile_updated, tags_changed
from tests.unit.test_engagement_domain import at, run

# --- profile attributes ---------------------------------------------------------------------------

ATTRIBUTES: dict[str, Any] = {
    "gender": "female",
    "birth_year": 1990,
    "province": "Zhejiang",
    "city": "Hangzhou",
    "store_id": "st-1",
}


def test_every_profile_field_is_named_alike_on_both_events_and_the_member() -> None:
    for kind in (MemberJoined, ProfileUpdated, Member):
        assert set(PROFILE_FIELDS) <= set(kind.__dataclass_fields__), kind


def test_a_join_sets_the_profile_attributes_and_notes_when() -> None:
    context, outcomes = run([joined(at(0)), profile_updated(at(1), **ATTRIBUTES)])
    member = context.member
    assert {name: getattr(member, name) for name in ATTRIBUTES} == ATTRIBUTES
    assert {name: member.profile_at[name] for name in ATTRIBUTES} == dict.fromkeys(ATTRIBUTES, at(1))
    assert member.last_event_at == at(1)
    assert [outcome.actions for outcome in outcomes] == [[], []]


def test_only_the_attributes_given_change() -> None:
    context, _ = run([profile_updated(at(0), **ATTRIBUTES), profile_updated(at(1), city="Ningbo")])
    assert (context.member.city, context.member.province, context.member.gender) == ("Ningbo", "Zhejiang", "female")
    assert (context.member.profile_at["city"], context.member.profile_at["province"]) == (at(1), at(0))


def test_an_update_consumed_late_but_dated_earlier_does_not_overwrite_a_newer_value() -> None:
    newer = profile_updated(at(2), city="Ningbo", gender="male")
    older = profile_updated(at(1), city="Hangzhou", store_id="st-9", birth_year=1985)
    in_order, _ = run([older, newer])
    late, _ = run([newer, older])
    assert (late.member.city, late.member.gender) == ("Ningbo", "male")
    # the older update's other fields were never given later, so they still apply
    assert (late.member.store_id, late.member.birth_year) == ("st-9", 1985)
    assert (late.member, late.orders) == (in_order.member, in_order.orders)


def test_a_join_consumed_after_a_later_update_keeps_the_updated_attributes() -> None:
    join = joined(at(0), gender="unknown", city="Hangzhou", province="Zhejiang")
    update = profile_updated(at(2), gender="other", city="Ningbo")
    late_join, _ = run([update, join])
    assert (late_join.member.gender, late_join.member.city, late_join.member.province) == (
        "other",
        "Ningbo",
        "Zhejiang",
    )
    assert late_join.member == run([join, update])[0].member


def test_two_updates_at_the_same_time_the_one_consumed_last_wins_as_for_every_profile_field() -> None:
    first = profile_updated(at(1), city="Hangzhou", birthday="05-01", event_id="first")
    second = profile_updated(at(1), city="Ningbo", birthday="06-01", event_id="second")
    context, _ = run([first, second])
    assert (context.member.city, context.member.birthday) == ("Ningbo", "06-01")


# --- categories ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Tea", "tea"),
        ("Tea & Cups", "tea___cups"),
        ("tea-ware", "tea_ware"),
        ("Tea.Ware/2", "tea_ware_2"),
        ("ÄPFEL", "äpfel"),
        ("茶具", "茶具"),
        (" ", "_"),
        ("_", "_"),
    ],
)
def test_a_category_slug_is_lower_case_with_every_other_character_than_letters_and_digits_as_underscore(
    text: str, slug: str
) -> None:
    assert category_slug(text) == slug


def test_an_orders_categories_are_distinct_sorted_slugs_and_items_without_one_add_none() -> None:
    items = [item("a", "Tea Ware"), item("b", "tea-ware"), item("c", "Cups"), item("d"), item("e", "TEA WARE")]
    assert item_categories(items) == ["cups", "tea_ware"]
    assert item_categories([item("d")]) == item_categories([]) == []


CREATED = order_created("o-1", "30.00", at(0), items=(item("a", "Tea"), item("b", "Cups"), item("c", "tea")))
PAID_WITHOUT_ITEMS = order_paid("o-1", "30.00", at(1))
PAID_WITH_ITEMS = order_paid("o-1", "30.00", at(1), items=(item("a", "Tea"), item("b")))
PAID_WITH_UNCATEGORISED_ITEMS = order_paid("o-1", "30.00", at(1), items=(item("a"),))


def order_after(events: Sequence[Event]) -> Order:
    context, _ = run(events)
    return context.orders["o-1"]


def test_the_created_items_categories_stand_when_the_payment_carries_no_items() -> None:
    order = order_after([CREATED, PAID_WITHOUT_ITEMS])
    assert (order.created_categories, order.paid_categories, order.categories) == (
        ["cups", "tea"],
        None,
        ["cups", "tea"],
    )


def test_the_paid_items_categories_take_precedence() -> None:
    order = order_after([CREATED, PAID_WITH_ITEMS])
    assert (order.created_categories, order.paid_categories, order.categories) == (["cups", "tea"], ["tea"], ["tea"])


def test_paid_items_without_categories_leave_the_order_without_categories() -> None:
    order = order_after([CREATED, PAID_WITH_UNCATEGORISED_ITEMS])
    assert (order.paid_categories, order.categories) == ([], [])


def test_an_order_paid_alone_has_the_categories_of_its_items_or_none() -> None:
    assert order_after([PAID_WITH_ITEMS]).categories == ["tea"]
    without_items = order_after([PAID_WITHOUT_ITEMS])
    assert (without_items.created_categories, without_items.categories) == ([], [])


@pytest.mark.parametrize("paid", [PAID_WITHOUT_ITEMS, PAID_WITH_ITEMS, PAID_WITH_UNCATEGORISED_ITEMS])
def test_categories_do_not_depend_on_whether_the_payment_or_the_creation_is_consumed_first(paid: Event) -> None:
    assert order_after([paid, CREATED]) == order_after([CREATED, paid])


def test_the_categories_of_the_earliest_creation_and_the_first_payment_are_kept() -> None:
    recreated_later = order_created("o-1", "40.00", at(0.5), items=(item("x", "Shoes"),), event_id="again")
    paid_again = order_paid("o-1", "30.00", at(2), items=(item("y", "Bags"),), event_id="paid-again")
    order = order_after([recreated_later, CREATED, PAID_WITH_ITEMS, paid_again])
    assert (order.created_categories, order.paid_categories) == (["cups", "tea"], ["tea"])


# --- external tags ---------------------------------------------------------------------------------

VIP, BOUNCED = "external.vip_club", "external.newsletter_bounced"


def tags_after(events: Sequence[Event]) -> MemberContext:
    context, outcomes = run(events)
    assert all(outcome.actions == [] and not outcome.parked for outcome in outcomes)
    return context


def test_tags_are_set_and_removed_with_the_time_of_the_change() -> None:
    context = tags_after([tags_changed(at(1), add=(VIP, BOUNCED)), tags_changed(at(2), remove=(BOUNCED,))])
    assert context.member.external_tags == {VIP: ExternalTag(True, at(1)), BOUNCED: ExternalTag(False, at(2))}


def test_a_change_of_tags_is_member_activity_like_any_member_event() -> None:
    context = tags_after([joined(at(0)), tags_changed(at(3), add=(VIP,))])
    assert (context.member.last_event_at, context.member.joined_at) == (at(3), at(0))
    assert tags_after([tags_changed(at(3), remove=(VIP,))]).member.last_event_at == at(3)


def test_a_removal_of_a_tag_never_set_is_kept_so_a_late_older_addition_stays_undone() -> None:
    removed = tags_changed(at(2), remove=(VIP,))
    added = tags_changed(at(1), add=(VIP,))
    assert tags_after([removed, added]).member.external_tags == {VIP: ExternalTag(False, at(2))}


CHANGES = [
    tags_changed(at(1), add=(VIP, BOUNCED)),
    tags_changed(at(2), remove=(VIP,)),
    tags_changed(at(3), add=(VIP,), remove=(BOUNCED,)),
    tags_changed(at(4), add=(BOUNCED,)),
]


@pytest.mark.parametrize("arrival", list(permutations(CHANGES)))
def test_any_arrival_order_of_changes_at_distinct_times_gives_the_business_time_state(
    arrival: tuple[Event, ...],
) -> None:
    expected = {VIP: ExternalTag(True, at(3)), BOUNCED: ExternalTag(True, at(4))}
    assert tags_after(arrival).member.external_tags == expected


def test_each_tag_follows_its_own_latest_change() -> None:
    late_for_one_tag = tags_changed(at(2), add=(VIP,), remove=(BOUNCED,))
    context = tags_after([tags_changed(at(3), remove=(VIP,)), late_for_one_tag])
    assert context.member.external_tags == {VIP: ExternalTag(False, at(3)), BOUNCED: ExternalTag(False, at(2))}


def test_of_two_changes_at_the_same_time_the_one_consumed_last_wins() -> None:
    add = tags_changed(at(1), add=(VIP,), event_id="add")
    remove = tags_changed(at(1), remove=(VIP,), event_id="remove")
    assert tags_after([add, remove]).member.external_tags == {VIP: ExternalTag(False, at(1))}
    assert tags_after([remove, add]).member.external_tags == {VIP: ExternalTag(True, at(1))}


def test_changes_applied_again_leave_the_tags_as_they_were() -> None:
    once = tags_after(CHANGES)
    assert tags_after(CHANGES + CHANGES).member == once.member


def test_other_external_tags_are_left_alone() -> None:
    context = tags_after([tags_changed(at(1), add=(VIP,)), tags_changed(at(2), remove=("external.other",))])
    assert context.member.external_tags[VIP] == ExternalTag(True, at(1))
