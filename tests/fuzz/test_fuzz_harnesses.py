"""Short fuzzing runs of every harness in this folder, and the replay of every
input that once made one fail.

Each harness runs as its own process under atheris for
``NIEMPHONG_FUZZ_SECONDS`` seconds (4 by default), long enough to catch a
shallow regression and short enough for every test run. ``make fuzz`` runs
the same harnesses for as long as you like.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parent
REGRESSIONS = FOLDER / "regressions"
TARGETS = sorted(path.stem.removeprefix("fuzz_") for path in FOLDER.glob("fuzz_*.py"))
# Targets that need a token or a daemon replay in their own process; the
# others replay here, without atheris.
PROCESS_ONLY = {"rpc_handlers"}
SECONDS = int(os.environ.get("NIEMPHONG_FUZZ_SECONDS", "4"))
# A fixed seed makes a short run the start of the same long run, so a test
# run explores inputs that a longer run of the same seed already cleared
# (`make fuzz` uses fresh seeds to look further).
SEED = int(os.environ.get("NIEMPHONG_FUZZ_SEED", "1"))


def _module(target: str):  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(FOLDER))
    try:
        return importlib.import_module(f"fuzz_{target}")
    finally:
        sys.path.remove(str(FOLDER))


def _regressions(target: str) -> list[Path]:
    folder = REGRESSIONS / target
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_every_harness_has_a_target() -> None:
    assert set(TARGETS) >= {"envelope_header", "segment_reader", "handover_list", "basis", "config", "rpc_handlers"}


@pytest.mark.parametrize("target", sorted(set(TARGETS) - PROCESS_ONLY))
def test_seeds_and_regressions_replay(target: str) -> None:
    module = _module(target)
    inputs = list(module.seeds()) + [path.read_bytes() for path in _regressions(target)]

    for data in inputs:
        module.test_one_input(data)

    assert inputs


@pytest.mark.parametrize("target", TARGETS)
def test_short_fuzz_run(target: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed: PyPI has wheels for x86-64 Linux only")
    corpus = tmp_path / "corpus"
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()

    result = subprocess.run(
        [sys.executable, str(FOLDER / f"fuzz_{target}.py"), f"-max_total_time={SECONDS}", f"-seed={SEED}",
         f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, timeout=SECONDS + 300,
    )

    found = sorted(path.name for path in artifacts.iterdir())
    advice = (f"add each input under {artifacts} to tests/fuzz/regressions/{target}/ and fix the cause:\n"
              f"{result.stderr[-4000:]}")
    assert found == [], advice
    assert result.returncode == 0, advice
    assert "Done" in result.stderr
