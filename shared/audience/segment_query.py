"""Segment definitions compiled to SQL: one boolean expression over ``members``, values as bound parameters.

``Audience`` is a parsed definition evaluated for one shop at one time; its ``where``
clause selects exactly the members ``shared.domain.segments.matches`` accepts
(tests/integration/test_segment_sql_agreement.py). The compiler keeps the language's
two-valued logic: a comparison that SQL would leave NULL (a member without a value) is
made false with ``IS true``, so ``NOT`` of it is true.

Every comparison is turned, in Python, into plain comparisons of stored columns with
bound constants, so PostgreSQL computes nothing per member but comparisons (a count over
a million members is a scan of their rows):

- plain columns (``net_spend``, the profile text fields, ``marketing_consent``,
  ``joined_at``, ``last_order_at``) are compared as they are; integer columns
  (``paid_orders``, ``points_balance``, ``score``) with integer bounds (``score > 2.5`` is
  ``score >= 3``);
- ``average_order_value`` is compared without a division, ``net_spend op v * paid_orders``
  with ``paid_orders > 0``, so the comparison is exact;
- ``tier`` by rank: the ladder's codes that satisfy the comparison, ``tier = ANY(codes)``;
- ``age`` is the year of ``at`` in the member's zone minus ``birth_year``; the year per zone
  is worked out in Python (``LocalYears``: the shop's year and the zones, around New Year,
  in another), so no zone name reaches PostgreSQL's time-zone database;
- ``days_since_*`` ≥ n days is the timestamp ``<= at - n days``: floor((at − t) / 1 day)
  compared by the instants where it changes;
- ``rfm_segment``: the shop's RFM edges are read first (``prepare``), and each edge turned
  into the instant, order count or amount where a member's score crosses it
  (``RfmBounds``, exact against ``shared.domain.rfm.rfm_scores``); the member's score
  triple is then three ``width_bucket`` lookups, and the comparison a set of cells 0..124;
- ``{"tag": "manual.x"}`` is an EXISTS over ``member_manual_tags`` unexpired at ``at``; any
  other tag is ``tags @> ARRAY[tag]``, which the GIN index ``ix_members_tags`` serves.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Numeric,
    Row,
    Select,
    Text,
    and_,
    any_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from shared.db.schema import member_manual_tags, members, rfm_edges
from shared.domain.playbook import ShopPlaybook
from shared.domain.rfm import RfmEdges
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
INTEGER: TypeEngine[Any] = BigInteger()
CENT = Decimal("0.01")
_DAY = timedelta(days=1)

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

# Columns compared as they are; the nullable ones answer ``IS true``.
_INTEGERS = {
    "paid_orders": members.c.paid_orders,
    "points_balance": members.c.points_balance,
    "score": members.c.score,
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
_SINCE = {"days_since_last_order": members.c.last_order_at, "days_since_joined": members.c.joined_at}


def _bound(value: Any, type_: TypeEngine[Any]) -> ColumnElement[Any]:
    return literal(value, type_)


def _definite(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """True only when ``condition`` is: NULL (a missing value) counts as false."""
    return condition.is_(true())


def _compare(
    expression: ColumnElement[Any], op: str, values: Sequence[Any], type_: TypeEngine[Any]
) -> ColumnElement[bool]:
    """``expression op values`` with every value a bound parameter (``in``: one array parameter)."""
    if op == IN:
        return expression == any_(_bound(list(values), ARRAY(type_)))
    if op == BETWEEN:
        return and_(expression >= _bound(values[0], type_), expression <= _bound(values[1], type_))
    value = _bound(values[0], type_)
    comparisons = {
        EQ: expression == value,
        NE: expression != value,
        LT: expression < value,
        LE: expression <= value,
        GT: expression > value,
        GE: expression >= value,
    }
    return comparisons[op]


def _ceiling(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_CEILING))


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_FLOOR))


def _whole(value: Decimal) -> bool:
    return value == value.to_integral_value()


def _integer_compare(expression: ColumnElement[Any], op: str, values: Sequence[Decimal]) -> ColumnElement[bool]:
    """``expression op values`` for an integer-valued expression, with integer bounds (exact for any number)."""
    if op == IN:
        whole = sorted({int(value) for value in values if _whole(value)})
        return expression == any_(_bound(whole, ARRAY(INTEGER))) if whole else false()
    if op == BETWEEN:
        low, high = values
        return and_(expression >= _bound(_ceiling(low), INTEGER), expression <= _bound(_floor(high), INTEGER))
    value = values[0]
    if op in (EQ, NE):
        if not _whole(value):
            return false() if op == EQ else expression.is_not(None)
        return _compare(expression, op, [int(value)], INTEGER)
    bounds = {LT: (LT, _ceiling), LE: (LE, _floor), GT: (GT, _floor), GE: (GE, _ceiling)}
    compared, rounded = bounds[op]
    return _compare(expression, compared, [rounded(value)], INTEGER)


def _numbers(values: Sequence[Any]) -> list[Decimal]:
    return [value for value in values if isinstance(value, Decimal)]


# --- days since: floor((at - t) / 1 day) compared through the instants where it changes ----------


def _days_at_least(since: ColumnElement[Any], at: datetime, days: int) -> ColumnElement[bool]:
    """floor((at − since) / 1 day) >= ``days``, i.e. ``since <= at - days``."""
    try:
        return since <= _bound(at - days * _DAY, TIME)
    except OverflowError:  # before year 1 (no stored time) or after 9999 (every one)
        return false() if days > 0 else since.is_not(None)


def _days_compare(since: ColumnElement[Any], at: datetime, op: str, values: Sequence[Decimal]) -> ColumnElement[bool]:
    def at_least(days: int) -> ColumnElement[bool]:
        return _days_at_least(since, at, days)

    def at_most(days: int) -> ColumnElement[bool]:
        return and_(since.is_not(None), not_(at_least(days + 1)))

    def equal(value: Decimal) -> ColumnElement[bool]:
        return and_(at_least(int(value)), at_most(int(value))) if _whole(value) else false()

    if op == IN:
        return or_(false(), *(equal(value) for value in values))
    if op == BETWEEN:
        return and_(at_least(_ceiling(values[0])), at_most(_floor(values[1])))
    value = values[0]
    if op == EQ:
        return equal(value)
    if op == NE:
        return and_(since.is_not(None), not_(equal(value)))
    if op == GE:
        return at_least(_ceiling(value))
    if op == GT:
        return at_least(_floor(value) + 1)
    if op == LE:
        return at_most(_floor(value))
    return at_most(_ceiling(value) - 1)  # LT


# --- RFM: each edge as the instant, count or amount where the score crosses it -------------------

_INT_RANGE = 2**62
# More days than lie between any two times a datetime can hold (years 1 to 9999).
_DAYS_BEYOND_ANY_TIME = 4_000_000
_MONEY_RANGE = Decimal(10) ** 15


@dataclass(frozen=True, slots=True)
class RfmBounds:
    """A shop's RFM edges as thresholds on stored columns, each list ascending.

    For a member who has paid (``last_order_at`` set), with ``rfm_scores`` giving (r, f, m):
    r − 1 = ``recency_passed`` + the thresholds in ``recency`` at or before ``last_order_at``,
    f − 1 = the thresholds in ``frequency`` at or below ``paid_orders``,
    m − 1 = the thresholds in ``monetary`` at or below ``net_spend`` (a whole number of cents).
    """

    recency: tuple[datetime, ...]
    recency_passed: int
    frequency: tuple[int, ...]
    monetary: tuple[Decimal, ...]

    @classmethod
    def of(cls, edges: RfmEdges) -> RfmBounds:
        recency, passed = [], 0
        for edge in edges.recency_days:
            after = _recency_after(edges.as_of, edge)
            if after is False:
                passed += 1
            elif after is not True:
                recency.append(after)
        frequency = [count for count in map(_orders_from, edges.frequency) if count is not None]
        monetary = [amount for amount in map(_cents_from, edges.monetary) if amount is not None]
        return cls(tuple(sorted(recency)), passed, tuple(sorted(frequency)), tuple(sorted(monetary)))


def _recency(microseconds: int) -> float:
    """Recency in days as ``rfm_scores`` computes it, for a last order ``microseconds`` before the edges' as_of."""
    return max(0.0, (microseconds / 10**6) / 86400.0)


