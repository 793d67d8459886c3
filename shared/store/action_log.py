"""The action log: every action decided, and the outbox row that carries each new one to ``member.actions``."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contract.actions import Action, CampaignRef, Incentive, Message
from shared.db.schema import actions
from shared.domain.model import ActionDecision
from shared.store.bulk_sql import insert_rows, json_rows


def action_row(decision: ActionDecision, created_at: datetime) -> tuple[Any, ...]:
    """The outbox row (``insert_actions`` column order) with its contract payload.

    The payload is built through the contract's ``Action`` model, so an action that breaks
    the contract fails here rather than reach ``member.actions``; times and amounts keep
    their text (``dump_json``: RFC 3339 with the offset, decimal strings).
    """
    fields: dict[str, Any] = {
        "action_id": decision.action_id,
        "shop_id": decision.shop_id,
        "member_id": decision.member_id,
        "rule": decision.rule,
        "category": decision.category,
        "trigger": dict(decision.trigger),
        "occurred_at": decision.occurred_at,
        "created_at": created_at,
        "message": Message(template=decision.template, variables=dict(decision.variables)),
        "playbook_version": decision.playbook_version,
    }
    if decision.campaign is not None:
        fields["campaign"] = CampaignRef(**decision.campaign)
    if decision.incentive is not None:
        fields["incentive"] = Incentive(**decision.incentive)
    payload = Action(**fields).model_dump(exclude_unset=True)
    return (
        decision.action_id,
        decision.shop_id,
        decision.member_id,
        decision.rule,
        decision.category,
        decision.occurred_at,
        created_at,
        payload,
    )


COLUMNS = ["action_id", "shop_id", "member_id", "rule", "category", "occurred_at", "created_at", "payload"]
_EMPTY = "[]"


def log_and_queue(insert: str, *, skip_logged: bool = True) -> str:
    """Parts ``new`` (the actions ``insert`` logs, an ``INSERT INTO actions`` of ``COLUMNS``) and ``queued``.

    An action id logged before is neither logged nor queued again; ``new`` returns each new action's rule.
    ``skip_logged=False`` is for a writer that cannot meet its ids again: an id met again is then an error.
    """
    conflict = " ON CONFLICT (action_id) DO NOTHING" if skip_logged else ""
    return (
        f"new AS ({insert}{conflict} "
        "RETURNING shop_id, member_id, rule, payload, occurred_at), "
        "queued AS (INSERT INTO outbox (stream, key, payload, event_time) "
        "SELECT 'actions', shop_id || ':' || member_id, payload::text, occurred_at FROM new)"
    )


@functools.cache
def _statement(companions: tuple[str, ...]) -> TextClause:
    """Actions and their outbox rows, with ``companions`` (statements of their own JSON parameters) as parts."""
    parts = "".join(f"part{index} AS ({sql}), " for index, sql in enumerate(companions))
    return text(f"WITH {parts}{log_and_queue(insert_rows(actions, COLUMNS))} SELECT rule FROM new")


async def insert_actions(
    connection: AsyncConnection,
    rows: Sequence[Sequence[Any]],
    companions: tuple[str, ...] = (),
    parameters: Mapping[str, str] | None = None,
) -> list[str]:
    """Logs actions (``action_row`` values) and queues the new ones in the outbox.

    ``companions`` are more writes of the batch (its decisions, coupons ...) that travel in the
    same statement, each reading its own JSON parameter of ``parameters``: one round trip for all.
    Returns the rules of the new actions; an action id seen before is neither logged nor queued again.
    """
    extra = dict(parameters or {})
    if not rows and all(value == _EMPTY for value in extra.values()):
        return []
    result = await connection.execute(_statement(companions), {**json_rows(rows), **extra})
    return [row[0] for row in result]
