"""A campaign wave, member by member: what one member of a wave's audience gets, and why.

The scheduler materialises a wave's audience in PostgreSQL and hands the members over in
batches; this module decides each of them without any I/O. The outcome is a function of the
campaign, the wave and the member (and the budget left), so a batch decided again after a
crash gives the same ids, codes and records, and the store keeps each of them once.

Order of the checks: a wave handled later than the playbook's ``schedule.max_lateness`` sends
nothing (``late_skipped``); a member of the holdout gets nothing (``holdout``); in a
``not_converted`` wave a member who converted since the first wave it was in gets nothing
(``not_converted_filter``); an incentive the campaign's total budget cannot cover is not given
(``budget_exhausted``); otherwise the action leaves (``emitted``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.domain import incentives
from shared.domain.budgets import BudgetBook
from shared.domain.campaigns import HOLDOUT, Assignment, CampaignIncentive, CampaignPlan, Strategy, Wave
from shared.domain.decisions import Decider, MemberContext, action_id, incentive_code, incentive_payload
from shared.domain.due_rules import next_due
from shared.domain.model import ZERO, ActionDecision, Coupon, Decision
from shared.domain.money import round_money
from shared.domain.playbook import ShopPlaybook

__all__ = [
    "MEMBER_UNKNOWN",
    "NOT_CONVERTED_FILTER",
    "RULE",
    "ConversionWindow",
    "DueWave",
    "MemberOutcome",
    "WaveBatch",
    "WaveRun",
    "budget_scope",
    "conversion_windows",
    "decide_batch",
    "decide_member",
    "gives_points",
    "wave_action_id",
]

RULE = "campaign"  # the rule of every campaign action and decision
NOT_CONVERTED_FILTER = "not_converted_filter"
MEMBER_UNKNOWN = "member_unknown"  # points for a member whose row is gone (erased since the wave started)


@dataclass(frozen=True, slots=True)
class DueWave:
    """A wave as the store hands it over: its campaign's stored plan document included."""

    shop_id: str
    campaign_id: str
    wave: int
    at: datetime
    audience: str
    plan: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ConversionWindow:
    """Paid orders in (start, stop] convert a member whose first wave of the campaign is ``wave``."""

    wave: int
    start: datetime
    stop: datetime


def conversion_windows(plan: CampaignPlan, wave: int) -> list[ConversionWindow]:
    """For a ``not_converted`` wave: each earlier wave's attribution window, cut at this wave's time."""
    at = plan.waves[wave - 1].at
    return [
        ConversionWindow(earlier.number, earlier.at, min(plan.attribution_window.after(earlier.at), at))
        for earlier in plan.waves
        if earlier.number < wave
    ]


def budget_scope(campaign_id: str) -> str:
    """The budget scope of a campaign's total budget (``budget_spend.scope``)."""
    return f"campaign:{campaign_id}"


def wave_action_id(shop_id: str, member_id: str, campaign_id: str, wave: int) -> str:
    """The action's (and decision's) id: one per (campaign, wave, member), however often it is decided."""
    return action_id(shop_id, member_id, RULE, f"{campaign_id}|{wave}")


@dataclass(frozen=True, slots=True)
class WaveRun:
    """One wave being handled at ``as_of``: its plan, the shop's playbook and whether it is too late to send."""

    shop_id: str
    campaign_id: str
    wave: Wave
    plan: CampaignPlan
    playbook: ShopPlaybook
    late: bool
    assignment: Assignment

    @classmethod
    def of(cls, due: DueWave, plan: CampaignPlan, playbook: ShopPlaybook, as_of: datetime) -> WaveRun:
        lateness = playbook.schedule.max_lateness
        late = lateness is not None and as_of - due.at > lateness
        assignment = Assignment.of(plan.strategies, plan.holdout_percent)
        return cls(due.shop_id, due.campaign_id, plan.waves[due.wave - 1], plan, playbook, late, assignment)

    def strategy_of(self, member_id: str) -> Strategy | None:
        """The member's strategy; None for the holdout."""
        return self.assignment.strategy_of(self.campaign_id, member_id)

    def value_of(self, strategy: Strategy | None) -> Decimal:
        """What the strategy's incentive costs the campaign's budget."""
        return _value(strategy.incentive if strategy is not None else None, self.playbook)


