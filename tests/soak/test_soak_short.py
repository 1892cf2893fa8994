"""The soak test of bench/soak.py, shortened to 60 seconds with 32 clients.

``make soak`` runs it for 10 minutes; see that script for what passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECONDS = 60
CLIENTS = 32


def test_soak_sixty_seconds(tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"

    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--seconds", str(SECONDS), "--clients", str(CLIENTS),
         "--json", str(report_path)],
        capture_output=True, text=True, timeout=SECONDS + 600,
    )
    report = json.loads(report_path.read_text()) if report_path.exists() else {}

    assert result.returncode == 0, f"{report.get('problems')}\n{result.stderr[-3000:]}"
    assert report["errors"] == 0
    assert report["rss_growth"] < 0.10
    assert report["fds_after"] <= report["fds_idle"]
    assert report["token_sessions_in_use"] == 0
    assert all(report["operations"].get(name, 0) > 0 for name in ("seal", "inspect", "access_and_open", "decide"))
