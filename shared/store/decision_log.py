"""The decision log: one row for every incentive decision, whatever its outcome.

Written with the batch's actions, as a part of the statement that logs them (``action_log``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.db.schema import decisions
from shared.domain.model import Decision
from shared.store.bulk_sql import insert_rows, json_rows

COLUMNS = [
    "decision_id",
    "shop_id",
    "member_id",
    "rule",
    "campaign_id",
    "wave",
    "strategy",
    "outcome",
    "reason",
    "at",
    "action_id",
    "order_id",
    "code",
    "kind",
    "value",
    "points",
    "playbook_version",
    "detail",
    "decided_at",
]
# The decision's id is its action's, so a fact decided again is the decision already kept.
INSERT_DECISIONS = f"{insert_rows(decisions, COLUMNS, 'decisions')} ON CONFLICT DO NOTHING"


def decision_row(d: Decision, decided_at: datetime) -> list[Any]:
    """The decision's values in ``COLUMNS`` order."""
    return [
        d.decision_id,
        d.shop_id,
        d.member_id,
        d.rule,
        d.campaign_id,
        d.wave,
        d.strategy,
        d.outcome,
        d.reason,
        d.at,
        d.action_id,
        d.order_id,
        d.code,
        d.kind,
        d.value,
        d.points,
        d.playbook_version,
        dict(d.detail),
        decided_at,
    ]


def decision_parameters(rows: Sequence[Decision], decided_at: datetime) -> dict[str, str]:
    """The parameter of ``INSERT_DECISIONS``."""
    return json_rows([decision_row(d, decided_at) for d in rows], "decisions")
