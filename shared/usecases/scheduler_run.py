"""The scheduler: runs every time-based rule due up to a business time ``as_of``.

Where time moves state: members whose indexed ``next_due_at`` has come are claimed in
batches by a unit of work (SKIP LOCKED, so concurrent runs and the event path never wait
on each other), the pure domain (``shared.domain.due_rules.run_due``) handles their due
items on the items' own due times, and the unit of work writes members, orders, ledger
lines, actions and outbox rows in the batch's transaction. Then the wallet's open coupons whose
reminder or expiry has come are claimed the same way, in batches of their own, set-based, without
loading their members (``shared.domain.coupon_expiry``). Then campaign waves whose time has come are
started and worked through in claimed batches of their targets (``shared.usecases.campaign_run``).
A run touches only what is due; running the same ``as_of`` again finds nothing left and emits nothing.

A run asked to stop (``Scheduler.stop``, e.g. an operator's Ctrl-C) ends after the batches in
progress commit: every batch is one transaction, so what a stopped run leaves is whole batches,
and the next run to the same ``as_of`` goes on with what is still due.
"""

from __future__ import annotations

import asyncio
import functools
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from shared.db.error_triage import describe
from shared.domain.coupon_expiry import reminder_lead, run_coupon
from shared.domain.decisions import MemberContext
from shared.domain.due_rules import run_due
from shared.domain.model import ActionDecision
from shared.domain.playbook import Playbook, ShopPlaybook
from shared.store.unit_of_work import Key, UnitsOfWork
from shared.usecases.campaign_run import WaveRunner
from shared.usecases.incentive_inputs import attach_incentive_inputs

log = structlog.get_logger(__name__)

RETRY_LATER = timedelta(hours=1)  # a member whose plan did not move past the run is looked at again this much later

BatchDone = Callable[["SchedulerReport"], None]
"""Called after each batch commits with the run's report so far (a progress display); it must be quick."""


@dataclass(slots=True)
class SchedulerReport:
    """What one run did, for the API's answer, the CLI's output and metrics."""

    as_of: datetime
    members: int = 0
    actions: int = 0
    failed_members: int = 0
    late_skipped: int = 0
    rfm_shops: int = 0
    batches: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)  # incentive decisions by outcome
    coupons_expired: int = 0
    waves_started: int = 0
    waves_run: int = 0  # waves this run finished (marked done)
    waves_cancelled: int = 0
    wave_members: int = 0  # wave targets decided

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat(),
            "members": self.members,
            "actions": self.actions,
            "actions_by_rule": dict(sorted(self.by_rule.items())),
            "failed_members": self.failed_members,
            "late_skipped": self.late_skipped,
            "decisions": dict(sorted(self.decisions.items())),
            "coupons_expired": self.coupons_expired,
            "waves_started": self.waves_started,
            "waves_run": self.waves_run,
            "waves_cancelled": self.waves_cancelled,
            "wave_members": self.wave_members,
            "rfm_shops": self.rfm_shops,
            "batches": self.batches,
        }


