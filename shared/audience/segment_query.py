"""Segment definitions compiled to SQL: one boolean expression over ``members``, values as bound parameters.

``Audience`` is a parsed definition evaluated for one shop at one time; its ``where``
clause selects exactly the members ``shared.domain.segments.matches`` accepts. The
compiler keeps the language's two-valued logic: a comparison that SQL would leave
NULL (a member without a value) is made false with ``IS true``, so ``NOT`` of it is true.

How each field is read:

- plain columns (``net_spend``, ``paid_orders``, ``points_balance``, ``score``, the
  profile text fields, ``marketing_consent``, ``joined_at``, ``last_order_at``) are compared
  as they are;
- ``average_order_value`` is compared without a division, ``net_spend op v * paid_orders``
  with ``paid_orders > 0``, so the comparison is exact;
- ``tier`` by rank: the ladder's codes that satisfy the comparison, ``tier = ANY(codes)``;
- ``age`` is the year of ``at`` in the member's zone minus ``birth_year``; the year per zone
  is worked out in Python (``LocalYears``: the shop's year and the zones, around New Year,
  in another), so no zone name reaches PostgreSQL's time-zone database;
- ``days_since_*`` is floor((at − t) / 1 day) in exact numeric arithmetic;
- ``rfm_segment`` joins the shop's ``rfm_edges`` row, scores the member as
  ``shared.domain.rfm.rfm_scores`` does (in float8, as Python's floats), and tests the
  score triple (a cell 0..124) against the cells whose segment the comparison accepts;
- ``{"tag": "manual.x"}`` is an EXISTS over ``member_manual_tags`` unexpired at ``at``; any
  other tag is ``tags @> ARRAY[tag]``, which the GIN index ``ix_members_tags`` serves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    DateTime,
    FromClause,
    Integer,
    Numeric,
    Row,
    Select,
    Text,
    and_,
    any_,
    case,
    cast,
    exists,
    extract,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from shared.db.schema import member_manual_tags, members, rfm_edges
from shared.domain.playbook import ShopPlaybook
from shared.domain.segments import (
    BETWEEN,
    EQ,
    GE,
    GT,
    IN,
    LE,
    LT,
    NE,
    AllOf,
    AnyOf,
    Comparison,
    HasTag,
    LocalYears,
    Node,
    Not,
    fields_used,
    rfm_cells,
    tier_codes,
)

MONEY: TypeEngine[Any] = Numeric()
TIME: TypeEngine[Any] = DateTime(timezone=True)
FLOAT8: TypeEngine[float] = DOUBLE_PRECISION()
_SECONDS_PER_DAY = 86400

# What a page, a sample or an export gives of each member.
MEMBER_COLUMNS = (
    members.c.member_id,
    members.c.tier,
    members.c.stage,
    members.c.net_spend,
    members.c.paid_orders,
    members.c.points_balance,
    members.c.score,
    members.c.marketing_consent,
    members.c.joined_at,
    members.c.last_order_at,
    members.c.tags,
)
MEMBER_FIELDS = tuple(column.name for column in MEMBER_COLUMNS)

# Columns a comparison reads as they are: never NULL ones need no ``IS true``.
_PLAIN = {
    "net_spend": (members.c.net_spend, MONEY),
    "paid_orders": (members.c.paid_orders, MONEY),
    "points_balance": (members.c.points_balance, MONEY),
    "score": (members.c.score, MONEY),
    "marketing_consent": (members.c.marketing_consent, Boolean()),
}
_NULLABLE = {
    "stage": (members.c.stage, Text()),
    "gender": (members.c.gender, Text()),
    "province": (members.c.province, Text()),
    "city": (members.c.city, Text()),
    "channel": (members.c.channel, Text()),
    "store_id": (members.c.store_id, Text()),
    "joined_at": (members.c.joined_at, TIME),
    "last_order_at": (members.c.last_order_at, TIME),
}


def _bound(value: Any, type_: TypeEngine[Any]) -> ColumnElement[Any]:
    return literal(value, type_)


def _compare(
    expression: ColumnElement[Any], op: str, values: Sequence[Any], type_: TypeEngine[Any]
) -> ColumnElement[bool]:
    """``expression op values`` with every value a bound parameter (``in``: one array parameter)."""
    if op == IN:
        return expression == any_(_bound(list(values), ARRAY(type_)))
    if op == BETWEEN:
        return and_(expression >= _bound(values[0], type_), expression <= _bound(values[1], type_))
    value = _bound(values[0], type_)
    if op == EQ:
        return expression == value
    if op == NE:
        return expression != value
    if op == LT:
        return expression < value
    if op == LE:
        return expression <= value
    if op == GT:
        return expression > value
    if op == GE:
        return expression >= value
    raise ValueError(f"unknown operator {op!r}")  # pragma: no cover - definitions are parsed first


def _definite(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """True only when ``condition`` is: NULL (a missing value) counts as false."""
    return condition.is_(true())


def _floor_days(since: ColumnElement[Any], at: datetime) -> ColumnElement[Any]:
    """floor((at − since) / 1 day), exactly: ``div`` truncates toward zero, ``mod`` keeps the dividend's sign."""
    seconds = extract("epoch", _bound(at, TIME)) - extract("epoch", since)
    whole = func.div(seconds, _SECONDS_PER_DAY)
    return whole - case((func.mod(seconds, _SECONDS_PER_DAY) < 0, 1), else_=0)


