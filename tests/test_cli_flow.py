"""The whole job through the niemphong command line, as clerks, viewers and
approvers run it, on real scans, against a real daemon over both transports."""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import SAMPLES, SHARED_SAMPLES, DaemonProcess, DevEnvironment

LEVEL_OPTIONS = {"Mật": "mat", "Tối mật": "toi-mat", "Tuyệt mật": "tuyet-mat"}
APPROVERS = {"mat": ["approver-1"], "toi-mat": ["approver-1", "approver-2"]}


def handover_rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;")
    return list(csv.DictReader(io.StringIO(text), dialect=dialect))


def seal_and_open(env: DevEnvironment, scan: Path, level: str, doc_number: str, issued: str,
                  work: Path, transport: str) -> Path:
    envelope = work / f"{scan.name}.npe"
    sealed = env.cli("scanner", "scan", str(scan), "--level", level, "--doc-number", doc_number,
                     "--issued", issued, "--out", str(envelope), transport=transport)
    assert sealed.returncode == 0, sealed.stderr

    requested = env.cli("viewer", "request", str(envelope), "--purpose", "Kiểm tra hồ sơ", transport=transport)
    assert requested.returncode == 0, requested.stderr
    request_id = requested.stdout.strip()
    assert len(request_id) == 32

    for approver in APPROVERS[level]:
        approved = env.cli(approver, "approve", request_id, transport=transport)
        assert approved.returncode == 0, approved.stderr

    opened = work / f"opened-{scan.name}"
    viewed = env.cli("viewer", "view", str(envelope), "--out", str(opened), transport=transport)
    assert viewed.returncode == 0, viewed.stderr
    return opened


@pytest.mark.skipif(not SHARED_SAMPLES.exists(), reason="the shared samples folder is not beside this clone")
def test_shared_samples_round_trip(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path, transport: str) -> None:
    rows = handover_rows(SHARED_SAMPLES / "danh-muc-ban-giao.csv")
    sealable = [row for row in rows if row["Tệp"]]
    assert len(sealable) == 3

    for row in sealable:
        level = LEVEL_OPTIONS[row["Độ mật"]]
        scan = SHARED_SAMPLES / row["Tệp"]
        opened = seal_and_open(dev_env, scan, level, row["Số tài liệu"], row["Ngày ban hành"], tmp_path, transport)
        assert opened.read_bytes() == scan.read_bytes(), row["Tệp"]


@pytest.mark.skipif(not SHARED_SAMPLES.exists(), reason="the shared samples folder is not beside this clone")
def test_shared_tuyet_mat_row_refused(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path, transport: str) -> None:
    row = next(r for r in handover_rows(SHARED_SAMPLES / "danh-muc-ban-giao.csv") if r["Độ mật"] == "Tuyệt mật")
    scan = tmp_path / "bao-cao.pdf"
    scan.write_bytes(b"%PDF-1.4 stand-in for a Tuyet mat scan")
    out = tmp_path / "bao-cao.pdf.npe"

    result = dev_env.cli("scanner", "scan", str(scan), "--level", "tuyet-mat", "--doc-number", row["Số tài liệu"],
                         "--issued", row["Ngày ban hành"], "--out", str(out), transport=transport)

    assert result.returncode == 3
    assert "Tuyệt mật" in result.stderr
    assert "29/2018/QH14" in result.stderr
    assert not out.exists()