def gives_points(strategy: Strategy | None) -> bool:
    return strategy is not None and strategy.incentive is not None and strategy.incentive.kind == "points"


@dataclass(slots=True)
class MemberOutcome:
    """What one member of a wave gets: always a decision; an action (and a coupon) when emitted."""

    decision: Decision
    action: ActionDecision | None = None
    coupon: Coupon | None = None


def _value(incentive: CampaignIncentive | None, playbook: ShopPlaybook) -> Decimal:
    """What the incentive costs the campaign's budget: face value, or points at ``value_per_point``."""
    if incentive is None:
        return ZERO
    if incentive.kind == "points":
        return round_money(Decimal(incentive.points or 0) * playbook.points.value_per_point)
    return round_money(incentive.value) if incentive.value is not None else ZERO


def _outcome(
    run: WaveRun,
    strategy: Strategy | None,
    value: Decimal,
    *,
    converted: bool,
    budgets: BudgetBook | None,
    known: bool,
) -> tuple[str, str]:
    """The outcome and its reason, by the checks in the module's order (spending the budget when it fits)."""
    shop, campaign, playbook = run.shop_id, run.campaign_id, run.playbook
    incentive = strategy.incentive if strategy is not None else None
    if run.late:
        lateness = playbook.schedule.max_lateness
        reason = f"the wave was handled more than {lateness} after its time (schedule.max_lateness)"
        return incentives.LATE_SKIPPED, reason
    if strategy is None:
        return incentives.HOLDOUT, f"the member is in the campaign's {run.plan.holdout_percent} % holdout"
    if converted and run.wave.audience == "not_converted":
        reason = "the member converted since its first wave of the campaign; this wave is for those who did not"
        return NOT_CONVERTED_FILTER, reason
    if gives_points(strategy) and not known:
        return MEMBER_UNKNOWN, "the member is no longer known, so no points can be credited"
    if run.plan.budget is not None and incentive is not None:
        if budgets is None:
            raise RuntimeError(f"the budget of campaign {campaign} was not loaded")
        if not budgets.spend_total_within(shop, budget_scope(campaign), run.plan.budget, value):
            spent = budgets.total_spent(shop, budget_scope(campaign))
            reason = f"{spent} of the campaign's total budget of {run.plan.budget} spent; this incentive is {value}"
            return incentives.BUDGET_EXHAUSTED, reason
    return incentives.EMITTED, "given"


def decide_member(
    run: WaveRun,
    member_id: str,
    *,
    converted: bool = False,
    budgets: BudgetBook | None = None,
    context: MemberContext | None = None,
) -> MemberOutcome:
    """One member's outcome in the wave.

    ``converted``: the member paid an order in the attribution window of its first wave (asked
    only of ``not_converted`` waves). ``budgets`` holds the campaign's locked total budget when
    it has one; ``context`` is the member, locked and loaded, when its strategy gives points.
    """
    strategy = run.strategy_of(member_id)
    value = run.value_of(strategy)
    outcome, reason = _outcome(run, strategy, value, converted=converted, budgets=budgets, known=context is not None)
    return _member_outcome(run, member_id, strategy, value, outcome, reason, context)