def _count_below(edges: ColumnElement[Any], value: ColumnElement[Any]) -> ColumnElement[Any]:
    """How many of the four edges lie strictly below ``value``."""
    terms = [case((edges[index] < value, 1), else_=0) for index in range(1, 5)]
    return terms[0] + terms[1] + terms[2] + terms[3]


def rfm_cell_expression() -> ColumnElement[Any]:
    """The member's RFM cell (r−1)·25 + (f−1)·5 + (m−1), NULL without a paid order or the shop's edges.

    Recency is computed as ``rfm_scores`` computes it in Python, in float8: the exact seconds
    between the edges' ``as_of`` and the last order, rounded once to a double, over 86400.
    """
    seconds = cast(extract("epoch", rfm_edges.c.as_of) - extract("epoch", members.c.last_order_at), FLOAT8)
    recency = func.greatest(_bound(0.0, FLOAT8), seconds / _bound(float(_SECONDS_PER_DAY), FLOAT8))
    r_below = _count_below(rfm_edges.c.recency_days, recency)
    f_below = _count_below(rfm_edges.c.frequency, cast(members.c.paid_orders, FLOAT8))
    m_below = _count_below(rfm_edges.c.monetary, cast(members.c.net_spend, FLOAT8))
    scored = and_(
        members.c.last_order_at.is_not(None),
        func.cardinality(rfm_edges.c.recency_days) == 4,
        func.cardinality(rfm_edges.c.frequency) == 4,
        func.cardinality(rfm_edges.c.monetary) == 4,
    )
    return case((scored, (4 - r_below) * 25 + f_below * 5 + m_below))


@dataclass(frozen=True, slots=True)
class Audience:
    """A definition evaluated for the members of ``shop_id`` at ``at``, with the shop's playbook."""

    definition: Node
    shop_id: str
    shop: ShopPlaybook
    at: datetime

    @property
    def uses_rfm(self) -> bool:
        return "rfm_segment" in fields_used(self.definition)

    def source(self) -> FromClause:
        """``members``, joined to the shop's RFM edges when the definition reads ``rfm_segment``."""
        if self.uses_rfm:
            return members.outerjoin(rfm_edges, rfm_edges.c.shop_id == members.c.shop_id)
        return members

    def where(self) -> ColumnElement[bool]:
        return and_(members.c.shop_id == _bound(self.shop_id, Text()), _Compiler(self).node(self.definition))

    def members(self, *columns: Any) -> Select[Any]:
        return select(*(columns or MEMBER_COLUMNS)).select_from(self.source()).where(self.where())


