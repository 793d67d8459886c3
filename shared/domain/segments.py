"""Segments: saved audience definitions, their validation, and what they mean for one member.

A definition is a JSON document built from five kinds of node::

    {"all": [d, ...]}   every part holds (an empty list holds for everyone)
    {"any": [d, ...]}   some part holds (an empty list holds for no one)
    {"not": d}          the part does not hold
    {"tag": "<id>"}     the member carries the tag
    {"field": "<f>", "op": "<op>", "value": v}

``parse_definition`` turns a document into an immutable tree, or raises
``InvalidDefinitionError`` naming the path of the first bad node
(``definition.all[2].any[0].value``). ``matches`` is the reference semantics: the SQL
that ``shared.audience.segment_query`` compiles from a tree selects exactly the members
it accepts (tests/integration/test_segment_sql_agreement.py).

Logic is two-valued: a comparison on a value the member does not have (no tier, no
birth year, no paid order for ``average_order_value``) is false, and ``not`` of a false
is true. Time-relative fields (``age``, ``days_since_*``) and manual tags' expiry are
taken at the evaluation time ``at``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, available_timezones

from shared.domain.calendar import zone
from shared.domain.errors import InvalidAtPathError
from shared.domain.lifecycle import STAGES
from shared.domain.playbook import RfmSegment, ShopPlaybook
from shared.domain.rfm import OTHERS, RfmEdges, rfm_scores, rfm_segment

ROOT = "definition"
MAX_DEPTH = 32
MAX_DEFINITION_BYTES = 64 * 1024
MAX_LIST = 1000
# Numbers in definitions: anything a member's figures can be compared with, and what JSON carries exactly.
MAX_MAGNITUDE = Decimal(10) ** 15
MAX_TAG_LENGTH = 200

# Field kinds: what values a field takes and which operators apply.
NUMBER, MONEY, TIER, STAGE, RFM, TEXT, BOOLEAN, TIME = (
    "number",
    "money",
    "tier",
    "stage",
    "rfm",
    "text",
    "boolean",
    "time",
)

FIELDS: Mapping[str, str] = {
    "net_spend": MONEY,
    "paid_orders": NUMBER,
    "average_order_value": MONEY,
    "points_balance": NUMBER,
    "score": NUMBER,
    "tier": TIER,
    "stage": STAGE,
    "rfm_segment": RFM,
    "gender": TEXT,
    "age": NUMBER,
    "province": TEXT,
    "city": TEXT,
    "channel": TEXT,
    "store_id": TEXT,
    "marketing_consent": BOOLEAN,
    "days_since_last_order": NUMBER,
    "days_since_joined": NUMBER,
    "joined_at": TIME,
    "last_order_at": TIME,
}

EQ, NE, LT, LE, GT, GE, IN, BETWEEN = "=", "!=", "<", "<=", ">", ">=", "in", "between"
OPS = (EQ, NE, LT, LE, GT, GE, IN, BETWEEN)
_ORDERED = OPS
_EQUALITY = (EQ, NE, IN)
OPS_BY_KIND: Mapping[str, tuple[str, ...]] = {
    NUMBER: _ORDERED,
    MONEY: _ORDERED,
    TIER: _ORDERED,  # by rank on the shop's ladder
    TIME: _ORDERED,
    STAGE: _EQUALITY,
    RFM: _EQUALITY,
    TEXT: _EQUALITY,
    BOOLEAN: (EQ, NE),
}

TAG_GROUPS = ("profile", "purchase", "engagement", "lifecycle", "dynamic", "external", "manual")
MANUAL_GROUP = "manual"
_TAG_NAME = re.compile(r"[a-z0-9_]+")
# Category names keep the category's own letters and digits: lower-cased, other characters turned to "_".
_CATEGORY_NAME = re.compile(r"category_\w+")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_DECIMAL_TEXT = re.compile(r"-?\d{1,16}(?:\.\d{1,20})?", re.ASCII)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_KEY_QUOTE = 40
_DAY = timedelta(days=1)

Value: TypeAlias = Decimal | str | bool | datetime


class InvalidDefinitionError(InvalidAtPathError):
    """The definition does not fit the language; ``path`` names the bad node."""


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Node


@dataclass(frozen=True, slots=True)
class HasTag:
    tag: str

    @property
    def manual(self) -> bool:
        return self.tag.startswith(MANUAL_GROUP + ".")


@dataclass(frozen=True, slots=True)
class Comparison:
    """``field op values``: one value for the plain operators, one or more for ``in``, two for ``between``.

    Numbers are Decimals, times aware datetimes in UTC, tiers their codes.
    """

    field: str
    op: str
    values: tuple[Value, ...]

    @property
    def kind(self) -> str:
        return FIELDS[self.field]


Node: TypeAlias = AllOf | AnyOf | Not | HasTag | Comparison


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The shop's names a definition's values must come from when it is saved: tier codes and RFM segments.

    Definitions read back later are parsed without one (``parse_definition(document)``), so a
    segment keeps working after the playbook renames a tier: a code no longer on the ladder
    matches no one.
    """

    tiers: tuple[str, ...]
    rfm_segments: tuple[str, ...]

    @classmethod
    def of(cls, shop: ShopPlaybook) -> Vocabulary:
        names = tuple(segment.name for segment in shop.rfm.segments)
        return cls(tiers=tuple(tier.code for tier in shop.tiers), rfm_segments=(*names, OTHERS))


