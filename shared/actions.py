"""An action decision as the row and contract payload that the outbox carries to ``member.actions``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.domain.model import ActionDecision


def action_row(decision: ActionDecision, created_at: datetime) -> tuple[Any, ...]:
    """The outbox row (``store.insert_actions`` column order) with its contract payload."""
    payload: dict[str, Any] = {
        "action_id": decision.action_id,
        "shop_id": decision.shop_id,
        "member_id": decision.member_id,
        "rule": decision.rule,
        "category": decision.category,
        "trigger": dict(decision.trigger),
        "occurred_at": decision.occurred_at.isoformat(),
        "created_at": created_at.isoformat(),
        "message": {"template": decision.template, "variables": dict(decision.variables)},
    }
    if decision.incentive is not None:
        payload["incentive"] = dict(decision.incentive)
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
