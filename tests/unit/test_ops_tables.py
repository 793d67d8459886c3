"""The command line's tables say what the report documents say, value for value."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console

from services.ops.tables import (
    MISSING,
    Grid,
    campaign_grids,
    cell,
    incentive_grid,
    quarantine_grid,
    rich_table,
    scheduler_grids,
)
from shared.domain.campaign_report import GroupFigures, WaveFigures, report_document
from shared.domain.incentive_report import Group, RuleFigures
from shared.domain.incentive_report import report_document as incentive_document
from shared.usecases.scheduler_run import SchedulerReport

T = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def rendered(grid: Grid) -> str:
    output = io.StringIO()
    Console(file=output, width=400, color_system=None).print(rich_table(grid))
    return output.getvalue()


def by_first_column(grid: Grid) -> dict[str, tuple[str, ...]]:
    return {row[0]: row for row in grid.rows}


def test_cells_read_as_the_api_writes_values() -> None:
    assert cell(None) == MISSING
    assert (cell(True), cell(False)) == ("yes", "no")
    assert cell(0.1234) == "0.1234"
    assert cell(-0.05) == "-0.05"
    assert cell("12.30") == "12.30"
    assert cell(T) == "2026-11-01T12:00:00+00:00"


def test_the_scheduler_table_has_every_figure_of_the_report_and_its_counts() -> None:
    report = SchedulerReport(
        as_of=T,
        members=120,
        actions=95,
        failed_members=1,
        batches=3,
        wave_members=40,
        by_rule=Counter({"one_month_gift": 90, "campaign": 5}),
        decisions=Counter({"emitted": 30, "holdout": 4}),
    )
    document = report.as_dict()
    figures, by_rule, decisions = scheduler_grids(document)
    values = {row[2]: row[1] for row in figures.rows}
    assert set(values) == set(document) - {"actions_by_rule", "decisions"}
    assert values["members"] == "120"
    assert values["actions"] == "95"
    assert values["failed_members"] == "1"
    assert values["wave_members"] == "40"
    assert values["batches"] == "3"
    assert values["as_of"] == T.isoformat()
    assert by_rule.rows == [("campaign", "5"), ("one_month_gift", "90")]  # as the report sorts them
    assert decisions.rows == [("emitted", "30"), ("holdout", "4")]


def test_a_run_that_did_nothing_has_only_its_figures() -> None:
    assert [grid.title for grid in scheduler_grids(SchedulerReport(as_of=T).as_dict())] == ["Scheduler run"]


def test_the_campaign_tables_show_each_strategy_against_the_holdout_and_each_wave() -> None:
    coupon = GroupFigures(
        members=400,
        converted=60,
        revenue=Decimal("3000.00"),
        sent=390,
        suppressed=10,
        coupons_redeemed=50,
        redeemed_value=Decimal("500.00"),
    )
    message = GroupFigures(members=380, converted=40, revenue=Decimal("1900.00"), sent=380)
    holdout = GroupFigures(members=200, converted=20, revenue=Decimal("900.00"))
    waves = [WaveFigures(1, T, 780), WaveFigures(2, T.replace(day=11), 500)]
    document = report_document([("coupon", coupon), ("message", message)], holdout, waves)

    groups, wave_grid = campaign_grids(document, "Campaign c-1")
    rows = by_first_column(groups)
    assert list(rows) == ["coupon", "message", "holdout"]
    first = document["strategies"][0]
    assert rows["coupon"] == (
        "coupon",
        "400",
        "390",
        "10",
        "60",
        str(first["conversion_rate"]),
        "3000.00",
        "7.50",
        "50",
        "500.00",
        str(first["roi"]),
        str(first["uplift"]["rate_diff"]),
        f"[{first['uplift']['ci95'][0]}, {first['uplift']['ci95'][1]}]",
    )
    assert first["conversion_rate"] == 0.15
    assert first["roi"] == 5.0  # (3000 - 500) / 500
    assert first["uplift"]["rate_diff"] == 0.05  # 0.15 - 0.10
    assert rows["message"][10] == MISSING  # nothing cost anything: no ROI
    assert rows["holdout"][:8] == ("holdout", "200", MISSING, MISSING, "20", "0.1", MISSING, "4.50")
    assert wave_grid.rows == [("1", T.isoformat(), "780"), ("2", T.replace(day=11).isoformat(), "500")]
    text = rendered(groups)
    assert "Campaign c-1: strategies against the holdout" in text
    assert "uplift 95 % CI" in text
    assert rows["coupon"][12] in text


def test_an_empty_holdout_leaves_the_uplift_and_its_interval_missing() -> None:
    document = report_document([("only", GroupFigures(members=10, converted=1))], GroupFigures(), [])
    rows = by_first_column(campaign_grids(document)[0])
    assert rows["only"][11:] == (MISSING, MISSING)
    assert rows["holdout"][5] == MISSING  # no member: no rate


def test_the_incentives_table_has_a_row_per_rule_with_the_reports_figures() -> None:
    figures = RuleFigures(
        rule="gift_a",
        issued=7,
        issued_value=Decimal("75.00"),
        coupons=7,
        redeemed=3,
        redeemed_value=Decimal("35.00"),
        coupons_shared=2,
        attributed_orders=2,
        attributed_revenue=Decimal("280.00"),
        points_value=Decimal("0"),
        treated=Group(6, 2),
        holdout=Group(4, 2),
    )
    document = incentive_document([figures], T, T.replace(month=12))
    grid = incentive_grid(document)
    item = document["items"][0]
    assert grid.title == f"Incentives from {T.isoformat()} to {T.replace(month=12).isoformat()}"
    assert grid.rows == [
        (
            "gift_a",
            "7",
            "75.00",
            "3",
            "35.00",
            str(item["redemption_rate"]),
            "2",
            "2",
            "280.00",
            "35.00",
            str(item["roi"]),
            "2/6",
            "2/4",
            str(item["uplift"]["rate_diff"]),
            f"[{item['uplift']['ci95'][0]}, {item['uplift']['ci95'][1]}]",
        )
    ]
    assert item["redemption_rate"] == 0.4286
    assert item["uplift"]["rate_diff"] == -0.1667  # 2/6 - 2/4
    assert incentive_grid(incentive_document([], None, T)).title == f"Incentives to {T.isoformat()}"


def test_the_quarantine_table_lists_each_member_with_why_and_since_when() -> None:
    item = {
        "shop_id": "shop-1",
        "member_id": "m-9",
        "reason": "processing_error",
        "detail": "ValueError while settling the member's stored state",
        "events": 4,
        "quarantined_at": "2026-01-05T08:00:00+00:00",
        "last_event_at": None,
    }
    grid = quarantine_grid([item])
    assert grid.rows == [
        (
            "shop-1",
            "m-9",
            "processing_error",
            "ValueError while settling the member's stored state",
            "4",
            "2026-01-05T08:00:00+00:00",
            MISSING,
        )
    ]
    assert "m-9" in rendered(grid)