class _Compiler:
    def __init__(self, audience: Audience) -> None:
        self.audience = audience
        self._years: LocalYears | None = None

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, AllOf):
            return and_(true(), *(self.node(part) for part in node.parts))
        if isinstance(node, AnyOf):
            return or_(false(), *(self.node(part) for part in node.parts))
        if isinstance(node, Not):
            return not_(self.node(node.part))
        if isinstance(node, HasTag):
            return self.tag(node)
        return self.comparison(node)

    def tag(self, node: HasTag) -> ColumnElement[bool]:
        if not node.manual:
            return members.c.tags.contains(_bound([node.tag], ARRAY(Text())))
        tags = member_manual_tags
        return exists().where(
            tags.c.shop_id == members.c.shop_id,
            tags.c.member_id == members.c.member_id,
            tags.c.tag == _bound(node.tag, Text()),
            or_(tags.c.expires_at.is_(None), tags.c.expires_at > _bound(self.audience.at, TIME)),
        )

    def comparison(self, node: Comparison) -> ColumnElement[bool]:
        name, op, values = node.field, node.op, node.values
        if name in _PLAIN:
            column, type_ = _PLAIN[name]
            return _compare(column, op, values, type_)
        if name in _NULLABLE:
            column, type_ = _NULLABLE[name]
            return _definite(_compare(column, op, values, type_))
        if name == "tier":
            ladder = [tier.code for tier in self.audience.shop.tiers]
            codes = tier_codes(ladder, op, [str(value) for value in values])
            return _definite(members.c.tier == any_(_bound(list(codes), ARRAY(Text())))) if codes else false()
        if name == "rfm_segment":
            cells = rfm_cells(self.audience.shop.rfm.segments, op, [str(value) for value in values])
            if not cells:
                return false()
            return _definite(rfm_cell_expression() == any_(_bound(list(cells), ARRAY(Integer()))))
        if name == "average_order_value":
            return self.average_order_value(op, [value for value in values if isinstance(value, Decimal)])
        if name == "age":
            return _definite(_compare(self.local_year() - members.c.birth_year, op, values, MONEY))
        if name == "days_since_last_order":
            return _definite(_compare(_floor_days(members.c.last_order_at, self.audience.at), op, values, MONEY))
        if name == "days_since_joined":
            return _definite(_compare(_floor_days(members.c.joined_at, self.audience.at), op, values, MONEY))
        raise ValueError(f"unknown field {name!r}")  # pragma: no cover - definitions are parsed first

    def average_order_value(self, op: str, values: list[Decimal]) -> ColumnElement[bool]:
        """net_spend / paid_orders op v, as net_spend op v · paid_orders (paid_orders > 0), exactly."""
        spend, orders = members.c.net_spend, members.c.paid_orders
        if op == IN:
            multiples = func.unnest(_bound(values, ARRAY(MONEY))).column_valued("aov_value")
            matched: ColumnElement[bool] = spend.in_(select(multiples * orders))
        elif op == BETWEEN:
            low, high = (_bound(value, MONEY) * orders for value in values)
            matched = and_(spend >= low, spend <= high)
        else:
            matched = self._scaled(op, values[0])
        return and_(orders > 0, matched)

    @staticmethod
    def _scaled(op: str, value: Decimal) -> ColumnElement[bool]:
        spend, scaled = members.c.net_spend, _bound(value, MONEY) * members.c.paid_orders
        comparisons = {
            EQ: spend == scaled,
            NE: spend != scaled,
            LT: spend < scaled,
            LE: spend <= scaled,
            GT: spend > scaled,
            GE: spend >= scaled,
        }
        return comparisons[op]

    def local_year(self) -> ColumnElement[Any]:
        """The year of ``at`` in the member's zone (a known IANA name) or else the shop's."""
        if self._years is None:
            self._years = LocalYears.at(self.audience.at, self.audience.shop.timezone)
        years = self._years
        by_year: dict[int, list[str]] = {}
        for name, year in sorted(years.other_years.items()):
            by_year.setdefault(year, []).append(name)
        if not by_year:
            return _bound(years.shop_year, Integer())
        whens = [
            (members.c.timezone == any_(_bound(names, ARRAY(Text()))), _bound(year, Integer()))
            for year, names in sorted(by_year.items())
        ]
        return case(*whens, else_=_bound(years.shop_year, Integer()))


# --- statements and their execution --------------------------------------------------------------


def count_statement(audience: Audience) -> Select[Any]:
    return select(func.count()).select_from(audience.source()).where(audience.where())


def preview_statement(audience: Audience, sample: int) -> Select[Any]:
    """The audience's size and its first ``sample`` member ids, in one statement (one snapshot)."""
    size = count_statement(audience).scalar_subquery()
    first = audience.members(members.c.member_id).order_by(members.c.member_id).limit(sample).subquery("first")
    ids = select(func.array_agg(aggregate_order_by(first.c.member_id, first.c.member_id))).scalar_subquery()
    return select(size.label("size"), ids.label("sample"))


def page_statement(audience: Audience, after: str | None, limit: int) -> Select[Any]:
    """Up to ``limit`` members after the member id ``after``, by member id (the primary key's order)."""
    statement = audience.members()
    if after is not None:
        statement = statement.where(members.c.member_id > _bound(after, Text()))
    return statement.order_by(members.c.member_id).limit(limit)


def export_statement(audience: Audience) -> Select[Any]:
    return audience.members().order_by(members.c.member_id)


async def count_members(connection: AsyncConnection, audience: Audience) -> int:
    return int(await connection.scalar(count_statement(audience)) or 0)


async def preview(connection: AsyncConnection, audience: Audience, sample: int) -> tuple[int, list[str]]:
    row = (await connection.execute(preview_statement(audience, sample))).one()
    return int(row.size), list(row.sample or [])


async def page(connection: AsyncConnection, audience: Audience, after: str | None, limit: int) -> list[Row[Any]]:
    return list((await connection.execute(page_statement(audience, after, limit))).all())


async def stream_members(
    connection: AsyncConnection, audience: Audience, chunk_rows: int = 1000
) -> AsyncIterator[Sequence[Row[Any]]]:
    """Every member of the audience in chunks, from a server-side cursor: memory stays at one chunk.

    Needs an open transaction on ``connection`` (a cursor lives in one).
    """
    result = await connection.stream(export_statement(audience).execution_options(yield_per=chunk_rows))
    async for rows in result.partitions(chunk_rows):
        yield rows