class Scheduler:
    def __init__(
        self,
        units: UnitsOfWork,
        playbook: Playbook,
        batch_size: int = 500,
        wave_batch_size: int = 5_000,
        wave_lanes: int = 2,
    ) -> None:
        self._units = units
        self._playbook = playbook
        self._batch_size = batch_size
        self._stopping = asyncio.Event()
        self._waves = WaveRunner(units, playbook, wave_batch_size, wave_lanes, stopping=self._stopping)

    def stop(self) -> None:
        """Ends the run under way once the batches in progress have committed; later runs go on from there."""
        self._stopping.set()

    @property
    def stopped(self) -> bool:
        """Whether a stop was asked for: the last run may have left due work for the next one."""
        return self._stopping.is_set()

    async def run(
        self, as_of: datetime, wait_for_locked_s: float = 30.0, on_batch: BatchDone | None = None
    ) -> SchedulerReport:
        """Runs everything due up to ``as_of``; returns once nothing due is left, or once asked to stop.

        Members held by another transaction are waited for, up to ``wait_for_locked_s``,
        so the run's answer covers them too. ``on_batch`` hears of every batch committed.
        """
        report = SchedulerReport(as_of=as_of)
        await self._refresh_rfm(as_of, report)
        waited = 0.0
        while not self._stopping.is_set():
            if await self._run_batch(as_of, report, on_batch):
                continue
            if await self._run_coupons(as_of, report, on_batch):
                continue
            if await self._waves.step(as_of, report, on_batch):
                continue
            async with self._units() as uow:
                remaining = await uow.count_due(as_of)
            if remaining == 0 or waited >= wait_for_locked_s:
                break
            await asyncio.sleep(0.05)
            waited += 0.05
        log.info("scheduler.run", **report.as_dict(), **({"stopped": True} if self._stopping.is_set() else {}))
        return report

    async def _refresh_rfm(self, as_of: datetime, report: SchedulerReport) -> None:
        """Recomputes the RFM edges of shops whose edges are older than the shop's interval."""
        async with self._units() as uow:
            shops = await uow.rfm_shops()
            stale = [
                shop
                for shop, computed in shops.items()
                if computed is None
                or as_of - computed >= timedelta(hours=self._playbook.for_shop(shop).rfm.recompute_every_hours)
            ]
            report.rfm_shops = await uow.compute_rfm_edges(sorted(stale), as_of)
            await uow.commit()

    async def _run_batch(self, as_of: datetime, report: SchedulerReport, on_batch: BatchDone | None) -> bool:
        """One transaction over a batch of due members; False when none could be claimed."""
        async with self._units() as uow:
            contexts = await uow.claim_due_members(as_of, self._batch_size)
            if not contexts:
                return False
            playbooks = functools.cache(self._playbook.for_shop)  # as in force when the batch began
            earliest = min((c.member.next_due_at for c in contexts.values() if c.member.next_due_at), default=None)
            await attach_incentive_inputs(uow, contexts, playbooks, earliest)
            decisions: list[ActionDecision] = []
            failed: list[tuple[Key, str, str]] = []
            for key in sorted(contexts):
                outcome = self._run_member(contexts[key], playbooks(key[0]), as_of, report)
                if isinstance(outcome, str):
                    failed.append((key, "processing_error", outcome))
                    del contexts[key]
                else:
                    decisions.extend(outcome)
            uow.quarantine(failed)
            uow.save(contexts.values())
            uow.add_actions(decisions)
            new_rules = await uow.commit()
        report.batches += 1
        report.members += len(contexts) + len(failed)
        report.actions += len(new_rules)
        report.by_rule.update(new_rules)
        if on_batch is not None:
            on_batch(report)
        return True

    async def _run_coupons(self, as_of: datetime, report: SchedulerReport, on_batch: BatchDone | None) -> bool:
        """One transaction over a batch of coupons whose reminder or expiry is due; False when none could be claimed."""
        playbook = self._playbook
        leads = {shop: reminder_lead(shop_playbook) for shop, shop_playbook in playbook.shops.items()}
        async with self._units() as uow:
            coupons = await uow.claim_due_coupons(as_of, self._batch_size, leads, reminder_lead(playbook.default))
            if not coupons:
                return False
            passes = [
                (coupon.shop_id, run_coupon(coupon, playbook.for_shop(coupon.shop_id), as_of)) for coupon in coupons
            ]
            uow.pass_coupons((shop, done.change) for shop, done in passes if done.change is not None)
            uow.add_actions(done.reminder for _, done in passes if done.reminder is not None)
            new_rules = await uow.commit()
        report.batches += 1
        report.actions += len(new_rules)
        report.by_rule.update(new_rules)
        report.coupons_expired += sum(done.expired for _, done in passes)
        report.late_skipped += sum(done.late for _, done in passes)
        if on_batch is not None:
            on_batch(report)
        return True

    def _run_member(
        self, context: MemberContext, playbook: ShopPlaybook, as_of: datetime, report: SchedulerReport
    ) -> list[ActionDecision] | str:
        """The member's due items, or why they failed: the member is then left as it was and quarantined."""
        member = context.member
        try:
            actions = run_due(context, playbook, as_of)
        except Exception as error:
            log.error(
                "scheduler.member_failed",
                shop_id=member.shop_id,
                error_type=type(error).__name__,
                stack="".join(traceback.format_tb(error.__traceback__)),
            )
            report.failed_members += 1
            return f"{describe(error)} while running the member's due items"
        report.late_skipped += len(context.late)
        report.decisions.update(decision.outcome for decision in context.decisions)
        if member.next_due_at is not None and member.next_due_at <= as_of:
            log.error("scheduler.member_stuck", shop_id=member.shop_id, due=member.next_due_at.isoformat())
            member.next_due_at = as_of + RETRY_LATER
        return actions