def _recency_after(as_of: datetime, edge: float) -> datetime | bool:
    """The first instant whose last order no longer counts as older than ``edge`` days (``edge < recency``).

    An order at time t is older than the edge exactly when t is before the instant returned;
    True: every order is older (a negative edge), False: none is (an edge beyond any time).
    """
    if edge < 0:
        return True
    if edge >= _DAYS_BEYOND_ANY_TIME:
        return False
    # The least whole number of microseconds whose recency exceeds the edge: recency grows with it.
    low, high = 0, max(1, math.ceil(edge * 86400 * 10**6))
    while not edge < _recency(high):
        low, high = high, high * 2
        if high > 10**19:
            return False
    while high - low > 1:
        middle = (low + high) // 2
        if edge < _recency(middle):
            high = middle
        else:
            low = middle
    try:
        return as_of.astimezone(UTC) - timedelta(microseconds=high) + timedelta(microseconds=1)
    except OverflowError:
        return False


def _orders_from(edge: float) -> int | None:
    """The least order count above ``edge`` (``edge < paid_orders``); None when no count is."""
    least = math.floor(edge) + 1
    if least > _INT_RANGE:
        return None
    return max(least, -_INT_RANGE)


def _cents_from(edge: float) -> Decimal | None:
    """The least amount in cents whose float exceeds ``edge`` (``edge < float(net_spend)``); None when none does."""
    if edge >= _MONEY_RANGE:
        return None
    if edge <= -_MONEY_RANGE:
        return -_MONEY_RANGE
    with localcontext() as context:
        context.prec = 60
        amount = Decimal(edge).quantize(CENT, rounding=ROUND_FLOOR)  # float(amount) <= edge
        while not edge < float(amount):
            amount += CENT
    return amount


