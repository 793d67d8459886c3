"""Running campaign waves: the scheduler's pass over waves whose time has come.

Each step starts one pending wave (its audience fixed in PostgreSQL as of the wave's time, in
one transaction), or works a running wave's targets in claimed batches until none is left
(``lanes`` side by side, each batch in its own transaction), or marks a wave with no open
target done. Targets are claimed SKIP LOCKED and deleted with everything their batch writes,
so concurrent runs share a wave, a run stopped mid-wave is resumed by the next one where it
stopped, and each (wave, member) is decided once. Members are loaded only for batches whose
strategies credit points; everything else is decided from the member's id alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from shared.audience.segment_query import Audience
from shared.domain import incentives
from shared.domain.budgets import TOTAL, period_start
from shared.domain.campaign_waves import (
    DueWave,
    WaveRun,
    budget_scope,
    conversion_windows,
    decide_batch,
    gives_points,
)
from shared.domain.campaigns import stored_plan
from shared.domain.playbook import Playbook
from shared.domain.segments import fields_used
from shared.store.unit_of_work import Key, UnitsOfWork

if TYPE_CHECKING:
    from shared.usecases.scheduler_run import BatchDone, SchedulerReport

__all__ = ["WaveRunner"]


class WaveRunner:
    """Steps through the waves due by a business time, one transaction a step."""

    def __init__(
        self,
        units: UnitsOfWork,
        playbook: Playbook,
        batch_size: int = 5_000,
        lanes: int = 2,
        *,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self._units = units
        self._playbook = playbook
        self._batch_size = batch_size
        self._lanes = lanes
        # Set when the run is asked to stop: each lane ends after the batch it is in, which commits.
        self._stopping = stopping or asyncio.Event()
        # Per wave, the member its last claimed batch ended with: the next claim starts after it. A
        # batch rolled back leaves targets behind it; a claim that finds none after it starts over.
        self._claimed_up_to: dict[tuple[str, str, int], str] = {}
        # This runner's lanes claim one after the other (claims are quick; the batches' writes are
        # not), so a lane never steps over the targets another lane holds: a claim made beside
        # another skips each of that one's locked rows, one by one.
        self._claiming = asyncio.Lock()

    async def step(self, as_of: datetime, report: SchedulerReport, on_batch: BatchDone | None = None) -> bool:
        """Starts a due wave, or works a running one until its targets run out; False when nothing could be done."""
        if await self._start(as_of, report):
            return True
        async with self._units() as uow:
            waves = await uow.running_waves(as_of)
        for wave in waves:
            failed = asyncio.Event()
            lanes = await asyncio.gather(
                *(self._lane(wave, as_of, report, failed, on_batch) for _ in range(self._lanes)),
                return_exceptions=True,
            )
            for outcome in lanes:
                if isinstance(outcome, BaseException):
                    raise outcome
            if any(lanes) or await self._finish(wave, report):
                return True
        return False

    async def _lane(
        self, due: DueWave, as_of: datetime, report: SchedulerReport, failed: asyncio.Event, on_batch: BatchDone | None
    ) -> bool:
        """Decides batches of the wave, one transaction each, until none is left; whether any was.

        Lanes run side by side, each at its own pace: while one waits on PostgreSQL another
        decides, and the database writes two batches on two cores. When a lane fails, the
        others stop after the batch they are in, and the error is raised; when the run is asked
        to stop, every lane stops after its batch, and the wave's other targets wait for the next run.
        """
        decided = False
        try:
            while (
                not failed.is_set() and not self._stopping.is_set() and await self._batch(due, as_of, report, on_batch)
            ):
                decided = True
        except BaseException:
            failed.set()
            raise
        return decided

    async def _start(self, as_of: datetime, report: SchedulerReport) -> bool:
        """Starts the earliest pending wave due: its audience, as of its time, becomes its targets."""
        async with self._units() as uow:
            report.waves_cancelled += await uow.cancel_waves()
            due = await uow.claim_pending_wave(as_of)
            if due is None:
                await uow.commit()
                return False
            plan = stored_plan(due.plan)
            if plan.definition is None:
                raise RuntimeError(f"campaign {due.campaign_id} has no segment definition")
            edges = await uow.rfm_edges(due.shop_id) if "rfm_segment" in fields_used(plan.definition) else None
            audience = Audience(plan.definition, due.shop_id, self._playbook.for_shop(due.shop_id), due.at, edges)
            await uow.start_wave(due, audience.where())
            await uow.commit()
        report.waves_started += 1
        return True

    def _run(self, due: DueWave, as_of: datetime) -> WaveRun:
        plan = stored_plan(due.plan)
        waves = list(plan.waves)
        # The wave's row is its truth: the time and audience it was scheduled with.
        waves[due.wave - 1] = dataclasses.replace(waves[due.wave - 1], at=due.at, audience=due.audience)
        plan = dataclasses.replace(plan, waves=tuple(waves))
        return WaveRun.of(due, plan, self._playbook.for_shop(due.shop_id), as_of)

    async def _batch(self, due: DueWave, as_of: datetime, report: SchedulerReport, on_batch: BatchDone | None) -> bool:
        """Decides one claimed batch of the wave's open targets; False when none could be claimed."""
        run = self._run(due, as_of)
        shop = due.shop_id
        filtered = run.wave.audience == "not_converted" and not run.late
        key = (due.shop_id, due.campaign_id, due.wave)
        windows = conversion_windows(run.plan, due.wave) if filtered else []
        async with self._units() as uow:
            async with self._claiming:
                after = self._claimed_up_to.get(key, "")
                claimed = await uow.claim_targets(due, self._batch_size, windows, after)
                if not claimed and after:
                    self._claimed_up_to.pop(key, None)
                    claimed = await uow.claim_targets(due, self._batch_size, windows)
                if not claimed:
                    return False
                self._claimed_up_to[key] = max(self._claimed_up_to.get(key, ""), claimed[-1][0])
            # Only members whose points are credited are locked and loaded, with their ledgers; a plan
            # without a points strategy spares every member the assignment's hashing here.
            points = any(gives_points(strategy) for strategy in run.plan.strategies)
            keys: list[Key] = [
                (shop, member)
                for member, converted in claimed
                if points and not run.late and not converted and gives_points(run.strategy_of(member))
            ]
            loaded = await uow.load_members(keys, ledgers=True, create=False) if keys else None
            contexts = {}
            if loaded is not None:  # a quarantined member's state is not trusted: it is not credited
                contexts = {key: c for key, c in loaded.contexts.items() if key not in loaded.quarantined}
            budgets = None
            if run.plan.budget is not None and not run.late:
                since = period_start(TOTAL, due.at, ZoneInfo("UTC"))
                budgets = await uow.lock_budgets([(shop, budget_scope(due.campaign_id))], since)
            batch = decide_batch(
                run, claimed, budgets=budgets, contexts={member: c for (_, member), c in contexts.items()}
            )
            uow.add_wave_batch(batch)
            uow.save(context for context in contexts.values() if context.new_ledger)
            new_rules = await uow.commit()
        outcomes = batch.outcomes()
        report.batches += 1
        report.wave_members += len(claimed)
        report.actions += len(new_rules)
        report.by_rule.update(new_rules)
        report.decisions.update(outcomes)
        report.late_skipped += outcomes.count(incentives.LATE_SKIPPED)
        if on_batch is not None:
            on_batch(report)
        return True

    async def _finish(self, due: DueWave, report: SchedulerReport) -> bool:
        """Marks the wave done when no target is open (others may still hold some: then not yet)."""
        async with self._units() as uow:
            finished = await uow.finish_wave(due)
            await uow.commit()
        if finished:
            report.waves_run += 1
            self._claimed_up_to.pop((due.shop_id, due.campaign_id, due.wave), None)
        return finished