def test_project_samples_round_trip(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    for row in handover_rows(SAMPLES / "danh-muc-mau.csv"):
        if not row["Tệp"]:
            continue
        scan = SAMPLES / row["Tệp"]
        level = LEVEL_OPTIONS[row["Độ mật"]]
        opened = seal_and_open(dev_env, scan, level, row["Số tài liệu"], row["Ngày ban hành"], tmp_path, "unix")
        assert opened.read_bytes() == scan.read_bytes()


def seal_calls(env: DevEnvironment) -> dict[str, float]:
    """Return the daemon's count of finished Seal and SealSmall calls that succeeded, from /metrics."""
    with urllib.request.urlopen(f"http://{env.config['metrics']['listen']}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts = {"EnvelopeService/Seal": 0.0, "EnvelopeService/SealSmall": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            rpc = sample.labels.get("rpc")
            if sample.name == "niemphong_rpc_requests_total" and rpc in counts and sample.labels.get("outcome") == "OK":
                counts[rpc] += sample.value
    return counts


@pytest.mark.parametrize(("size", "expected_rpc"), [
    (4096, "EnvelopeService/SealSmall"),
    (1024 * 1024, "EnvelopeService/SealSmall"),
    (1024 * 1024 + 1, "EnvelopeService/Seal"),
])
def test_scan_rpc_by_file_size(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path,
                               size: int, expected_rpc: str) -> None:
    scan = tmp_path / "to-trinh.pdf"
    scan.write_bytes(os.urandom(size))
    before = seal_calls(dev_env)

    opened = seal_and_open(dev_env, scan, "mat", f"{size}/TTr", "2025-03-04", tmp_path, "unix")

    after = seal_calls(dev_env)
    other_rpc = next(rpc for rpc in after if rpc != expected_rpc)
    assert after[expected_rpc] - before[expected_rpc] == 1
    assert after[other_rpc] - before[other_rpc] == 0
    assert opened.read_bytes() == scan.read_bytes()


def test_view_before_approval_exits_4(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    scan = SAMPLES / "giay-de-nghi-mau.jpg"
    envelope = tmp_path / "a.npe"
    assert dev_env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "1/A",
                       "--issued", "2025-01-02", "--out", str(envelope)).returncode == 0
    requested = dev_env.cli("viewer", "request", str(envelope), "--purpose", "xem")
    assert requested.returncode == 0
    out = tmp_path / "opened.jpg"

    result = dev_env.cli("viewer", "view", str(envelope), "--out", str(out))

    assert result.returncode == 4
    assert not out.exists()


def test_view_tampered_envelope_exits_5(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    scan = SAMPLES / "cong-van-mau.pdf"
    envelope = tmp_path / "b.npe"
    assert dev_env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "2/B",
                       "--issued", "2025-01-02", "--out", str(envelope)).returncode == 0
    request_id = dev_env.cli("viewer", "request", str(envelope), "--purpose", "xem").stdout.strip()
    assert dev_env.cli("approver-1", "approve", request_id).returncode == 0
    data = bytearray(envelope.read_bytes())
    data[-100] ^= 0x40
    envelope.write_bytes(bytes(data))
    out = tmp_path / "opened.pdf"

    result = dev_env.cli("viewer", "view", str(envelope), "--out", str(out))

    assert result.returncode == 5
    assert not out.exists()
    assert list(tmp_path.glob("opened.pdf*")) == []


def test_scan_by_viewer_exits_4(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    out = tmp_path / "c.npe"

    result = dev_env.cli("viewer", "scan", str(SAMPLES / "giay-de-nghi-mau.jpg"), "--level", "mat",
                         "--doc-number", "3/C", "--issued", "2025-01-02", "--out", str(out))

    assert result.returncode == 4
    assert not out.exists()


def test_self_approval_exits_4(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    if not dev_env.identity("lead").exists():
        dev_env.add_identity("lead", "viewer,approver")
    envelope = tmp_path / "d.npe"
    assert dev_env.cli("scanner", "scan", str(SAMPLES / "giay-de-nghi-mau.jpg"), "--level", "mat",
                       "--doc-number", "4/D", "--issued", "2025-01-02", "--out", str(envelope)).returncode == 0
    request_id = dev_env.cli("lead", "request", str(envelope), "--purpose", "xem").stdout.strip()

    result = dev_env.cli("lead", "approve", request_id)

    assert result.returncode == 4


def test_inspect_json_shows_facts(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    scan = SAMPLES / "bien-ban-mau.tiff"
    envelope = tmp_path / "e.npe"
    doc_number = unicodedata.normalize("NFD", "05/BB-Tối")
    assert dev_env.cli("scanner", "scan", str(scan), "--level", "toi-mat", "--doc-number", doc_number,
                       "--issued", "04/11/2024", "--out", str(envelope)).returncode == 0

    result = dev_env.cli("auditor", "inspect", str(envelope), "--json")

    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["level"] == "toi-mat"
    assert facts["document"]["doc_number"] == "05/BB-Tối"
    assert facts["document"]["issued_on"] == "2024-11-04"
    assert facts["plaintext_bytes"] == scan.stat().st_size
    assert facts["keys"][0]["version"] == 1
    assert scan.read_bytes()[:64] not in envelope.read_bytes()


def test_english_messages_with_lang(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    scan = tmp_path / "x.pdf"
    scan.write_bytes(b"x")

    result = dev_env.cli("scanner", "scan", str(scan), "--level", "tuyet-mat", "--doc-number", "5/E",
                         "--issued", "2025-01-02", "--out", str(tmp_path / "x.npe"), lang="en_US.UTF-8")

    assert result.returncode == 3
    assert "Top Secret" in result.stderr or "Tuyệt mật" in result.stderr
    assert "không được số hóa" not in result.stderr


def test_dev_state_database_files_private(dev_env: DevEnvironment, daemon: DaemonProcess) -> None:
    # dev init creates the database through niemphongd provision, before the
    # serving daemon sets its umask; the daemon then adds the -wal and -shm files.
    if "sqlite" not in dev_env.config["state"]:
        pytest.skip("the state is in PostgreSQL in this run, so there is no database file")
    state = Path(dev_env.config["state"]["sqlite"])
    files = [state, Path(f"{state}-wal"), Path(f"{state}-shm")]

    modes = {file.name: oct(file.stat().st_mode & 0o777) for file in files if file.exists()}

    assert state.name in modes
    assert set(modes.values()) == {oct(0o600)}, modes