def rfm_cell_expression(bounds: RfmBounds) -> ColumnElement[Any]:
    """The member's cell (r−1)·25 + (f−1)·5 + (m−1); NULL for a member who never paid."""
    r: ColumnElement[Any] = func.width_bucket(members.c.last_order_at, _bound(list(bounds.recency), ARRAY(TIME)))
    if bounds.recency_passed:
        r = r + _bound(bounds.recency_passed, Integer())
    f = func.width_bucket(members.c.paid_orders, _bound(list(bounds.frequency), ARRAY(INTEGER)))
    m = func.width_bucket(members.c.net_spend, _bound(list(bounds.monetary), ARRAY(MONEY)))
    return r * 25 + f * 5 + m


async def load_rfm_edges(connection: AsyncConnection, shop_id: str) -> RfmEdges | None:
    """The shop's RFM edges as the member status reads them; None before any are computed (or with no buyers)."""
    row = (
        await connection.execute(
            select(rfm_edges.c.as_of, rfm_edges.c.recency_days, rfm_edges.c.frequency, rfm_edges.c.monetary).where(
                rfm_edges.c.shop_id == shop_id
            )
        )
    ).one_or_none()
    if row is None or not row.recency_days:
        return None
    try:
        return RfmEdges(row.as_of, tuple(row.recency_days), tuple(row.frequency), tuple(row.monetary))
    except ValueError:  # not four ascending edges: no segment can be told
        return None


# --- the compiler -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Audience:
    """A definition evaluated for the members of ``shop_id`` at ``at``, with the shop's playbook and RFM edges."""

    definition: Node
    shop_id: str
    shop: ShopPlaybook
    at: datetime
    edges: RfmEdges | None = None

    def where(self) -> ColumnElement[bool]:
        return and_(members.c.shop_id == _bound(self.shop_id, Text()), _Compiler(self).node(self.definition))

    def members(self, *columns: Any) -> Select[Any]:
        return select(*(columns or MEMBER_COLUMNS)).where(self.where())


