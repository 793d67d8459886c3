"""Campaigns: a plan of waves to a segment with competing strategies and a holdout, and who gets what.

A plan is validated here, in the pure domain, with the path of each bad field in the error
(``strategies[1].weight``), so the API answers 422 naming it. Assignment to a strategy or to the
holdout is a deterministic function of (campaign, member): the same member lands in the same
group in every wave, every process and every replay, and the SQL that runs a wave over millions
of members computes the same buckets from the same hash (``bucket_sql``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.domain.calendar import add_months
from shared.domain.errors import InvalidAtPathError
from shared.domain.playbook import MAX_HOLDOUT_PERCENT
from shared.domain.segments import InvalidDefinitionError, Node, Vocabulary, parse_definition

__all__ = [
    "AUDIENCES",
    "BUCKETS",
    "HOLDOUT",
    "INCENTIVE_KINDS",
    "PLANNING_HORIZON",
    "Assignment",
    "CampaignIncentive",
    "CampaignPlan",
    "Duration",
    "InvalidCampaignError",
    "Strategy",
    "Wave",
    "assign",
    "bucket",
    "parse_duration",
    "parse_plan",
    "plan_document",
    "stored_plan",
]

HOLDOUT = "holdout"
AUDIENCES = ("all", "not_converted")
INCENTIVE_KINDS = ("coupon", "points", "sample")
BUCKETS = 10_000  # shares are resolved to a hundredth of a percent
MAX_STRATEGIES = 20
MAX_POINTS = 1_000_000  # points one strategy may give one member
PLANNING_HORIZON = timedelta(days=366)  # how far past the wall clock a wave may be planned
MAX_WAVES = 20
_CODE = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}", re.ASCII)
_DURATION = re.compile(
    r"P(?:(?P<years>\d{1,3})Y)?(?:(?P<months>\d{1,4})M)?(?:(?P<weeks>\d{1,4})W)?(?:(?P<days>\d{1,5})D)?"
    r"(?:T(?:(?P<hours>\d{1,6})H)?(?:(?P<minutes>\d{1,8})M)?(?:(?P<seconds>\d{1,10})S)?)?",
    re.ASCII,
)


class InvalidCampaignError(InvalidAtPathError):
    """The plan does not hold; ``path`` names the bad field."""


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration: calendar months (a year is 12) plus a fixed part (a day is 24 h)."""

    text: str
    months: int = 0
    fixed: timedelta = timedelta(0)

    def after(self, at: datetime) -> datetime:
        return add_months(at, self.months) + self.fixed if self.months else at + self.fixed


def parse_duration(text: object, path: str) -> Duration:
    """``P30D``, ``P1M``, ``PT12H``, ``P1Y2M3DT4H``; zero is refused."""
    if not isinstance(text, str):
        raise InvalidCampaignError(path, "must be an ISO 8601 duration such as P14D or P1M")
    found = _DURATION.fullmatch(text)
    if found is None or text in ("P", "PT") or text.endswith("T"):
        raise InvalidCampaignError(path, "must be an ISO 8601 duration such as P14D or P1M")
    part = {name: int(value) for name, value in found.groupdict().items() if value is not None}
    months = part.get("years", 0) * 12 + part.get("months", 0)
    fixed = timedelta(
        weeks=part.get("weeks", 0),
        days=part.get("days", 0),
        hours=part.get("hours", 0),
        minutes=part.get("minutes", 0),
        seconds=part.get("seconds", 0),
    )
    if months == 0 and fixed <= timedelta(0):
        raise InvalidCampaignError(path, "must be longer than zero")
    return Duration(text, months, fixed)


@dataclass(frozen=True, slots=True)
class CampaignIncentive:
    """``coupon`` (value off above min_spend, valid for a duration), ``points``, or a ``sample``."""

    kind: str
    value: Decimal | None = None
    min_spend: Decimal | None = None
    valid_for: Duration | None = None
    points: int | None = None


@dataclass(frozen=True, slots=True)
class Strategy:
    code: str
    weight: Decimal
    template: str
    variables: Mapping[str, Any] = field(default_factory=dict)
    incentive: CampaignIncentive | None = None


@dataclass(frozen=True, slots=True)
class Wave:
    number: int  # from 1
    at: datetime
    audience: str


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    """A validated campaign body; ``definition`` is the segment's, copied in when the campaign is created."""

    name: str
    strategies: tuple[Strategy, ...]
    holdout_percent: int
    waves: tuple[Wave, ...]
    attribution_window: Duration
    budget: Decimal | None = None
    segment_id: str | None = None
    definition: Node | None = None
    definition_document: Any = None

    def strategy(self, code: str) -> Strategy:
        return next(strategy for strategy in self.strategies if strategy.code == code)


# --- validation -----------------------------------------------------------------------------------


