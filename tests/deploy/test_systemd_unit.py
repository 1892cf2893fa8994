"""The systemd unit and its companions: systemd's own checks must accept them.

systemd-analyze comes from Debian's systemd package; scripts/bootstrap and
.ci/run install it. Outside CI a machine without it skips these tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, REPO

SYSTEMD = REPO / "deploy" / "systemd"
UNIT = SYSTEMD / "niemphongd.service"
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing; .ci/run must install Debian's systemd package")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return path


def unit_directives() -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    return directives


def test_unit_security_exposure_within_threshold() -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)],
        capture_output=True, text=True, timeout=120,
    )

    match = re.search(r"Overall exposure level for niemphongd\.service: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_score_recorded_in_docs() -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", str(UNIT)], capture_output=True, text=True, timeout=120,
    )
    score = re.search(r"Overall exposure level for niemphongd\.service: (\d+\.\d)", result.stdout).group(1)
    exposures = re.findall(r"^✗ (\S+)", result.stdout, flags=re.MULTILINE)
    docs = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")

    assert f"**{score} (OK)**" in docs
    assert f"rates this unit {score} (OK)" in UNIT.read_text(encoding="utf-8")
    for exposure in exposures:
        assert f"`{exposure.replace('|', chr(92) + '|')}`" in docs, exposure


def test_unit_verifies(tmp_path: Path) -> None:
    # verify needs ExecStart= to exist; point it at this checkout's daemon.
    unit = tmp_path / "niemphongd.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/usr/bin/niemphongd", str(BIN / "niemphongd")))

    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "Unknown key" not in result.stderr
    assert "Failed to parse" not in result.stderr


def test_unit_notify_watchdog_and_credential() -> None:
    directives = unit_directives()

    assert directives["Type"] == ["notify"]
    assert directives["WatchdogSec"] == ["60s"]
    assert directives["LoadCredential"] == ["token-pin:/etc/niemphong/token.pin"]
    assert directives["LimitCORE"] == ["0"]
    assert directives["User"] == ["niemphong"]
    assert directives["UMask"] == ["0077"]


def test_unit_stop_timeout_covers_drain() -> None:
    timeout = int(unit_directives()["TimeoutStopSec"][0].rstrip("s"))

    # The default drain (30 s), 5 s for open streams, 0.5 s linger and 5 s unwinding.
    assert timeout >= 30 + 5 + 1 + 5


def test_example_config_matches_unit() -> None:
    example = (SYSTEMD / "niemphongd.toml.example").read_text(encoding="utf-8")

    assert 'pin_credential = "token-pin"' in example
    assert 'unix_socket = "/run/niemphong/niemphongd.sock"' in example
    assert 'sqlite = "/var/lib/niemphong/niemphong.db"' in example


def test_sysusers_creates_service_user_and_client_group() -> None:
    entries = [
        line.split()[:2] for line in (SYSTEMD / "niemphong.sysusers.conf").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]

    assert ["u", "niemphong"] in entries
    assert ["g", "niemphong-clients"] in entries


def test_tmpfiles_pin_file_root_only() -> None:
    lines = (SYSTEMD / "niemphong.tmpfiles.conf").read_text(encoding="utf-8").splitlines()
    pin_line = next(line.split() for line in lines if "token.pin" in line and not line.startswith("#"))

    assert pin_line[2:5] == ["0600", "root", "root"]


def test_tmpfiles_entries_parse(tmp_path: Path) -> None:
    tmpfiles = shutil.which("systemd-tmpfiles")
    if tmpfiles is None:
        pytest.skip("systemd-tmpfiles is not installed (Debian package systemd)")
    # --root applies the entries under a scratch folder instead of /.
    conf = tmp_path / "niemphong.conf"
    conf.write_text((SYSTEMD / "niemphong.tmpfiles.conf").read_text(encoding="utf-8").replace(
        "niemphong", "root").replace("root.pin", "token.pin"))

    result = subprocess.run(
        [tmpfiles, f"--root={tmp_path / 'root'}", "--create", str(conf)], capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "root" / "etc" / "root").is_dir()


def test_udev_rule_gives_token_to_service_group() -> None:
    text = (SYSTEMD / "70-niemphong-token.rules").read_text(encoding="utf-8")
    rule = " ".join(line.rstrip("\\").strip() for line in text.splitlines() if line and not line.startswith("#"))

    assert 'SUBSYSTEM=="usb"' in rule
    assert 'ATTR{idVendor}=="' in rule
    assert 'ATTR{idProduct}=="' in rule
    assert 'GROUP="niemphong"' in rule
    assert 'MODE="0660"' in rule
