"""The benchmark scripts run and report their ratios."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_in_token_bench_reports_ratios() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "in_token_mode.py"), "--mib", "1", "--rounds", "1", "--json"],
        capture_output=True, text=True, timeout=300,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["seal_time_ratio"] > 0
    assert report["open_time_ratio"] > 0
    assert report["in_token"]["seal_mib_per_second"] > 0