def parse_plan(body: Mapping[str, Any], vocabulary: Vocabulary | None = None) -> CampaignPlan:
    """A plan from a request body (JSON as parsed); raises ``InvalidCampaignError`` naming the bad field.

    Exactly one of ``segment_id`` and ``definition``: a definition is parsed here; a segment's id is
    resolved by the caller, who copies its definition in.
    """
    name = _text(body.get("name"), "name", 200)
    segment_id, definition, node = body.get("segment_id"), body.get("definition"), None
    if (segment_id is None) == (definition is None):
        raise InvalidCampaignError("segment_id", "give exactly one of segment_id and definition")
    if segment_id is not None:
        segment_id = _text(segment_id, "segment_id", 200)
    else:
        try:
            node = parse_definition(definition, vocabulary, root="definition")
        except InvalidDefinitionError as error:
            raise InvalidCampaignError(error.path, error.problem) from error
    holdout = body.get("holdout_percent", 0)
    if not isinstance(holdout, int) or isinstance(holdout, bool) or not 0 <= holdout <= MAX_HOLDOUT_PERCENT:
        raise InvalidCampaignError("holdout_percent", f"must be an integer from 0 to {MAX_HOLDOUT_PERCENT}")
    budget = body.get("budget")
    return CampaignPlan(
        name=name,
        strategies=_strategies(body.get("strategies")),
        holdout_percent=holdout,
        waves=_waves(body.get("waves")),
        attribution_window=parse_duration(body.get("attribution_window", "P14D"), "attribution_window"),
        budget=None if budget is None else _money(budget, "budget", positive=True),
        segment_id=segment_id,
        definition=node,
        definition_document=definition,
    )


