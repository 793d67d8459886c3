"""Every metric the dashboards and alert rules query is one the services export: they cannot rot silently."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# The services' entry points: importing them defines every metric they serve on /metrics.
SERVICES = ("services.engagement.__main__", "services.notifier.__main__", "services.api.app")
BUILT_IN = {"up"}  # what Prometheus adds to every scrape

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: its identifiers less functions, keywords, labels and durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = _GROUPING.sub("", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:ms|[smhdwy])?\b", "", text)  # numbers and durations (offset 1d)
    names = set()
    for match in _NAME.finditer(text):
        name, rest = match.group(), text[match.end() :].lstrip()
        if rest.startswith("(") or name in _KEYWORDS:
            continue
        names.add(name)
    return names


def exported() -> set[str]:
    """The series names the services export, by each metric family's type."""
    for module in SERVICES:
        importlib.import_module(module)
    names = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type in ("histogram", "summary"):
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count", family.name}
        else:
            names.add(family.name)
    return names


def queries() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            found += [(f"{path.name}: {panel['title']}", target["expr"]) for target in panel["targets"]]
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        found += [(f"alerts.yml: {rule['alert']}", rule["expr"]) for rule in group["rules"]]
    return found


def test_the_dashboards_cover_each_area_and_the_alert_rules_exist() -> None:
    assert {path.stem for path in DASHBOARDS} == {"event-path", "outbox", "scheduler", "notifier", "api", "campaigns"}
    assert len(queries()) > 40


@pytest.mark.parametrize(("where", "expr"), queries(), ids=lambda value: str(value)[:60])
def test_every_metric_a_query_names_is_exported_by_a_service(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    missing = names - exported() - BUILT_IN
    assert not missing, f"{where} queries {sorted(missing)}, which no service exports"


def test_the_name_finder_reads_promql_as_prometheus_does() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, route) (rate(api_x_bucket{route=~"a|b"}[5m]))) > 0 and up offset 1d'
    assert metric_names(expr) == {"api_x_bucket", "up"}
    assert metric_names("deriv(sum by (job) (consumer_lag)[10m:1m]) * 60") == {"consumer_lag"}
    assert metric_names("a_total unless on (job) b") == {"a_total", "b"}
