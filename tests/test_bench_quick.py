"""The benchmark suite in its quick mode: every benchmark still runs and reports its figures.

No timing is asserted: this machine's speed says nothing about the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

FIGURES = [
    "Seal 4 MiB streamed, unix socket",
    "Open 4 MiB streamed, unix socket",
    "Spool seal 4 MiB (SealFile)",
    "Spool seal, fraction of raw AES-256-GCM",
    "4 KiB seals/s, 16 clients, SealSmall",
    "4 KiB seals/s, 16 clients, Seal stream",
    "Sequential 4 KiB seals/s vs bare python-pkcs11 wrap loop",
    "Slow token (10 ms/call, serves 4 at once): 2 session(s)",
    "Peak RSS sealing 16 MiB streamed",
    "Peak RSS sealing 16 MiB in spool",
    "Start to SERVING",
]


def test_bench_quick_reports_every_figure() -> None:
    # pytest's tmp_path is too long for the daemon's unix socket path.
    workdir = Path(tempfile.mkdtemp(prefix="npb-"))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "bench", "--quick", "--workdir", str(workdir)],
            cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "LANG": "en_US.UTF-8"},
        )
        leftovers = list(workdir.iterdir())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    assert result.returncode == 0, result.stderr[-4000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    for figure in FIGURES:
        assert any(line.startswith(f"| {figure} |") for line in table), figure
    # The run cleans up after itself when it succeeds.
    assert leftovers == []