def _member_outcome(
    run: WaveRun,
    member_id: str,
    strategy: Strategy | None,
    value: Decimal,
    outcome: str,
    reason: str,
    context: MemberContext | None,
) -> MemberOutcome:
    """The records of one member's outcome: its decision, and its action and coupon when emitted."""
    shop, campaign, wave, playbook = run.shop_id, run.campaign_id, run.wave, run.playbook
    ident = wave_action_id(shop, member_id, campaign, wave.number)
    incentive = strategy.incentive if strategy is not None else None
    emitted = outcome == incentives.EMITTED
    coupon_given = emitted and incentive is not None and incentive.kind == "coupon"
    decision = Decision(
        decision_id=ident,
        shop_id=shop,
        member_id=member_id,
        rule=RULE,
        outcome=outcome,
        reason=reason,
        at=wave.at,
        action_id=ident if emitted else None,
        code=incentive_code("coupon", ident) if coupon_given else None,
        kind=incentive.kind if incentive is not None else None,
        value=value,
        points=(incentive.points or 0) if incentive is not None and incentive.kind == "points" else 0,
        playbook_version=playbook.version,
        campaign_id=campaign,
        wave=wave.number,
        strategy=strategy.code if strategy is not None else None,
    )
    if not emitted or strategy is None:
        return MemberOutcome(decision)
    body = None if incentive is None else _incentive_body(incentive, ident, wave.at)
    coupon = None
    if incentive is not None and body is not None and incentive.kind == "coupon":
        coupon = _coupon(run, member_id, ident, incentive, body)
    if incentive is not None and body is not None and incentive.kind == "points" and context is not None:
        body["expires_at"] = _credit(run, context, incentive.points or 0)
    action = ActionDecision(
        action_id=ident,
        shop_id=shop,
        member_id=member_id,
        rule=RULE,
        category="incentive",
        trigger={"schedule": RULE, "due_at": wave.at.isoformat()},
        occurred_at=wave.at,
        template=strategy.template,
        variables=dict(strategy.variables),
        incentive=body,
        playbook_version=playbook.version,
        campaign={"campaign_id": campaign, "wave": wave.number, "strategy": strategy.code},
    )
    return MemberOutcome(decision, action, coupon)


@dataclass(slots=True)
class WaveBatch:
    """A batch's outcomes as columns: what members of one group and outcome share is decided once.

    Each member not credited points has one entry in the columns: its id, its action id (also
    its decision's), the code of its coupon or sample (when emitted with one), the variant it
    belongs to and, when its reason is its own (a budget's spent amount), that reason. A
    variant's ``example`` is the full outcome of its first member; every other member of the
    variant gets the same records with its own values in those fields (``expand``), which is
    how the store writes a whole batch in one set-based statement. Members credited points were
    decided one by one on their loaded state (``credited``).
    """

    shop_id: str
    campaign_id: str
    wave: int
    at: datetime
    examples: list[MemberOutcome] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    action_ids: list[str] = field(default_factory=list)
    codes: list[str | None] = field(default_factory=list)
    variants: list[int] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    credited: list[MemberOutcome] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.members) + len(self.credited)

    def outcomes(self) -> list[str]:
        """Every member's outcome (``emitted``, ``holdout`` ...), for the run's report."""
        shared = [self.examples[variant].decision.outcome for variant in self.variants]
        return shared + [outcome.decision.outcome for outcome in self.credited]

    def reached(self) -> tuple[list[str], list[str]]:
        """The members the wave reached (given the incentive or held out), and each one's group."""
        groups = [_reached_group(example.decision) for example in self.examples]
        members, codes = [], []
        for member, variant in zip(self.members, self.variants, strict=True):
            if (group := groups[variant]) is not None:
                members.append(member)
                codes.append(group)
        for outcome in self.credited:
            if (group := _reached_group(outcome.decision)) is not None:
                members.append(outcome.decision.member_id)
                codes.append(group)
        return members, codes

    def sends(self) -> dict[str, tuple[int, Decimal]]:
        """Actions sent per strategy, with the value of the points they credited."""
        counts = Counter(self.variants)
        sent: dict[str, tuple[int, Decimal]] = {}
        decisions = [(self.examples[v].decision, n) for v, n in counts.items()]
        decisions += [(outcome.decision, 1) for outcome in self.credited]
        for decision, n in decisions:
            if decision.outcome == incentives.EMITTED and decision.strategy is not None:
                members, value = sent.get(decision.strategy, (0, ZERO))
                points = decision.value * n if decision.kind == "points" else ZERO
                sent[decision.strategy] = (members + n, value + points)
        return sent

    def expand(self) -> list[MemberOutcome]:
        """Each columned member's full outcome, as ``decide_member`` gives it (the store writes it in SQL)."""
        expanded = []
        for member, ident, code, variant, reason in zip(
            self.members, self.action_ids, self.codes, self.variants, self.reasons, strict=True
        ):
            example = self.examples[variant]
            decision = dataclasses.replace(
                example.decision,
                decision_id=ident,
                member_id=member,
                reason=reason if reason is not None else example.decision.reason,
                action_id=ident if example.decision.action_id is not None else None,
                code=code if example.decision.code is not None else None,
            )
            action = coupon = None
            if example.action is not None:
                body = example.action.incentive
                if body is not None and "code" in body:
                    body = {**body, "code": code}
                action = dataclasses.replace(example.action, action_id=ident, member_id=member, incentive=body)
            if example.coupon is not None and code is not None:
                coupon = dataclasses.replace(example.coupon, code=code, member_id=member, action_id=ident)
            expanded.append(MemberOutcome(decision, action, coupon))
        return expanded