# --- parsing -----------------------------------------------------------------------------------


def parse_definition(document: object, vocabulary: Vocabulary | None = None, *, root: str = ROOT) -> Node:
    """The tree of a JSON definition (as ``json.loads`` gives it); raises ``InvalidDefinitionError``.

    With a ``vocabulary``, tier codes and RFM segment names must be the shop's.
    """
    if _encoded_size(document) > MAX_DEFINITION_BYTES:
        raise InvalidDefinitionError(root, f"the definition is larger than {MAX_DEFINITION_BYTES // 1024} KB of JSON")
    return _Parser(vocabulary).node(document, root, 1)


def _encoded_size(document: object) -> int:
    try:
        text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=True)
    except (RecursionError, ValueError, TypeError):
        return MAX_DEFINITION_BYTES + 1
    return len(text.encode("utf-8", "surrogatepass"))


def _key(key: str) -> str:
    printable = key.isprintable() and _UNSTORABLE.search(key) is None and len(key) <= _KEY_QUOTE
    return key if printable and re.fullmatch(r"[A-Za-z0-9_]+", key) else "…"


def _choices(names: Sequence[str]) -> str:
    return ", ".join(names)


_FORMS = ("all", "any", "not", "tag", "field")
_KEYS_OF_FORM = {"all": {"all"}, "any": {"any"}, "not": {"not"}, "tag": {"tag"}, "field": {"field", "op", "value"}}