def _strategies(raw: object) -> tuple[Strategy, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidCampaignError("strategies", "must be a non-empty list")
    if len(raw) > MAX_STRATEGIES:
        raise InvalidCampaignError("strategies", f"at most {MAX_STRATEGIES} strategies")
    strategies: list[Strategy] = []
    for index, item in enumerate(raw):
        path = f"strategies[{index}]"
        if not isinstance(item, dict):
            raise InvalidCampaignError(path, "must be an object")
        code = item.get("code")
        if not isinstance(code, str) or not _CODE.fullmatch(code) or code == HOLDOUT:
            raise InvalidCampaignError(
                f"{path}.code", "must be 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit, not holdout"
            )
        if any(known.code == code for known in strategies):
            raise InvalidCampaignError(f"{path}.code", "is already the code of an earlier strategy")
        weight = _number(item.get("weight"), f"{path}.weight")
        if weight <= 0:
            raise InvalidCampaignError(f"{path}.weight", "must be more than 0")
        variables = item.get("variables", {})
        if not isinstance(variables, dict):
            raise InvalidCampaignError(f"{path}.variables", "must be an object")
        incentive = item.get("incentive")
        strategies.append(
            Strategy(
                code=code,
                weight=weight,
                template=_text(item.get("template"), f"{path}.template", 200),
                variables=variables,
                incentive=None if incentive is None else _incentive(incentive, f"{path}.incentive"),
            )
        )
    return tuple(strategies)


def _incentive(raw: object, path: str) -> CampaignIncentive:
    if not isinstance(raw, dict):
        raise InvalidCampaignError(path, "must be an object")
    kind = raw.get("kind")
    if kind not in INCENTIVE_KINDS:
        raise InvalidCampaignError(f"{path}.kind", f"must be one of {', '.join(INCENTIVE_KINDS)}")
    if kind == "points":
        points = raw.get("points")
        if not isinstance(points, int) or isinstance(points, bool) or not 0 < points <= MAX_POINTS:
            raise InvalidCampaignError(f"{path}.points", f"must be an integer from 1 to {MAX_POINTS:,}")
        return CampaignIncentive(kind="points", points=points)
    value = raw.get("value")
    min_spend = raw.get("min_spend")
    return CampaignIncentive(
        kind=kind,
        value=_money(value, f"{path}.value", positive=kind == "coupon")
        if value is not None or kind == "coupon"
        else None,
        min_spend=None if min_spend is None else _money(min_spend, f"{path}.min_spend", positive=False),
        valid_for=parse_duration(raw.get("valid_for", "P30D"), f"{path}.valid_for"),
    )


def _waves(raw: object) -> tuple[Wave, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidCampaignError("waves", "must be a non-empty list")
    if len(raw) > MAX_WAVES:
        raise InvalidCampaignError("waves", f"at most {MAX_WAVES} waves")
    waves: list[Wave] = []
    for index, item in enumerate(raw):
        path = f"waves[{index}]"
        if not isinstance(item, dict):
            raise InvalidCampaignError(path, "must be an object")
        at = _time(item.get("at"), f"{path}.at")
        if waves and at <= waves[-1].at:
            raise InvalidCampaignError(f"{path}.at", "must be later than the wave before it")
        audience = item.get("audience", "all")
        if audience not in AUDIENCES:
            raise InvalidCampaignError(f"{path}.audience", f"must be one of {', '.join(AUDIENCES)}")
        if audience == "not_converted" and not waves:
            raise InvalidCampaignError(f"{path}.audience", "the first wave has no earlier wave to convert since")
        waves.append(Wave(index + 1, at, audience))
    return tuple(waves)


def _text(value: object, path: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidCampaignError(path, f"must be text of 1 to {limit} characters")
    return value


def _number(value: object, path: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidCampaignError(path, "must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation as error:
        raise InvalidCampaignError(path, "must be a number") from error
    if not number.is_finite():
        raise InvalidCampaignError(path, "must be a finite number")
    return number


def _money(value: object, path: str, *, positive: bool) -> Decimal:
    if not isinstance(value, str):
        raise InvalidCampaignError(path, 'must be a decimal string such as "10.00"')
    amount = _number(value, path)
    if amount < 0 or (positive and amount == 0) or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidCampaignError(path, "must be a positive amount with at most 2 decimals")
    return amount


def _time(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidCampaignError(path, "must be an RFC 3339 time with an offset")
    try:
        at = datetime.fromisoformat(value)
    except ValueError as error:
        raise InvalidCampaignError(path, "must be an RFC 3339 time with an offset") from error
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidCampaignError(path, "must be an RFC 3339 time with an offset")
    return at


# --- assignment -----------------------------------------------------------------------------------


def bucket(campaign_id: str, member_id: str, purpose: str) -> int:
    """A bucket in [0, 10 000) of (campaign, member): the first 15 hex digits of a SHA-256, modulo 10 000.

    15 hex digits (60 bits) keep the number positive as a PostgreSQL bigint, so SQL computes
    the same bucket for the same text (``bucket_sql``).
    """
    digest = hashlib.sha256(f"{purpose}|{campaign_id}|{member_id}".encode()).hexdigest()
    return int(digest[:15], 16) % BUCKETS


def bucket_sql(campaign_param: str, member_column: str, purpose: str) -> str:
    """The SQL expression of ``bucket`` for a bound campaign id and a member id column."""
    text = f"'{purpose}|' || :{campaign_param} || '|' || {member_column}"
    return f"(('x' || substr(encode(sha256(convert_to({text}, 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint % {BUCKETS})"


@dataclass(frozen=True, slots=True)
class Assignment:
    """Who gets which strategy, or the holdout: the same in every wave of the campaign.

    The holdout takes the buckets below ``holdout_percent`` of one hash; everyone else is given
    a strategy by a second, independent hash, in proportion to the weights. Built once per plan:
    a wave asks it of every member.
    """

    strategies: tuple[Strategy, ...]
    holdout_buckets: int
    total: Decimal
    bounds: tuple[Decimal, ...]  # the running sum of the weights, strategy by strategy

    @classmethod
    def of(cls, strategies: Sequence[Strategy], holdout_percent: int) -> Assignment:
        bounds = tuple(itertools.accumulate(strategy.weight for strategy in strategies))
        return cls(
            tuple(strategies),
            holdout_percent * (BUCKETS // 100),
            sum((s.weight for s in strategies), Decimal(0)),
            bounds,
        )

    def strategy_of(self, campaign_id: str, member_id: str) -> Strategy | None:
        """The member's strategy; None for the holdout."""
        if bucket(campaign_id, member_id, HOLDOUT) < self.holdout_buckets:
            return None
        point = Decimal(bucket(campaign_id, member_id, "strategy")) / BUCKETS * self.total
        for strategy, bound in zip(self.strategies, self.bounds, strict=True):
            if point < bound:
                return strategy
        return self.strategies[-1]


def assign(campaign_id: str, member_id: str, strategies: Sequence[Strategy], holdout_percent: int) -> str:
    """The member's strategy code, or ``HOLDOUT`` (``Assignment``)."""
    strategy = Assignment.of(strategies, holdout_percent).strategy_of(campaign_id, member_id)
    return HOLDOUT if strategy is None else strategy.code


# --- the stored plan ------------------------------------------------------------------------------


def plan_document(plan: CampaignPlan) -> dict[str, Any]:
    """The plan as the campaign row keeps it (JSON): the definition copied in, amounts as strings."""
    return {
        "name": plan.name,
        "segment_id": plan.segment_id,
        "definition": plan.definition_document,
        "strategies": [
            {
                "code": strategy.code,
                "weight": str(strategy.weight),
                "template": strategy.template,
                "variables": dict(strategy.variables),
                "incentive": None if strategy.incentive is None else _incentive_document(strategy.incentive),
            }
            for strategy in plan.strategies
        ],
        "holdout_percent": plan.holdout_percent,
        "waves": [{"at": wave.at.isoformat(), "audience": wave.audience} for wave in plan.waves],
        "attribution_window": plan.attribution_window.text,
        "budget": None if plan.budget is None else str(plan.budget),
    }


def _incentive_document(incentive: CampaignIncentive) -> dict[str, Any]:
    document: dict[str, Any] = {"kind": incentive.kind}
    if incentive.kind == "points":
        document["points"] = incentive.points
        return document
    if incentive.value is not None:
        document["value"] = str(incentive.value)
    if incentive.min_spend is not None:
        document["min_spend"] = str(incentive.min_spend)
    if incentive.valid_for is not None:
        document["valid_for"] = incentive.valid_for.text
    return document


def stored_plan(document: Mapping[str, Any]) -> CampaignPlan:
    """A plan read back from its row: its copied definition, whatever became of the segment since."""
    plan = parse_plan({**document, "segment_id": None})
    return dataclasses.replace(plan, segment_id=document.get("segment_id"))
