"""docs/grafana/opsmgr.json: valid JSON, a panel for each figure the issue names, and every metric it queries
is one ``/metrics`` exposes (the exporter's families here; tests/e2e/test_backup_daemon.py checks a live
scrape)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from opsmgr.server.exporter import FAMILIES

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "opsmgr.json"
# Label matchers, ranges, strings and grouping clauses: what in an expression is not a metric name.
_NOT_NAMES = re.compile(
    r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)'
)
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "offset", "bool"}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def queries(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    return exprs + [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a ``label_values(metric, label)`` query) reads."""
    if m := re.fullmatch(r"label_values\((\w+),\s*\w+\)", expr):
        return {m.group(1)}
    bare = _NOT_NAMES.sub(" ", expr)
    names = {m.group(0) for m in _IDENT.finditer(bare) if not bare[m.end() :].lstrip().startswith("(")}
    return {n for n in names if n not in _KEYWORDS and not re.fullmatch(r"\d\w*", n)}


def queried(board: dict[str, Any]) -> set[str]:
    return {n for q in queries(board) for n in metric_names(q)}


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names('time() - a_b{x=~"$y"}') == {"a_b"}
    assert metric_names('increase(c_total{g="1"}[1h]) / sum by (rs) (d)') == {"c_total", "d"}
    assert metric_names("label_values(mongodb_up, group_id)") == {"mongodb_up"}


def test_every_queried_metric_is_exposed() -> None:
    board = dashboard()
    exposed = {name for name, _kind, _help in FAMILIES}
    names = queried(board)
    assert names and names <= exposed, names - exposed
    assert all(metric_names(q) for q in queries(board)), "a query reads no metric"


def test_the_dashboard_has_the_issue_panels() -> None:
    board = dashboard()
    read = {n for p in board["panels"] for t in p["targets"] for n in metric_names(t["expr"])}
    assert {
        "mongodb_up",
        "mongodb_mongod_replset_member_state",
        "mongodb_mongod_replset_member_replication_lag",
        "opsmgr_backup_ingest_lag_seconds",
        "opsmgr_backup_last_snapshot_timestamp_seconds",
    } <= read
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
