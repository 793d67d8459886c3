"""Segment definitions: what parses, what is refused (naming the bad node's path), and what a definition means."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.rfm import RfmEdges, rfm_scores, rfm_segment
from shared.domain.segments import (
    MAX_DEFINITION_BYTES,
    MAX_DEPTH,
    AllOf,
    AnyOf,
    Comparison,
    HasTag,
    InvalidDefinitionError,
    LocalYears,
    MemberView,
    Node,
    Not,
    Vocabulary,
    depth,
    known_zones,
    matches,
    parse_definition,
    rfm_cell,
    rfm_cells,
    tier_codes,
)
from shared.playbook_file import load_playbook

SHOP = load_playbook().default  # tiers member < advanced < vip < supreme; Asia/Shanghai
VOCABULARY = Vocabulary.of(SHOP)
AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _parse(document: object) -> Node:
    return parse_definition(document, VOCABULARY)


def _refused(document: object) -> InvalidDefinitionError:
    with pytest.raises(InvalidDefinitionError) as caught:
        _parse(document)
    return caught.value


def _field(name: str, op: str, value: object) -> dict[str, object]:
    return {"field": name, "op": op, "value": value}


def _nested(levels: int) -> dict[str, Any]:
    """A definition ``levels`` deep: ``not`` around ``not`` ... around one comparison."""
    document: dict[str, Any] = _field("score", ">", 1)
    for _ in range(levels - 1):
        document = {"not": document}
    return document


# --- parsing ------------------------------------------------------------------------------------


def test_every_node_kind_parses_into_the_tree() -> None:
    document = {
        "all": [
            {"any": [{"tag": "profile.female"}, {"tag": "manual.vip"}, {"tag": "purchase.category_女装_2"}]},
            {"not": _field("gender", "=", "female")},
            _field("net_spend", "between", ["100.50", 300]),
            _field("tier", "in", ["vip", "supreme"]),
            _field("last_order_at", ">=", "2025-01-01T08:00:00+08:00"),
            _field("marketing_consent", "=", True),
            _field("average_order_value", ">", 12.5),
        ]
    }
    tree = _parse(document)
    assert isinstance(tree, AllOf)
    assert tree.parts[0] == AnyOf((HasTag("profile.female"), HasTag("manual.vip"), HasTag("purchase.category_女装_2")))
    assert tree.parts[1] == Not(Comparison("gender", "=", ("female",)))
    assert tree.parts[2] == Comparison("net_spend", "between", (Decimal("100.50"), Decimal(300)))
    assert tree.parts[3] == Comparison("tier", "in", ("vip", "supreme"))
    assert tree.parts[4] == Comparison("last_order_at", ">=", (datetime(2025, 1, 1, 0, 0, tzinfo=UTC),))
    assert tree.parts[5] == Comparison("marketing_consent", "=", (True,))
    assert tree.parts[6] == Comparison("average_order_value", ">", (Decimal("12.5"),))
    assert isinstance(tree.parts[1], Not)
    assert tree.parts[0].parts[1] == HasTag("manual.vip")
    assert HasTag("manual.vip").manual
    assert not HasTag("profile.female").manual


@pytest.mark.parametrize(
    ("document", "path", "problem"),
    [
        ([], "definition", "expected an object"),
        ({}, "definition", "needs one of"),
        ({"all": [], "any": []}, "definition", "more than one of"),
        ({"all": "x"}, "definition.all", "expected a list"),
        ({"all": [{"tag": "profile.x"}], "extra": 1}, "definition.extra", "unknown key"),
        ({"not": {"tag": "profile.x"}, "weird key!": 1}, "definition.…", "unknown key"),
        ({"all": [1]}, "definition.all[0]", "expected an object"),
        ({"all": [{"tag": "a.b"}]}, "definition.all[0].tag", "unknown tag group"),
        ({"tag": "profile"}, "definition.tag", "unknown tag group"),
        ({"tag": "profile.Upper"}, "definition.tag", "malformed tag id"),
        ({"tag": "external.with space"}, "definition.tag", "malformed tag id"),
        ({"tag": "manual."}, "definition.tag", "malformed tag id"),
        ({"tag": "profile.x\u0000"}, "definition.tag", "malformed tag id"),
        ({"tag": "engagement.category_女装"}, "definition.tag", "malformed tag id"),
        ({"tag": "purchase.category_a b"}, "definition.tag", "malformed tag id"),
        ({"tag": "profile." + "x" * 300}, "definition.tag", "malformed tag id"),
        ({"tag": 5}, "definition.tag", "expected a tag id"),
        ({"not": {"field": "height", "op": "=", "value": 1}}, "definition.not.field", "unknown field"),
        ({"field": 1, "op": "=", "value": 1}, "definition.field", "unknown field"),
        ({"field": "score", "value": 1}, "definition.op", "missing"),
        ({"field": "score", "op": "~", "value": 1}, "definition.op", "unknown operator"),
        ({"field": "score", "op": ["="], "value": 1}, "definition.op", "unknown operator"),
        ({"field": "stage", "op": ">", "value": "new"}, "definition.op", "stage takes only =, !=, in"),
        ({"field": "city", "op": "between", "value": ["a", "b"]}, "definition.op", "city takes only"),
        ({"field": "marketing_consent", "op": "in", "value": [True]}, "definition.op", "takes only =, !="),
        ({"field": "score", "op": "="}, "definition.value", "missing"),
        (_field("score", "=", "12"), "definition.value", "expected a number"),
        (_field("score", "=", True), "definition.value", "expected a number"),
        (_field("score", "=", None), "definition.value", "expected a number"),
        (_field("score", "=", float("inf")), "definition.value", "expected a number"),
        (_field("score", "=", 10**16), "definition.value", "out of range"),
        (_field("net_spend", "=", "12,5"), "definition.value", "a number or a decimal string"),
        (_field("net_spend", "=", "1e3"), "definition.value", "a number or a decimal string"),
        (_field("net_spend", "=", "١٢"), "definition.value", "a number or a decimal string"),
        (_field("gender", "=", 1), "definition.value", "expected a string"),
        (_field("gender", "=", "a\u0000b"), "definition.value", "NUL"),
        (_field("city", "=", "\ud800"), "definition.value", "surrogates"),
        (_field("marketing_consent", "=", "true"), "definition.value", "expected true or false"),
        (_field("marketing_consent", "=", 1), "definition.value", "expected true or false"),
        (_field("joined_at", ">", "2025-01-01"), "definition.value", "RFC 3339"),
        (_field("joined_at", ">", "2025-01-01T10:00:00"), "definition.value", "RFC 3339"),
        (_field("joined_at", ">", "2025-13-01T10:00:00Z"), "definition.value", "RFC 3339"),
        (_field("joined_at", ">", "0001-01-01T00:00:00+08:00"), "definition.value", "RFC 3339"),
        (_field("joined_at", ">", 1735689600), "definition.value", "RFC 3339"),
        (_field("tier", "=", "gold"), "definition.value", "unknown tier"),
        (_field("tier", ">", 2), "definition.value", "expected a string"),
        (_field("stage", "=", "sleeping"), "definition.value", "unknown lifecycle stage"),
        (_field("rfm_segment", "=", "whales"), "definition.value", "unknown RFM segment"),
        (_field("score", "in", 5), "definition.value", "'in' takes a list"),
        (_field("score", "in", []), "definition.value", "'in' takes a list"),
        (_field("score", "in", list(range(1001))), "definition.value", "'in' takes a list"),
        (_field("score", "in", [1, "2"]), "definition.value[1]", "expected a number"),
        (_field("score", "between", [1]), "definition.value", "'between' takes a list of two"),
        (_field("score", "between", [1, 2, 3]), "definition.value", "'between' takes a list of two"),
        (_field("score", "between", 1), "definition.value", "'between' takes a list of two"),
        (_field("score", "between", [1, [2]]), "definition.value[1]", "expected a number"),
        (_field("score", "=", [1]), "definition.value", "expected a number"),
    ],
)
def test_a_bad_node_is_refused_with_its_path(document: object, path: str, problem: str) -> None:
    error = _refused(document)
    assert error.path == path
    assert problem in error.problem
    assert str(error).startswith(f"{path}: ")


def test_the_path_names_the_node_deep_inside() -> None:
    document = {
        "all": [
            {"tag": "profile.x"},
            {"tag": "profile.y"},
            {"any": [_field("score", ">=", "high"), {"tag": "profile.z"}]},
        ]
    }
    assert _refused(document).path == "definition.all[2].any[0].value"


def test_messages_never_quote_the_rejected_value() -> None:
    secret = "'; DROP TABLE members; --"
    for document in (
        _field(secret, "=", 1),
        _field("score", secret, 1),
        _field("score", "=", secret),
        {"tag": secret},
        {"tag": "profile." + secret},
        _field("tier", "=", secret),
        {secret: 1},
        {"all": [], secret: 1},
    ):
        assert secret not in str(_refused(document))


def test_depth_32_is_accepted_and_33_refused() -> None:
    assert depth(_parse(_nested(MAX_DEPTH))) == MAX_DEPTH
    error = _refused(_nested(MAX_DEPTH + 1))
    assert error.path == "definition" + ".not" * MAX_DEPTH
    assert "deeper than 32" in error.problem
    # Lists count as levels too.
    document: dict[str, Any] = {"tag": "profile.x"}
    for index in range(MAX_DEPTH):
        document = {"all": [document]} if index % 2 else {"any": [{"tag": "profile.y"}, document]}
    assert "deeper than 32" in _refused(document).problem


def test_a_definition_over_64_kb_of_json_is_refused() -> None:
    def sized(count: int) -> dict[str, Any]:
        return {"any": [{"tag": f"external.t{index:06d}"} for index in range(count)]}

    per_tag = len('{"tag":"external.t000000"},')
    fits = (MAX_DEFINITION_BYTES - len('{"any":[]}')) // per_tag
    small = sized(fits)
    assert len(json.dumps(small, separators=(",", ":")).encode()) <= MAX_DEFINITION_BYTES
    _parse(small)
    error = _refused(sized(fits + 1))
    assert (error.path, "larger than 64 KB" in error.problem) == ("definition", True)
    # Multi-byte text counts in bytes.
    wide = {"any": [_field("city", "in", ["城" * 500] * 20)] * 3}
    assert "larger than 64 KB" in _refused(wide).problem


def test_money_takes_decimal_strings_and_numbers_are_exact() -> None:
    assert _parse(_field("net_spend", "=", "0.10")) == Comparison("net_spend", "=", (Decimal("0.10"),))
    assert _parse(_field("score", "<", 0.1)) == Comparison("score", "<", (Decimal("0.1"),))
    assert _parse(_field("score", "<", -(10**15))) == Comparison("score", "<", (Decimal(-(10**15)),))
    # Integers too long for int() arrive as Decimal from the API's JSON parser.
    assert _parse(_field("score", "<", Decimal(12))) == Comparison("score", "<", (Decimal(12),))


def test_times_take_any_offset_and_fractions() -> None:
    parsed = _parse(_field("joined_at", "=", "2025-06-01t10:00:00.1234567-02:30"))
    assert parsed == Comparison("joined_at", "=", (datetime(2025, 6, 1, 12, 30, 0, 123456, tzinfo=UTC),))
    assert _parse(_field("joined_at", "=", "2025-06-01 10:00:00z")) == Comparison(
        "joined_at", "=", (datetime(2025, 6, 1, 10, 0, tzinfo=UTC),)
    )


def test_without_a_vocabulary_any_tier_or_rfm_name_parses() -> None:
    assert parse_definition(_field("tier", ">=", "retired")) == Comparison("tier", ">=", ("retired",))
    assert parse_definition(_field("rfm_segment", "=", "whales")) == Comparison("rfm_segment", "=", ("whales",))
    with pytest.raises(InvalidDefinitionError):
        parse_definition(_field("stage", "=", "sleeping"))


def test_empty_lists_hold_for_everyone_and_no_one() -> None:
    member = MemberView("m-1")
    assert matches(_parse({"all": []}), member, AT, SHOP)
    assert not matches(_parse({"any": []}), member, AT, SHOP)


# --- meaning ------------------------------------------------------------------------------------


def _holds(document: object, member: MemberView, *, at: datetime = AT, edges: RfmEdges | None = None) -> bool:
    return matches(_parse(document), member, at, SHOP, edges)


def test_a_missing_value_is_false_and_not_of_it_true() -> None:
    unknown = MemberView("m-1")
    female = MemberView("m-2", gender="female")
    male = MemberView("m-3", gender="male")
    is_female = _field("gender", "=", "female")
    assert [_holds(is_female, member) for member in (unknown, female, male)] == [False, True, False]
    assert [_holds({"not": is_female}, member) for member in (unknown, female, male)] == [True, False, True]
    # != on a missing value is false too: only `not` includes the unknown.
    assert [_holds(_field("gender", "!=", "female"), m) for m in (unknown, female, male)] == [False, False, True]
    for document in (
        _field("age", ">", 0),
        _field("tier", ">=", "member"),
        _field("stage", "in", ["new", "active"]),
        _field("days_since_last_order", ">=", 0),
        _field("days_since_joined", "<", 10**6),
        _field("last_order_at", "<", "2100-01-01T00:00:00Z"),
        _field("average_order_value", ">=", 0),
        _field("rfm_segment", "in", list(VOCABULARY.rfm_segments)),
    ):
        assert not _holds(document, unknown), document
        assert _holds({"not": document}, unknown), document


def test_tier_compares_by_rank_on_the_ladder() -> None:
    tiers = {code: MemberView(f"m-{code}", tier=code) for code in ("member", "advanced", "vip", "supreme")}
    retired = MemberView("m-retired", tier="retired")  # a code the ladder no longer has: no rank

    def selected(op: str, value: object) -> list[str]:
        return [code for code, member in tiers.items() if _holds(_field("tier", op, value), member)]

    assert selected(">=", "advanced") == ["advanced", "vip", "supreme"]
    assert selected(">", "advanced") == ["vip", "supreme"]
    assert selected("<", "vip") == ["member", "advanced"]
    assert selected("<=", "member") == ["member"]
    assert selected("!=", "vip") == ["member", "advanced", "supreme"]
    assert selected("between", ["advanced", "vip"]) == ["advanced", "vip"]
    assert selected("between", ["vip", "advanced"]) == []
    assert selected("in", ["supreme", "member"]) == ["member", "supreme"]
    for op, value in ((">=", "member"), ("!=", "vip"), ("in", ["member", "vip"])):
        assert not _holds(_field("tier", op, value), retired)
    # A stored definition naming a tier since removed matches no one (rather than failing).
    assert not matches(parse_definition(_field("tier", "<", "gold")), tiers["member"], AT, SHOP)
    assert tier_codes(["a", "b", "c"], ">=", ["b"]) == ("b", "c")
    assert tier_codes(["a", "b", "c"], "!=", ["gone"]) == ()
    assert tier_codes(["a", "b", "c"], "in", ["gone", "c"]) == ("c",)


def test_between_is_inclusive_at_both_ends() -> None:
    for spend, expected in (("99.99", False), ("100.00", True), ("200.00", True), ("200.01", False)):
        member = MemberView("m-1", net_spend=Decimal(spend))
        assert _holds(_field("net_spend", "between", ["100", 200]), member) is expected, spend


def test_in_matches_any_listed_value() -> None:
    assert _holds(_field("city", "in", ["杭州", "上海"]), MemberView("m", city="上海"))
    assert not _holds(_field("city", "in", ["杭州", "上海"]), MemberView("m", city="北京"))
    assert _holds(_field("paid_orders", "in", [0, 3]), MemberView("m", paid_orders=3))


def test_average_order_value_is_exact_and_missing_without_paid_orders() -> None:
    third = MemberView("m", net_spend=Decimal("100.00"), paid_orders=3)  # 33.333...
    assert _holds(_field("average_order_value", ">", "33.33"), third)
    assert _holds(_field("average_order_value", "<", "33.3333333333333334"), third)
    assert not _holds(_field("average_order_value", "=", "33.3333333333333333"), third)
    two_orders = MemberView("m", net_spend=Decimal(100), paid_orders=2)
    assert _holds(_field("average_order_value", "in", [1, "50.00"]), two_orders)
    assert not _holds(_field("average_order_value", "!=", 1), MemberView("m", net_spend=Decimal(5)))


def test_days_since_are_whole_days_rounded_down() -> None:
    just_under = MemberView("m", last_order_at=AT - timedelta(days=30) + timedelta(microseconds=1))
    exactly = MemberView("m", last_order_at=AT - timedelta(days=30))
    ahead = MemberView("m", joined_at=AT + timedelta(hours=1))  # a time after `at`: -1 day
    assert not _holds(_field("days_since_last_order", ">=", 30), just_under)
    assert _holds(_field("days_since_last_order", "=", 29), just_under)
    assert _holds(_field("days_since_last_order", "=", 30), exactly)
    assert _holds(_field("days_since_joined", "=", -1), ahead)
    assert not _holds(_field("days_since_last_order", "=", 29.5), just_under)
    assert _holds(_field("days_since_last_order", "<", 29.5), just_under)


def test_age_is_taken_in_the_members_zone_else_the_shops() -> None:
    # 2025-12-31 17:00 UTC: already 2026 in Shanghai (the shop), still 2025 in New York.
    at = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
    shanghai = MemberView("m", birth_year=2000)
    new_york = MemberView("m", birth_year=2000, timezone="America/New_York")
    unknown_zone = MemberView("m", birth_year=2000, timezone="Mars/Olympus")
    assert _holds(_field("age", "=", 26), shanghai, at=at)
    assert _holds(_field("age", "=", 25), new_york, at=at)
    assert _holds(_field("age", "=", 26), unknown_zone, at=at)
    assert _holds(_field("age", "between", [26, 26]), shanghai, at=at)


@settings(max_examples=60, deadline=None)  # the first call near New Year reads every zone once
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["Asia/Shanghai", "Pacific/Kiritimati", "Etc/GMT+12", "UTC", "Not/AZone"]),
    st.booleans(),
)
def test_local_years_agree_with_each_zone(at: datetime, shop_zone: str, near_new_year: bool) -> None:
    if near_new_year:
        at = at.replace(month=12, day=31) + timedelta(hours=at.hour - 12)
    years = LocalYears.at(at, shop_zone)
    shop_year = at.astimezone(ZoneInfo(shop_zone if shop_zone != "Not/AZone" else "UTC")).year
    assert years.shop_year == shop_year
    for name in ("Pacific/Kiritimati", "Etc/GMT+12", "America/New_York", "Asia/Shanghai", "Europe/London"):
        assert years.of(name) == at.astimezone(ZoneInfo(name)).year, name
    assert years.of(None) == years.of("Not/AZone") == shop_year
    assert "America/New_York" in known_zones()


def test_manual_tags_count_until_they_expire() -> None:
    member = MemberView(
        "m",
        tags=frozenset({"profile.female", "external.crm_vip"}),
        manual_tags={"manual.vip": None, "manual.trial": AT, "manual.later": AT + timedelta(seconds=1)},
    )
    assert _holds({"tag": "profile.female"}, member)
    assert _holds({"tag": "external.crm_vip"}, member)
    assert not _holds({"tag": "profile.male"}, member)
    assert _holds({"tag": "manual.vip"}, member)
    assert not _holds({"tag": "manual.trial"}, member)  # expires_at must be after the evaluation time
    assert _holds({"tag": "manual.later"}, member)
    assert not _holds({"tag": "manual.none"}, member)
    # A manual tag id in the built-in list does not count: manual tags live apart.
    assert not _holds({"tag": "manual.vip"}, MemberView("m", tags=frozenset({"manual.vip"})))


def test_rfm_segment_is_the_status_routes_segment() -> None:
    edges = RfmEdges(AT, (10.0, 30.0, 90.0, 200.0), (1.0, 2.0, 3.0, 5.0), (50.0, 120.0, 300.0, 800.0))
    member = MemberView("m", last_order_at=AT - timedelta(days=5), paid_orders=6, net_spend=Decimal(900))
    scores = rfm_scores(edges, member.last_order_at, member.paid_orders, member.net_spend)
    assert scores == (5, 5, 5)
    assert rfm_segment(*scores, SHOP.rfm.segments) == "champions"
    assert _holds(_field("rfm_segment", "=", "champions"), member, edges=edges)
    assert _holds(_field("rfm_segment", "!=", "loyal"), member, edges=edges)
    assert not _holds(_field("rfm_segment", "=", "champions"), member)  # no edges computed: no segment
    never_paid = MemberView("m", paid_orders=0)
    assert not _holds(_field("rfm_segment", "in", list(VOCABULARY.rfm_segments)), never_paid, edges=edges)


def test_rfm_cells_cover_each_score_triple_once() -> None:
    segments = SHOP.rfm.segments
    every = rfm_cells(segments, "in", list(VOCABULARY.rfm_segments))
    assert sorted(every) == list(range(125))
    assert rfm_cell(5, 5, 5) in rfm_cells(segments, "=", ["champions"])
    assert rfm_cell(5, 5, 5) not in rfm_cells(segments, "!=", ["champions"])
    assert rfm_cells(segments, "=", ["whales"]) == ()