async def prepare(
    connection: AsyncConnection, definition: Node, shop_id: str, shop: ShopPlaybook, at: datetime
) -> Audience:
    """The audience of ``definition``, with the shop's RFM edges read when the definition needs them."""
    edges = await load_rfm_edges(connection, shop_id) if "rfm_segment" in fields_used(definition) else None
    return Audience(definition, shop_id, shop, at, edges)


class _Compiler:
    def __init__(self, audience: Audience) -> None:
        self.audience = audience
        self._years: LocalYears | None = None
        self._rfm: RfmBounds | None = None

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
        if name == "net_spend":
            return _compare(members.c.net_spend, op, values, MONEY)
        if name in _INTEGERS:
            return _integer_compare(_INTEGERS[name], op, _numbers(values))
        if name == "marketing_consent":
            return _compare(members.c.marketing_consent, op, values, Boolean())
        if name in _NULLABLE:
            column, type_ = _NULLABLE[name]
            return _definite(_compare(column, op, values, type_))
        if name in _SINCE:
            return _definite(_days_compare(_SINCE[name], self.audience.at, op, _numbers(values)))
        if name == "age":
            return _definite(_integer_compare(self.local_year() - members.c.birth_year, op, _numbers(values)))
        if name == "tier":
            ladder = [tier.code for tier in self.audience.shop.tiers]
            codes = tier_codes(ladder, op, [str(value) for value in values])
            return _definite(members.c.tier == any_(_bound(list(codes), ARRAY(Text())))) if codes else false()
        if name == "rfm_segment":
            return self.rfm_segment(op, [str(value) for value in values])
        if name == "average_order_value":
            return self.average_order_value(op, _numbers(values))
        raise ValueError(f"unknown field {name!r}")  # pragma: no cover - definitions are parsed first

    def rfm_segment(self, op: str, names: list[str]) -> ColumnElement[bool]:
        edges = self.audience.edges
        cells = rfm_cells(self.audience.shop.rfm.segments, op, names)
        if edges is None or not cells:
            return false()
        if self._rfm is None:
            self._rfm = RfmBounds.of(edges)
        return _definite(rfm_cell_expression(self._rfm) == any_(_bound(list(cells), ARRAY(Integer()))))

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
            scaled = _bound(values[0], MONEY) * orders
            matched = {
                EQ: spend == scaled,
                NE: spend != scaled,
                LT: spend < scaled,
                LE: spend <= scaled,
                GT: spend > scaled,
                GE: spend >= scaled,
            }[op]
        return and_(orders > 0, matched)

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
    return select(func.count()).select_from(members).where(audience.where())


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


_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


def export_sql(audience: Audience) -> tuple[str, list[Any]]:
    """``export_statement`` as asyncpg takes it: the SQL with ``$n`` placeholders and its bound values in order.

    For a server-side cursor read straight from the driver, a row costing no ORM object.
    """
    compiled = export_statement(audience).compile(dialect=_ASYNCPG)
    params = compiled.construct_params()
    return compiled.string, [params[name] for name in compiled.positiontup or ()]


async def count_members(connection: AsyncConnection, audience: Audience) -> int:
    return int(await connection.scalar(count_statement(audience)) or 0)


async def preview(connection: AsyncConnection, audience: Audience, sample: int) -> tuple[int, list[str]]:
    row = (await connection.execute(preview_statement(audience, sample))).one()
    return int(row.size), list(row.sample or [])


async def page(connection: AsyncConnection, audience: Audience, after: str | None, limit: int) -> list[Row[Any]]:
    return list((await connection.execute(page_statement(audience, after, limit))).all())


async def stream_members(
    connection: AsyncConnection, audience: Audience, chunk_rows: int = 1000
) -> AsyncGenerator[Sequence[Row[Any]], None]:
    """Every member of the audience in chunks, from a server-side cursor: memory stays at one chunk.

    Needs an open transaction on ``connection`` (a cursor lives in one).
    """
    result = await connection.stream(export_statement(audience).execution_options(yield_per=chunk_rows))
    async for rows in result.partitions(chunk_rows):
        yield rows