class _Parser:
    def __init__(self, vocabulary: Vocabulary | None) -> None:
        self.vocabulary = vocabulary

    def node(self, document: object, path: str, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise InvalidDefinitionError(path, f"the definition nests deeper than {MAX_DEPTH} levels")
        if not isinstance(document, dict):
            raise InvalidDefinitionError(path, "expected an object with one of all, any, not, tag, field")
        forms = [form for form in _FORMS if form in document]
        if len(forms) != 1:
            problem = "has more than one of" if forms else "needs one of"
            raise InvalidDefinitionError(path, f"the node {problem} all, any, not, tag, field")
        form = forms[0]
        for key in document:
            if key not in _KEYS_OF_FORM[form]:
                raise InvalidDefinitionError(f"{path}.{_key(key)}", f"unknown key in a {form!r} node")
        if form in ("all", "any"):
            parts = document[form]
            if not isinstance(parts, list):
                raise InvalidDefinitionError(f"{path}.{form}", "expected a list of definitions")
            nodes = tuple(self.node(part, f"{path}.{form}[{index}]", depth + 1) for index, part in enumerate(parts))
            return AllOf(nodes) if form == "all" else AnyOf(nodes)
        if form == "not":
            return Not(self.node(document["not"], f"{path}.not", depth + 1))
        if form == "tag":
            return HasTag(_tag(document["tag"], f"{path}.tag"))
        return self.comparison(document, path)

    def comparison(self, document: dict[str, Any], path: str) -> Comparison:
        name = document["field"]
        if not isinstance(name, str) or name not in FIELDS:
            raise InvalidDefinitionError(f"{path}.field", f"unknown field; one of {_choices(list(FIELDS))}")
        kind = FIELDS[name]
        if "op" not in document:
            raise InvalidDefinitionError(f"{path}.op", "missing")
        op = document["op"]
        if not isinstance(op, str) or op not in OPS:
            raise InvalidDefinitionError(f"{path}.op", f"unknown operator; one of {_choices(OPS)}")
        if op not in OPS_BY_KIND[kind]:
            raise InvalidDefinitionError(f"{path}.op", f"{name} takes only {_choices(OPS_BY_KIND[kind])}")
        if "value" not in document:
            raise InvalidDefinitionError(f"{path}.value", "missing")
        value = document["value"]
        where = f"{path}.value"
        if op == IN:
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST:
                raise InvalidDefinitionError(where, f"'in' takes a list of 1 to {MAX_LIST} values")
            values = tuple(self.value(kind, item, f"{where}[{index}]") for index, item in enumerate(value))
        elif op == BETWEEN:
            if not isinstance(value, list) or len(value) != 2:
                raise InvalidDefinitionError(where, "'between' takes a list of two values, low and high")
            values = (self.value(kind, value[0], f"{where}[0]"), self.value(kind, value[1], f"{where}[1]"))
        else:
            values = (self.value(kind, value, where),)
        return Comparison(name, op, values)

    def value(self, kind: str, value: object, path: str) -> Value:
        if kind in (NUMBER, MONEY):
            return _number(value, path, text_allowed=kind == MONEY)
        if kind == BOOLEAN:
            if not isinstance(value, bool):
                raise InvalidDefinitionError(path, "expected true or false")
            return value
        if kind == TIME:
            return _time(value, path)
        text = _text(value, path)
        if kind == STAGE and text not in STAGES:
            raise InvalidDefinitionError(path, f"unknown lifecycle stage; one of {_choices(STAGES)}")
        if kind == TIER and self.vocabulary is not None and text not in self.vocabulary.tiers:
            raise InvalidDefinitionError(path, f"unknown tier; the shop's ladder is {_choices(self.vocabulary.tiers)}")
        if kind == RFM and self.vocabulary is not None and text not in self.vocabulary.rfm_segments:
            raise InvalidDefinitionError(
                path, f"unknown RFM segment; the shop's are {_choices(self.vocabulary.rfm_segments)}"
            )
        return text


def _number(value: object, path: str, *, text_allowed: bool) -> Decimal:
    number: Decimal | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value)) if math.isfinite(value) else None
    elif isinstance(value, Decimal):  # integers too long for int() parse as Decimal
        number = value if value.is_finite() else None
    elif isinstance(value, str) and text_allowed and _DECIMAL_TEXT.fullmatch(value):
        try:
            number = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimal text
            number = None
    if number is None:
        wanted = "a number or a decimal string" if text_allowed else "a number"
        raise InvalidDefinitionError(path, f"expected {wanted}")
    if abs(number) > MAX_MAGNITUDE:
        raise InvalidDefinitionError(path, "the number is out of range (at most 10^15 either way)")
    return number


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidDefinitionError(path, "expected a string")
    if _UNSTORABLE.search(value) is not None:
        raise InvalidDefinitionError(path, "text must not contain NUL characters or unpaired UTF-16 surrogates")
    return value


def _time(value: object, path: str) -> datetime:
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise InvalidDefinitionError(path, "expected an RFC 3339 time with an offset")
    text = value.upper().replace("Z", "+00:00").replace(" ", "T")
    date_part, _, rest = text.partition("T")
    clock, sign, offset = re.split(r"([+-])", rest, maxsplit=1)
    seconds, _, fraction = clock.partition(".")
    micro = f".{(fraction + '000000')[:6]}" if fraction else ""  # digits finer than microseconds are cut
    try:
        at = datetime.fromisoformat(f"{date_part}T{seconds}{micro}{sign}{offset}")
        return at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidDefinitionError(path, "expected an RFC 3339 time with an offset") from None


