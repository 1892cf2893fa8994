"""Alert rules and the Grafana dashboard: promtool accepts the rules, their
unit tests pass, and every metric they use is one the daemon documents.

promtool is Prometheus's own checker, taken from Debian's prometheus package
by scripts/bootstrap and .ci/run. Outside CI a machine without it skips the
promtool tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO

PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "niemphong-alerts.yml"
RULE_TESTS = PROMETHEUS / "niemphong-alerts.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "niemphong-dashboard.json"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

# Alerts the operators were promised: token missing, audit failures, key
# rotation overdue, a spike in denied opens, approvals waiting too long.
REQUIRED_ALERTS = {
    "NiemphongTokenMissing",
    "NiemphongAuditWriteFailures",
    "NiemphongKeyRotationOverdue",
    "NiemphongDeniedOpensSpike",
    "NiemphongApprovalWaitingTooLong",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing; .ci/run must install it from Debian's prometheus package")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return path


def documented_metrics() -> set[str]:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(niemphong_[a-z_]+)`", text, flags=re.MULTILINE))


def metric_family(name: str) -> str:
    """Return the documented name for a series name used in a query."""
    return re.sub(r"_(bucket|sum|count)$", "", name)


def test_promtool_check_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_contain_required_alerts() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(encoding="utf-8"), flags=re.MULTILINE))

    assert REQUIRED_ALERTS <= alerts


def test_rules_use_documented_metrics() -> None:
    used = {metric_family(name) for name in re.findall(r"niemphong_[a-z_]+", RULES.read_text(encoding="utf-8"))}

    assert used - documented_metrics() == set()


def test_rules_documented() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(encoding="utf-8"), flags=re.MULTILINE))
    docs = OPERATIONS_DOC.read_text(encoding="utf-8")

    assert {alert for alert in alerts if f"| `{alert}` |" not in docs} == set()


def test_dashboard_valid_json_with_unique_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]

    assert dashboard["uid"] == "niemphong"
    assert len(ids) == len(set(ids))


def test_dashboard_uses_documented_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {metric_family(name) for expr in expressions for name in re.findall(r"niemphong_[a-z_]+", expr)}

    assert expressions
    assert used - documented_metrics() == set()


def test_dashboard_panels_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