def _reached_group(decision: Decision) -> str | None:
    """The member's group when the decision reached it (the strategy's code, or the holdout); else None."""
    if decision.outcome == incentives.EMITTED and decision.strategy is not None:
        return decision.strategy
    return HOLDOUT if decision.outcome == incentives.HOLDOUT else None


def decide_batch(
    run: WaveRun,
    claimed: Sequence[tuple[str, bool]],
    *,
    budgets: BudgetBook | None = None,
    contexts: Mapping[str, MemberContext] | None = None,
) -> WaveBatch:
    """A batch of members (each with whether it converted), decided as ``decide_member`` would, in order.

    ``contexts`` are the loaded members whose strategy credits points, by member id.
    """
    batch = WaveBatch(run.shop_id, run.campaign_id, run.wave.number, run.wave.at)
    variants: dict[tuple[str | None, str], int] = {}
    loaded = contexts or {}
    shop, campaign, number = run.shop_id, run.campaign_id, run.wave.number
    for member, converted in claimed:
        strategy = run.strategy_of(member)
        if gives_points(strategy):
            context = loaded.get(member)
            batch.credited.append(decide_member(run, member, converted=converted, budgets=budgets, context=context))
            continue
        value = run.value_of(strategy)
        outcome, reason = _outcome(run, strategy, value, converted=converted, budgets=budgets, known=True)
        key = (strategy.code if strategy is not None else None, outcome)
        variant = variants.get(key)
        if variant is None:
            variant = variants[key] = len(batch.examples)
            batch.examples.append(_member_outcome(run, member, strategy, value, outcome, reason, None))
        ident = wave_action_id(shop, member, campaign, number)
        body = batch.examples[variant].action
        code = None
        if body is not None and body.incentive is not None and "code" in body.incentive:
            code = incentive_code(body.incentive["kind"], ident)
        batch.members.append(member)
        batch.action_ids.append(ident)
        batch.codes.append(code)
        batch.variants.append(variant)
        batch.reasons.append(reason if outcome == incentives.BUDGET_EXHAUSTED else None)
    return batch


def _incentive_body(incentive: CampaignIncentive, ident: str, at: datetime) -> dict[str, Any]:
    expires_at = incentive.valid_for.after(at) if incentive.valid_for is not None else None
    return incentive_payload(incentive.kind, ident, incentive.value, incentive.min_spend, incentive.points, expires_at)


def _coupon(run: WaveRun, member_id: str, ident: str, incentive: CampaignIncentive, body: Mapping[str, Any]) -> Coupon:
    at = run.wave.at
    return Coupon(
        shop_id=run.shop_id,
        code=str(body["code"]),
        member_id=member_id,
        rule=RULE,
        action_id=ident,
        value=round_money(incentive.value) if incentive.value is not None else ZERO,
        issued_at=at,
        expires_at=incentive.valid_for.after(at) if incentive.valid_for is not None else at,
        min_spend=round_money(incentive.min_spend) if incentive.min_spend is not None else None,
        campaign_id=run.campaign_id,
        playbook_version=run.playbook.version,
    )


def _credit(run: WaveRun, context: MemberContext, points: int) -> str | None:
    """Credits the points on the member's ledger (a gift under the wave's id); when they expire."""
    at = run.wave.at
    decider = Decider(context, run.playbook, at, {"schedule": RULE, "due_at": at.isoformat()})
    entry = decider.credit(f"{RULE}:{run.campaign_id}|{run.wave.number}", "gift", points)
    context.member.next_due_at = next_due(context, run.playbook)  # the new lot's expiry is scheduled
    return entry.expires_at.isoformat() if entry.expires_at is not None else None