def _tag(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidDefinitionError(path, "expected a tag id, <group>.<name>")
    group, dot, name = value.partition(".")
    if not dot or group not in TAG_GROUPS:
        raise InvalidDefinitionError(path, f"unknown tag group; one of {_choices(TAG_GROUPS)}")
    if not is_tag_name(group, name) or len(value) > MAX_TAG_LENGTH:
        raise InvalidDefinitionError(path, "malformed tag id: the name is lower-case letters, digits and _")
    return value


def is_tag_name(group: str, name: str) -> bool:
    """A well-formed name in ``group``; ``purchase.category_*`` names may hold any Unicode letters and digits."""
    if _TAG_NAME.fullmatch(name):
        return True
    return group == "purchase" and _CATEGORY_NAME.fullmatch(name) is not None


def depth(node: Node) -> int:
    if isinstance(node, AllOf | AnyOf):
        return 1 + max((depth(part) for part in node.parts), default=0)
    if isinstance(node, Not):
        return 1 + depth(node.part)
    return 1


def fields_used(node: Node) -> set[str]:
    if isinstance(node, AllOf | AnyOf):
        return set().union(*(fields_used(part) for part in node.parts))
    if isinstance(node, Not):
        return fields_used(node.part)
    if isinstance(node, Comparison):
        return {node.field}
    return set()


# --- local years, tiers and RFM cells: shared by the evaluator and the SQL compiler -------------


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """The IANA zone names a member's ``timezone`` is taken from; any other name counts as the shop's zone."""
    return frozenset(available_timezones())


# Every zone's offset lies within a day of UTC: away from New Year every zone is in the same year.
_OFFSET_BOUND = timedelta(hours=26)


@dataclass(frozen=True, slots=True)
class LocalYears:
    """The calendar year of an instant in the shop's zone, and the known zones where it is another year."""

    shop_year: int
    other_years: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def at(cls, at: datetime, shop_timezone: str) -> LocalYears:
        shop_year = at.astimezone(zone(None, shop_timezone)).year
        earliest, latest = (at - _OFFSET_BOUND).astimezone(UTC), (at + _OFFSET_BOUND).astimezone(UTC)
        if earliest.year == latest.year == shop_year:
            return cls(shop_year)
        others = {}
        for name in known_zones():
            year = at.astimezone(_zone(name)).year
            if year != shop_year:
                others[name] = year
        return cls(shop_year, others)

    def of(self, timezone: str | None) -> int:
        """The year in the member's zone (``timezone`` when it is a known name, else the shop's)."""
        if timezone is None:
            return self.shop_year
        return self.other_years.get(timezone, self.shop_year)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def tier_codes(ladder: Sequence[str], op: str, values: Sequence[str]) -> tuple[str, ...]:
    """The codes on the ladder whose rank satisfies ``rank op values`` (codes off the ladder match nothing)."""
    ranks = [ladder.index(code) if code in ladder else None for code in values]
    return tuple(code for rank, code in enumerate(ladder) if _holds(rank, op, ranks))


RFM_CELLS = 125


def rfm_cell(r: int, f: int, m: int) -> int:
    """The index 0..124 of a score triple, as the SQL compiler computes it."""
    return (r - 1) * 25 + (f - 1) * 5 + (m - 1)


def rfm_cells(segments: Sequence[RfmSegment], op: str, names: Sequence[str]) -> tuple[int, ...]:
    """The score triples (as cells) whose segment name satisfies ``name op names``."""
    cells = []
    for r in range(1, 6):
        for f in range(1, 6):
            for m in range(1, 6):
                if _holds(rfm_segment(r, f, m, segments), op, list(names)):
                    cells.append(rfm_cell(r, f, m))
    return tuple(cells)


# --- the reference evaluator ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberView:
    """What a definition reads of a member: its stored figures, profile and tags."""

    member_id: str
    net_spend: Decimal = Decimal("0.00")
    paid_orders: int = 0
    points_balance: int = 0
    score: int = 0
    tier: str | None = None
    stage: str | None = None
    gender: str | None = None
    birth_year: int | None = None
    province: str | None = None
    city: str | None = None
    channel: str | None = None
    store_id: str | None = None
    marketing_consent: bool = True
    timezone: str | None = None
    joined_at: datetime | None = None
    last_order_at: datetime | None = None
    tags: frozenset[str] = frozenset()
    manual_tags: Mapping[str, datetime | None] = field(default_factory=dict)  # tag -> expires_at


def matches(
    definition: Node, member: MemberView, at: datetime, shop: ShopPlaybook, edges: RfmEdges | None = None
) -> bool:
    """Whether ``member`` is in the audience at ``at``; ``edges`` are the shop's RFM edges, if computed."""
    return _Evaluator(member, at, shop, edges).holds(definition)


class _Evaluator:
    def __init__(self, member: MemberView, at: datetime, shop: ShopPlaybook, edges: RfmEdges | None) -> None:
        self.member = member
        self.at = at
        self.shop = shop
        self.edges = edges
        self._years: LocalYears | None = None

    def holds(self, node: Node) -> bool:
        if isinstance(node, AllOf):
            return all(self.holds(part) for part in node.parts)
        if isinstance(node, AnyOf):
            return any(self.holds(part) for part in node.parts)
        if isinstance(node, Not):
            return not self.holds(node.part)
        if isinstance(node, HasTag):
            if node.manual:
                if node.tag not in self.member.manual_tags:
                    return False
                expires_at = self.member.manual_tags[node.tag]
                return expires_at is None or expires_at > self.at
            return node.tag in self.member.tags
        return self.compare(node)

    def compare(self, node: Comparison) -> bool:
        if node.field == "tier":
            ranks = [self.shop.tier_rank(str(code)) for code in node.values]
            return _holds(_rank(self.shop.tier_rank(self.member.tier)), node.op, [_rank(rank) for rank in ranks])
        if node.field == "average_order_value":
            member = self.member
            average = Fraction(member.net_spend) / member.paid_orders if member.paid_orders > 0 else None
            return _holds(average, node.op, [Fraction(value) for value in node.values if isinstance(value, Decimal)])
        return _holds(self.actual(node.field), node.op, list(node.values))

    def actual(self, name: str) -> Value | int | None:
        member = self.member
        reader = _READERS.get(name)
        if reader is not None:
            return reader(member)
        if name == "age":
            if member.birth_year is None:
                return None
            if self._years is None:
                self._years = LocalYears.at(self.at, self.shop.timezone)
            return self._years.of(member.timezone) - member.birth_year
        if name == "days_since_last_order":
            return None if member.last_order_at is None else (self.at - member.last_order_at) // _DAY
        if name == "days_since_joined":
            return None if member.joined_at is None else (self.at - member.joined_at) // _DAY
        if name == "rfm_segment":
            if self.edges is None:
                return None
            scores = rfm_scores(self.edges, member.last_order_at, member.paid_orders, member.net_spend)
            return None if scores is None else rfm_segment(*scores, self.shop.rfm.segments)
        raise KeyError(name)  # pragma: no cover - every field is read above


_READERS: Mapping[str, Callable[[MemberView], Value | int | None]] = {
    "net_spend": lambda member: member.net_spend,
    "paid_orders": lambda member: member.paid_orders,
    "points_balance": lambda member: member.points_balance,
    "score": lambda member: member.score,
    "stage": lambda member: member.stage,
    "gender": lambda member: member.gender,
    "province": lambda member: member.province,
    "city": lambda member: member.city,
    "channel": lambda member: member.channel,
    "store_id": lambda member: member.store_id,
    "marketing_consent": lambda member: member.marketing_consent,
    "joined_at": lambda member: member.joined_at,
    "last_order_at": lambda member: member.last_order_at,
}


def _rank(rank: int) -> int | None:
    return None if rank < 0 else rank


def _holds(actual: Any, op: str, values: Sequence[Any]) -> bool:
    """``actual op values``; false when the member has no value, or a value compared with is unknown."""
    if actual is None:
        return False
    if op == IN:
        return any(value is not None and actual == value for value in values)
    if any(value is None for value in values):
        return False
    if op == EQ:
        return bool(actual == values[0])
    if op == NE:
        return bool(actual != values[0])
    if op == LT:
        return bool(actual < values[0])
    if op == LE:
        return bool(actual <= values[0])
    if op == GT:
        return bool(actual > values[0])
    if op == GE:
        return bool(actual >= values[0])
    if op == BETWEEN:
        return bool(values[0] <= actual <= values[1])
    raise ValueError(f"unknown operator {op!r}")  # pragma: no cover - parse_definition admits only OPS


# --- saved segments ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedSegment:
    """A version of a saved segment: its definition as stored, and the segment's own dates.

    ``version`` is the version shown, ``latest_version`` the segment's current one.
    """

    segment_id: str
    name: str
    description: str | None
    definition: Any
    version: int
    latest_version: int
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
