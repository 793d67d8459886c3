"""Tables built from the documents the use cases and the API give, value for value.

Each document becomes ``Grid``s of text (pure, so the rows can be checked without a
terminal), then Rich tables. Figures are shown as the API answers them: counts, money as
its decimal text, ratios to four places, uplift intervals as [low, high]; a missing value
(no member, nothing spent) is a dash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.table import Table

MISSING = "–"


@dataclass(frozen=True, slots=True)
class Grid:
    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]] = ()
    numeric: frozenset[int] = frozenset()  # column indexes aligned right


def cell(value: Any) -> str:
    """A value as text: None a dash, booleans yes/no, times in RFC 3339, the rest as written (floats as in JSON)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def interval(ci95: Sequence[float] | None) -> str:
    return MISSING if not ci95 else f"[{cell(ci95[0])}, {cell(ci95[1])}]"


def rich_table(grid: Grid) -> Table:
    table = Table(title=grid.title, title_justify="left", header_style="bold")
    for index, header in enumerate(grid.headers):
        table.add_column(header, justify="right" if index in grid.numeric else "left", overflow="fold")
    for row in grid.rows:
        table.add_row(*row)
    return table


def _counts(title: str, header: str, counts: Mapping[str, int]) -> Grid:
    return Grid(title, (header, "count"), [(name, cell(n)) for name, n in counts.items()], frozenset({1}))


_RUN_FIGURES = (
    ("as_of", "business time run up to"),
    ("members", "members whose due items were handled"),
    ("actions", "new actions"),
    ("failed_members", "members failed (quarantined)"),
    ("late_skipped", "messages skipped as too late"),
    ("coupons_expired", "coupons expired"),
    ("waves_started", "campaign waves started"),
    ("waves_run", "campaign waves finished"),
    ("waves_cancelled", "campaign waves cancelled"),
    ("wave_members", "campaign wave members decided"),
    ("rfm_shops", "shops whose RFM edges were recomputed"),
    ("batches", "batches committed"),
)


def scheduler_grids(report: Mapping[str, Any]) -> list[Grid]:
    """The run's report (``SchedulerReport.as_dict``): its figures, then actions by rule and decisions by outcome."""
    figures = Grid(
        "Scheduler run",
        ("figure", "value", "key"),
        [(label, cell(report[key]), key) for key, label in _RUN_FIGURES],
        frozenset({1}),
    )
    grids = [figures]
    if report["actions_by_rule"]:
        grids.append(_counts("Actions by rule", "rule", report["actions_by_rule"]))
    if report["decisions"]:
        grids.append(_counts("Decisions", "outcome", report["decisions"]))
    return grids


_GROUP_HEADERS = (
    "group",
    "members",
    "sent",
    "suppressed",
    "converted",
    "conversion",
    "revenue",
    "revenue/member",
    "coupons redeemed",
    "cost",
    "ROI",
    "uplift",
    "uplift 95 % CI",
)


def campaign_grids(document: Mapping[str, Any], title: str = "Campaign") -> list[Grid]:
    """The campaign report (``report_document``): each strategy against the holdout, then the waves."""
    rows = [
        (
            item["code"],
            cell(item["members"]),
            cell(item["sent"]),
            cell(item["suppressed"]),
            cell(item["converted"]),
            cell(item["conversion_rate"]),
            cell(item["revenue"]),
            cell(item["revenue_per_member"]),
            cell(item["coupons_redeemed"]),
            cell(item["cost"]),
            cell(item["roi"]),
            cell(item["uplift"]["rate_diff"]),
            interval(item["uplift"]["ci95"]),
        )
        for item in document["strategies"]
    ]
    held = document["holdout"]
    rows.append(
        (
            "holdout",
            cell(held["members"]),
            MISSING,
            MISSING,
            cell(held["converted"]),
            cell(held["conversion_rate"]),
            MISSING,
            cell(held["revenue_per_member"]),
            MISSING,
            MISSING,
            MISSING,
            MISSING,
            MISSING,
        )
    )
    groups = Grid(f"{title}: strategies against the holdout", _GROUP_HEADERS, rows, frozenset(range(1, 13)))
    waves = Grid(
        f"{title}: waves",
        ("wave", "at", "members reached"),
        [(cell(wave["wave"]), cell(wave["at"]), cell(wave["members"])) for wave in document["waves"]],
        frozenset({0, 2}),
    )
    return [groups, waves]


_RULE_HEADERS = (
    "rule",
    "issued",
    "issued value",
    "redeemed",
    "redeemed value",
    "redemption rate",
    "codes shared",
    "attributed orders",
    "attributed revenue",
    "cost",
    "ROI",
    "treated converted/members",
    "holdout converted/members",
    "uplift",
    "uplift 95 % CI",
)


def _share(group: Mapping[str, int]) -> str:
    return f"{group['converted']}/{group['members']}"


def incentive_grid(document: Mapping[str, Any]) -> Grid:
    """The incentives report (``report_document``): a row per rule."""
    start = document["from"]
    period = f"from {cell(start)} to {cell(document['to'])}" if start is not None else f"to {cell(document['to'])}"
    rows = [
        (
            item["rule"],
            cell(item["issued"]),
            cell(item["issued_value"]),
            cell(item["redeemed"]),
            cell(item["redeemed_value"]),
            cell(item["redemption_rate"]),
            cell(item["coupons_shared"]),
            cell(item["attributed_orders"]),
            cell(item["attributed_revenue"]),
            cell(item["cost"]),
            cell(item["roi"]),
            _share(item["treated"]),
            _share(item["holdout"]),
            cell(item["uplift"]["rate_diff"]),
            interval(item["uplift"]["ci95"]),
        )
        for item in document["items"]
    ]
    return Grid(f"Incentives {period}", _RULE_HEADERS, rows, frozenset(range(1, 14)))


_QUARANTINE_HEADERS = ("shop", "member", "reason", "detail", "events since", "quarantined at", "last event at")


def quarantine_row(item: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        item["shop_id"],
        item["member_id"],
        item["reason"],
        cell(item["detail"]),
        cell(item["events"]),
        cell(item["quarantined_at"]),
        cell(item["last_event_at"]),
    )


def quarantine_grid(items: Sequence[Mapping[str, Any]], title: str = "Quarantined members") -> Grid:
    """Quarantine rows as the API lists them, oldest quarantine first."""
    return Grid(title, _QUARANTINE_HEADERS, [quarantine_row(item) for item in items], frozenset({4}))
