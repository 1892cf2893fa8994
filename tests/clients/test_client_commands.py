"""Client commands end to end against the fake niemphongd, over mTLS on a Unix socket and TCP."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import unicodedata
from pathlib import Path

import pytest

from fake_niemphongd import (  # noqa: F401 (dev_layout, fake_daemon and short_tmp are pytest fixtures)
    ARTEFACT_ID,
    ENVELOPE_MAGIC,
    MISSING_REQUEST_ID,
    REQUEST_ID,
    SEALED_AT,
    SELF_REQUEST_ID,
    TAMPER_MARK,
    FakeDaemon,
    dev_layout,
    fake_daemon,
    sample_request,
    short_tmp,
)
from niemphong.clients.cli import main
from niemphong.clients.connection import CHUNK_BYTES
from niemphong.clients.devinit import DevLayout
from niemphong.clients.devpki import create_ca, write_client_identity
from niemphong.v1 import niemphong_pb2 as pb

ISSUED = "2025-05-14"


def run(
    capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str]
) -> tuple[int, str, str]:
    code = main(argv, environ)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


@pytest.fixture
def scan_file(short_tmp: Path) -> Path:
    path = short_tmp / "công-văn.pdf"
    path.write_bytes(os.urandom(2 * CHUNK_BYTES + 17))
    return path


def scan_argv(source: Path, out: Path, level: str = "toi-mat", *extra: str) -> list[str]:
    return ["scan", str(source), "--level", level, "--doc-number", "1479/UBND-NC", "--issued", ISSUED, "--out", str(out), *extra]


def test_scan_writes_envelope_and_prints_id(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan_file.with_name("cong-van.np")

    code, stdout, stderr = run(capsys, scan_argv(scan_file, out), fake_daemon.environ("scanner"))

    assert code == 0, stderr
    assert stdout == ARTEFACT_ID + "\n"
    assert out.read_bytes() == ENVELOPE_MAGIC + scan_file.read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "Đã niêm phong" in stderr
    assert "Tối mật" in stderr
    assert "1479/UBND-NC" in stderr


def test_scan_chunks_at_most_one_mib(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, scan_argv(scan_file, scan_file.with_name("e.np")), fake_daemon.environ())

    assert fake_daemon.state.seal_chunk_sizes == [CHUNK_BYTES, CHUNK_BYTES, 17]


def test_scan_small_file_in_one_call(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = short_tmp / "to-trinh.pdf"
    source.write_bytes(b"%PDF-1.4 small scan")
    out = short_tmp / "e.np"

    code, _, stderr = run(capsys, scan_argv(source, out), fake_daemon.environ())

    assert code == 0, stderr
    assert fake_daemon.state.seal_small_sizes == [len(b"%PDF-1.4 small scan")]
    assert fake_daemon.state.seal_chunk_sizes == []
    assert out.read_bytes() == ENVELOPE_MAGIC + source.read_bytes()


def test_scan_small_wrong_sha256_exits_5_without_file(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_daemon.state.wrong_sha256 = True
    source = short_tmp / "to-trinh.pdf"
    source.write_bytes(b"%PDF-1.4 small scan")
    out = short_tmp / "e.np"

    code, stdout, stderr = run(capsys, scan_argv(source, out), fake_daemon.environ())

    assert code == 5
    assert stdout == ""
    assert "SHA-256" in stderr
    assert not out.exists()


def test_scan_nfd_arguments_sent_as_nfc(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = short_tmp / nfd("tài-liệu.pdf")
    source.write_bytes(b"%PDF-1.4 scan")
    argv = [
        "scan", str(source), "--level", "mat", "--doc-number", nfd("12/KH-Tổ công tác"),
        "--issued", "14/05/2025", "--title", nfd("Kế hoạch kiểm tra"), "--out", str(short_tmp / "e.np"),
    ]

    code, _, stderr = run(capsys, argv, fake_daemon.environ())

    assert code == 0, stderr
    document = fake_daemon.state.seal_metadata[0].document
    assert document.doc_number == "12/KH-Tổ công tác"
    assert document.title == "Kế hoạch kiểm tra"
    assert document.source_name == "tài-liệu.pdf"
    assert document.issued_on == "2025-05-14"
    assert fake_daemon.state.seal_metadata[0].level == pb.LEVEL_MAT


def test_scan_json_prints_summary(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan_file.with_name("e.np")

    code, stdout, _ = run(capsys, scan_argv(scan_file, out, "mat", "--json"), fake_daemon.environ())

    summary = json.loads(stdout)
    assert code == 0
    assert summary["artefact_id"] == ARTEFACT_ID
    assert summary["level"] == "mat"
    assert summary["envelope_bytes"] == out.stat().st_size
    assert summary["plaintext_bytes"] == scan_file.stat().st_size
    assert summary["key"] == {"key_id": "niemphong-mat", "version": 1, "wrap_algorithm": "AES-KWP"}


def test_scan_tuyet_mat_sent_and_refused(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan_file.with_name("e.np")

    code, stdout, stderr = run(capsys, scan_argv(scan_file, out, "tuyet-mat"), fake_daemon.environ())

    assert code == 3
    assert stdout == ""
    assert fake_daemon.state.seal_metadata[0].level == pb.LEVEL_TUYET_MAT
    assert "Tuyệt mật không được số hóa" in stderr
    assert "29/2018/QH14" in stderr
    assert str(scan_file) in stderr
    assert sorted(path.name for path in scan_file.parent.iterdir()) == sorted(["công-văn.pdf", "dev"])


def test_scan_tuyet_mat_english(fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = scan_argv(scan_file, scan_file.with_name("e.np"), "tuyet-mat")

    code, _, stderr = run(capsys, argv, fake_daemon.environ(lang="en_US.UTF-8"))

    assert code == 3
    assert "never digitized" in stderr


def test_scan_wrong_sha256_exits_5_without_file(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_daemon.state.wrong_sha256 = True
    out = scan_file.with_name("e.np")

    code, stdout, stderr = run(capsys, scan_argv(scan_file, out), fake_daemon.environ())

    assert code == 5
    assert stdout == ""
    assert "SHA-256" in stderr
    assert not out.exists()
    assert not [path for path in scan_file.parent.iterdir() if path.name.endswith(".part")]
    assert [request.artefact_id for request in fake_daemon.state.abandon_requests] == [ARTEFACT_ID]
    assert fake_daemon.state.confirm_requests == []


def test_scan_existing_out_exits_2_before_sending(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = scan_file.with_name("e.np")
    out.write_bytes(b"earlier envelope")

    code, _, stderr = run(capsys, scan_argv(scan_file, out), fake_daemon.environ())

    assert code == 2
    assert "--force" in stderr
    assert out.read_bytes() == b"earlier envelope"
    assert fake_daemon.state.seal_metadata == []


def test_scan_force_overwrites(fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = scan_file.with_name("e.np")
    out.write_bytes(b"earlier envelope")

    code, _, _ = run(capsys, scan_argv(scan_file, out, "mat", "--force"), fake_daemon.environ())

    assert code == 0
    assert out.read_bytes().startswith(ENVELOPE_MAGIC)


def test_scan_out_equal_input_exits_2(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = scan_file.read_bytes()

    code, _, stderr = run(capsys, scan_argv(scan_file, scan_file, "mat", "--force"), fake_daemon.environ())

    assert code == 2
    assert "trùng với tệp đầu vào" in stderr
    assert scan_file.read_bytes() == original


def test_scan_missing_input_exits_2(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = short_tmp / "khong-co.pdf"

    code, _, stderr = run(capsys, scan_argv(missing, short_tmp / "e.np"), fake_daemon.environ())

    assert code == 2
    assert str(missing) in stderr
    assert not (short_tmp / "e.np").exists()


def test_scan_empty_doc_number_exits_2(fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scan", str(scan_file), "--level", "mat", "--doc-number", " ", "--issued", ISSUED, "--out", "x.np"]

    code, _, stderr = run(capsys, argv, fake_daemon.environ())

    assert code == 2
    assert "số tài liệu" in stderr


def test_scan_expired_protection_warns(fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scan", str(scan_file), "--level", "mat", "--doc-number", "7/BC", "--issued", "01/02/2001",
            "--out", str(scan_file.with_name("e.np"))]

    code, _, stderr = run(capsys, argv, fake_daemon.environ())

    assert code == 0
    assert "Cảnh báo" in stderr
    assert "Điều 19" in stderr


def test_client_missing_identity_exits_2_naming_path(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = fake_daemon.environ()
    environ["NIEMPHONG_IDENTITY"] = str(scan_file.parent / "nobody")

    code, _, stderr = run(capsys, scan_argv(scan_file, scan_file.with_name("e.np")), environ)

    assert code == 2
    assert str(scan_file.parent / "nobody" / "cert.pem") in stderr
    assert not scan_file.with_name("e.np").exists()


def test_client_no_identity_exits_2(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    environ = fake_daemon.environ()
    del environ["NIEMPHONG_IDENTITY"]

    code, _, stderr = run(capsys, ["pending"], environ)

    assert code == 2
    assert "NIEMPHONG_IDENTITY" in stderr


def test_client_identity_name_resolved_in_identity_dir(
    fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = fake_daemon.environ()
    environ["NIEMPHONG_IDENTITY_DIR"] = str(fake_daemon.layout.identities)

    code, _, stderr = run(capsys, ["pending", "--identity", "approver-1"], environ)

    assert code == 0, stderr


def test_client_unreachable_server_exits_6(dev_layout: DevLayout, capsys: pytest.CaptureFixture[str]) -> None:
    server = f"unix:{dev_layout.socket}"
    environ = {"NIEMPHONG_SERVER": server, "NIEMPHONG_IDENTITY": str(dev_layout.identity("viewer")), "LANG": "vi_VN"}

    code, stdout, stderr = run(capsys, ["pending"], environ)

    assert code == 6
    assert stdout == ""
    assert server in stderr
    assert "niemphongd --config" in stderr


def test_client_unreachable_server_view_leaves_no_file(
    dev_layout: DevLayout, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"data")
    environ = {"NIEMPHONG_SERVER": f"unix:{dev_layout.socket}", "NIEMPHONG_IDENTITY": str(dev_layout.identity("viewer"))}

    code, _, _ = run(capsys, ["view", str(envelope), "--out", str(short_tmp / "p.pdf")], environ)

    assert code == 6
    assert sorted(path.name for path in short_tmp.iterdir()) == ["dev", "e.np"]


@pytest.mark.parametrize("server", ["localhost", "unix:relative.sock", "unix://host/path", "host:0", "host:99999", "http://x:1"])
def test_client_bad_server_address_exits_2(
    fake_daemon: FakeDaemon, server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run(capsys, ["pending", "--server", server], fake_daemon.environ())

    assert code == 2
    assert server in stderr


def test_client_no_server_exits_2(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    environ = fake_daemon.environ()
    del environ["NIEMPHONG_SERVER"]

    code, _, stderr = run(capsys, ["pending"], environ)

    assert code == 2
    assert "NIEMPHONG_SERVER" in stderr


def test_client_over_tcp_with_server_name(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run(capsys, ["pending", "--server", fake_daemon.tcp_address], fake_daemon.environ("approver-1"))

    assert code == 0, stderr


def test_client_wrong_server_name_fails_tls(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    environ = fake_daemon.environ("approver-1")
    environ["NIEMPHONG_SERVER_NAME"] = "someone-else"

    code, _, _ = run(capsys, ["pending"], environ)

    assert code == 6


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_client_server_cert_as_client_rejected(
    fake_daemon: FakeDaemon, short_tmp: Path, transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = short_tmp / "server-as-client"
    identity.mkdir(mode=0o700)
    shutil.copyfile(fake_daemon.layout.pki / "server.pem", identity / "cert.pem")
    shutil.copyfile(fake_daemon.layout.pki / "server.key", identity / "key.pem")
    (identity / "key.pem").chmod(0o600)
    shutil.copyfile(fake_daemon.layout.identity("scanner") / "ca.pem", identity / "ca.pem")
    environ = fake_daemon.environ("scanner")
    environ["NIEMPHONG_IDENTITY"] = str(identity)
    if transport == "tcp":
        environ["NIEMPHONG_SERVER"] = fake_daemon.tcp_address

    code, _, stderr = run(capsys, ["pending"], environ)

    assert code == 4, stderr
    assert "không chấp nhận chứng thư" in stderr
    assert "NIEMPHONG_IDENTITY" in stderr
    assert "đã chạy chưa" not in stderr
    assert "Socket closed" not in stderr


def test_client_foreign_ca_identity_rejected(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    identity = write_client_identity(short_tmp / "foreign", "scanner", "scanner", create_ca())
    environ = fake_daemon.environ("scanner", lang="en_US.UTF-8")
    environ["NIEMPHONG_IDENTITY"] = str(identity)

    code, _, stderr = run(capsys, ["pending"], environ)

    assert code == 6
    assert "Cannot verify the certificate of niemphongd" in stderr
    assert "is running" not in stderr
    assert "CERTIFICATE_VERIFY_FAILED" not in stderr


def test_client_unix_uri_form_accepted(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    server = "unix://" + str(fake_daemon.layout.socket)

    code, _, stderr = run(capsys, ["pending", "--server", server], fake_daemon.environ("approver-1"))

    assert code == 0, stderr


def test_inspect_table_in_vietnamese(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * (200 * 1024 - len(ENVELOPE_MAGIC)))

    code, stdout, _ = run(capsys, ["inspect", str(envelope)], fake_daemon.environ("viewer"))

    assert code == 0
    assert "Mã tài liệu:" in stdout
    assert ARTEFACT_ID in stdout
    assert "Độ mật:" in stdout
    assert "Tối mật" in stdout
    assert "14/05/2025" in stdout
    assert "Kế hoạch bảo vệ bí mật nhà nước năm 2025" in stdout
    assert "niemphong-toi-mat v3" in stdout
    assert "14/05/2025 10:30:12" in stdout
    assert "chưa được xác thực" in stdout
    request = fake_daemon.state.inspect_requests[0]
    assert len(request.envelope_head) == 80 * 1024
    assert request.envelope_bytes == 200 * 1024


def test_inspect_json_english_keys(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * (100 - len(ENVELOPE_MAGIC)))

    code, stdout, _ = run(capsys, ["inspect", str(envelope), "--json"], fake_daemon.environ("viewer"))

    facts = json.loads(stdout)
    assert code == 0
    assert facts["artefact_id"] == ARTEFACT_ID
    assert facts["level"] == "toi-mat"
    assert facts["document"]["doc_number"] == "1479/UBND-NC"
    assert facts["keys"] == [{"key_id": "niemphong-toi-mat", "version": 3, "wrap_algorithm": "AES-KWP"}]
    assert facts["sealed_at"] == "2025-05-14T03:30:12Z"
    assert facts["envelope_bytes"] == 100
    assert facts["verified"] is False


def test_request_prints_only_request_id(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * (100 - len(ENVELOPE_MAGIC)))

    code, stdout, stderr = run(
        capsys, ["request", str(envelope), "--purpose", nfd("Phục vụ thanh tra")], fake_daemon.environ("viewer")
    )

    assert code == 0, stderr
    assert stdout == REQUEST_ID + "\n"
    sent = fake_daemon.state.access_requests[0]
    assert sent.artefact_id == ARTEFACT_ID
    assert sent.purpose == "Phục vụ thanh tra"


def test_request_empty_purpose_exits_2_before_connecting(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC)

    code, _, _ = run(capsys, ["request", str(envelope), "--purpose", "  "], fake_daemon.environ("viewer"))

    assert code == 2
    assert fake_daemon.state.inspect_requests == []


def test_approve_complete_reports_grant(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run(capsys, ["approve", REQUEST_ID], fake_daemon.environ("approver-1"))

    assert code == 0
    assert stdout == ""
    assert "đủ phê duyệt" in stderr


def test_approve_own_request_exits_4(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run(capsys, ["approve", SELF_REQUEST_ID], fake_daemon.environ("approver-1"))

    assert code == 4
    assert stdout == ""
    assert "tự phê duyệt" in stderr


def test_deny_reason_sent_as_nfc(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(
        capsys, ["deny", REQUEST_ID, "--reason", nfd("Không đủ căn cứ"), "--json"], fake_daemon.environ("approver-1")
    )

    assert code == 0
    assert fake_daemon.state.deny_requests[0].reason == "Không đủ căn cứ"
    assert json.loads(stdout)["state"] == "denied"


def test_pending_table_strips_control_characters(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, ["pending"], fake_daemon.environ("approver-1"))

    assert code == 0
    assert "Mã yêu cầu" in stdout
    assert REQUEST_ID in stdout
    assert "0/2" in stdout
    assert "\x1b" not in stdout


def test_pending_json(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, ["pending", "--json"], fake_daemon.environ("approver-1"))

    requests = json.loads(stdout)["requests"]
    assert code == 0
    assert [request["request_id"] for request in requests] == [REQUEST_ID]
    assert requests[0]["state"] == "pending"
    assert requests[0]["level"] == "toi-mat"
    assert requests[0]["approvals_required"] == 2


def test_show_one_request(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, ["show", REQUEST_ID, "--lang", "en"], fake_daemon.environ("viewer"))

    assert code == 0
    assert "State:" in stdout
    assert "pending" in stdout


def test_show_missing_request_exits_1(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run(capsys, ["show", MISSING_REQUEST_ID], fake_daemon.environ("viewer"))

    assert code == 1
    assert "Không tìm thấy yêu cầu" in stderr


def test_view_writes_plaintext(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plaintext = os.urandom(CHUNK_BYTES + 5)
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + plaintext)
    out = short_tmp / "ban-ro.pdf"

    code, stdout, stderr = run(
        capsys, ["view", str(envelope), "--out", str(out), "--request", REQUEST_ID], fake_daemon.environ("viewer")
    )

    assert code == 0, stderr
    assert stdout == ""
    assert out.read_bytes() == plaintext
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert fake_daemon.state.open_starts[0].request_id == REQUEST_ID
    assert "Số lượt mở còn lại: 2" in stderr


def test_view_tampered_exits_5_without_file(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"A" * 5000 + TAMPER_MARK + b"B" * 5000)
    out = short_tmp / "ban-ro.pdf"

    code, stdout, stderr = run(capsys, ["view", str(envelope), "--out", str(out)], fake_daemon.environ("viewer"))

    assert code == 5
    assert stdout == ""
    assert "bị hỏng hoặc đã bị sửa đổi" in stderr
    assert sorted(path.name for path in short_tmp.iterdir()) == ["dev", "e.np"]


def test_view_not_approved_exits_4(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_daemon.state.deny_open = True
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"data")

    code, _, stderr = run(
        capsys, ["view", str(envelope), "--out", str(short_tmp / "p.pdf")], fake_daemon.environ("viewer")
    )

    assert code == 4
    assert "niemphong request" in stderr
    assert not (short_tmp / "p.pdf").exists()
    assert fake_daemon.state.open_starts[0].request_id == ""


def test_view_out_equal_envelope_exits_2(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"data")

    code, _, _ = run(capsys, ["view", str(envelope), "--out", str(envelope), "--force"], fake_daemon.environ("viewer"))

    assert code == 2
    assert envelope.read_bytes() == ENVELOPE_MAGIC + b"data"
    assert fake_daemon.state.open_starts == []


def test_view_out_fifo_with_force_exits_2(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"data")
    fifo = short_tmp / "pipe"
    os.mkfifo(fifo)

    code, _, stderr = run(
        capsys, ["view", str(envelope), "--out", str(fifo), "--force", "--lang", "en"], fake_daemon.environ("viewer")
    )

    assert code == 2
    assert "not a regular file" in stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert fake_daemon.state.open_starts == []


def test_scan_out_symlink_with_force_exits_2(
    fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = scan_file.with_name("target.txt")
    target.write_bytes(b"kept")
    link = scan_file.with_name("link.np")
    link.symlink_to(target)

    code, _, stderr = run(capsys, scan_argv(scan_file, link, "mat", "--force"), fake_daemon.environ())

    assert code == 2
    assert "liên kết tượng trưng" in stderr
    assert link.is_symlink()
    assert target.read_bytes() == b"kept"
    assert fake_daemon.state.seal_metadata == []


@pytest.mark.parametrize(("value", "expected"), [("", "must not be empty"), ("{tmp}/folder/", "ends with /")])
def test_out_empty_or_folder_exits_2(
    fake_daemon: FakeDaemon, short_tmp: Path, value: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"data")
    value = value.format(tmp=short_tmp)

    code, _, stderr = run(capsys, ["view", str(envelope), "--out", value, "--lang", "en"], fake_daemon.environ("viewer"))

    assert code == 2
    assert expected in stderr
    assert "is a folder" not in stderr
    assert fake_daemon.state.open_starts == []
    assert sorted(path.name for path in short_tmp.iterdir()) == ["dev", "e.np"]


def test_scan_non_utf8_file_name_replaced(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "Công văn" in TCVN3: bytes that are not valid UTF-8.
    source = Path(os.fsdecode(bytes(short_tmp) + b"/C\xabng v\xb8n.pdf"))
    source.write_bytes(b"%PDF-1.4 scan")
    out = short_tmp / "e.np"

    code, stdout, stderr = run(capsys, scan_argv(source, out, "mat", "--json"), fake_daemon.environ())

    assert code == 0, stderr
    assert fake_daemon.state.seal_metadata[0].document.source_name == "C\ufffdng v\ufffdn.pdf"
    assert json.loads(stdout)["artefact_id"] == ARTEFACT_ID
    assert out.exists()


def test_scan_source_name_option_sent(fake_daemon: FakeDaemon, scan_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = scan_argv(scan_file, scan_file.with_name("e.np"), "mat", "--source-name", nfd("Công văn 12.pdf"))

    code, _, stderr = run(capsys, argv, fake_daemon.environ())

    assert code == 0, stderr
    assert fake_daemon.state.seal_metadata[0].document.source_name == "Công văn 12.pdf"


@pytest.mark.parametrize(("name", "shown", "character"), [
    ("bao\tcao.pdf", "bao\\u0009cao.pdf", "U+0009"),
    ("bao\u202ecao.pdf", "bao\\u202Ecao.pdf", "U+202E RIGHT-TO-LEFT OVERRIDE"),
])
def test_scan_rejected_source_name_explained(
    fake_daemon: FakeDaemon, short_tmp: Path, name: str, shown: str, character: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = short_tmp / name
    source.write_bytes(b"%PDF-1.4 scan")
    out = short_tmp / "e.np"

    code, _, stderr = run(capsys, scan_argv(source, out, "mat", "--lang", "en"), fake_daemon.environ())

    assert code == 2
    assert shown in stderr
    assert character in stderr
    assert "control or format characters" in stderr
    assert "--source-name" in stderr
    assert "\u202e" not in stderr and "\t" not in stderr
    assert not out.exists()


def test_scan_tuyet_mat_empty_file_no_content_hint(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    placeholder = short_tmp / "placeholder"
    placeholder.write_bytes(b"")

    code, _, stderr = run(capsys, scan_argv(placeholder, short_tmp / "e.np", "tuyet-mat"), fake_daemon.environ())

    assert code == 3
    assert "Tuyệt mật không được số hóa" in stderr
    assert "chứa nội dung Tuyệt mật" not in stderr


def test_inspect_json_escapes_terminal_controls(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forged = "Kế hoạch\u009b31m \u202egnp.exe\u2066x\u2069\u200e\u200f\u202a\u202b\u202c\u202d\u2067\u2068"
    fake_daemon.state.inspect_title = forged
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * 100)

    code, stdout, _ = run(capsys, ["inspect", str(envelope), "--json"], fake_daemon.environ("viewer"))

    assert code == 0
    assert json.loads(stdout)["document"]["title"] == forged
    assert "Kế hoạch" in stdout
    for char in forged:
        if not char.isalnum() and char not in " .":
            assert char not in stdout, f"U+{ord(char):04X} reached stdout unescaped"
    assert "\\u009b" in stdout
    assert "\\u202e" in stdout


@pytest.mark.parametrize("command", [["pending"], ["show", REQUEST_ID]])
def test_client_options_before_subcommand(
    fake_daemon: FakeDaemon, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--server", fake_daemon.tcp_address,
        "--identity", str(fake_daemon.layout.identity("approver-1")),
        "--lang", "en",
        "--json",
        *command,
    ]

    code, stdout, stderr = run(capsys, argv, {})

    assert code == 0, stderr
    assert json.loads(stdout)


def test_client_option_after_subcommand_wins(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--server", "unix:/nonexistent/np.sock", "pending", "--server", fake_daemon.server_address]

    code, _, stderr = run(capsys, argv, fake_daemon.environ("approver-1"))

    assert code == 0, stderr


@pytest.mark.parametrize("command", ["inspect", "view", "request"])
def test_not_an_envelope_exits_5_calmly(
    fake_daemon: FakeDaemon, short_tmp: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = short_tmp / "danh-muc.csv"
    csv.write_text("STT;Số tài liệu;Độ mật\n1;12/UBND;Mật\n", encoding="utf-8")
    argv = {
        "inspect": ["inspect", str(csv)],
        "view": ["view", str(csv), "--out", str(short_tmp / "p.pdf")],
        "request": ["request", str(csv), "--purpose", "xem"],
    }[command]

    code, stdout, stderr = run(capsys, argv, fake_daemon.environ("viewer"))

    assert code == 5
    assert stdout == ""
    assert "không phải là phong bì Niêm Phong" in stderr
    assert "bị hỏng" not in stderr
    assert "người đứng đầu" not in stderr
    assert fake_daemon.state.inspect_requests == []
    assert fake_daemon.state.open_starts == []
    assert not (short_tmp / "p.pdf").exists()


def test_inspect_short_file_not_an_envelope(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC[:5])

    code, _, stderr = run(capsys, ["inspect", str(envelope), "--lang", "en"], fake_daemon.environ("viewer"))

    assert code == 5
    assert "is not a Niêm Phong envelope" in stderr


def view_not_approved(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str]:
    fake_daemon.state.deny_open = True
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"data")
    argv = ["view", str(envelope), "--out", str(short_tmp / "p.pdf"), "--lang", "en", *extra]
    code, _, stderr = run(capsys, argv, fake_daemon.environ("viewer"))
    assert not (short_tmp / "p.pdf").exists()
    return code, stderr


def stored_request(fake_daemon: FakeDaemon, state: int) -> pb.AccessRequest:
    request = sample_request(state)
    fake_daemon.state.requests_by_id[request.request_id] = request
    return request


def test_view_not_approved_request_pending(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = stored_request(fake_daemon, pb.REQUEST_STATE_PENDING)
    request.approvals.add(approver="approver-1", approved_at=SEALED_AT)

    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys, "--request", REQUEST_ID)

    assert code == 4
    assert f"Request {REQUEST_ID} is still pending: 1 of 2 approvals so far." in stderr


def test_view_not_approved_request_denied(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = stored_request(fake_daemon, pb.REQUEST_STATE_DENIED)
    request.denied_by = "approver-2"
    request.deny_reason = "Không đủ căn cứ \x1b[2J"

    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys, "--request", REQUEST_ID)

    assert code == 4
    assert f"Request {REQUEST_ID} was denied by approver-2. Reason: Không đủ căn cứ" in stderr
    assert "\x1b" not in stderr


def test_view_not_approved_grant_used_up(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = stored_request(fake_daemon, pb.REQUEST_STATE_APPROVED)
    request.grant.CopyFrom(pb.Grant(expires_at=2**40, opens_allowed=1, opens_used=1))

    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys, "--request", REQUEST_ID)

    assert code == 4
    assert "is used up: 1 of 1 opens" in stderr


def test_view_not_approved_grant_expired(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = stored_request(fake_daemon, pb.REQUEST_STATE_APPROVED)
    request.grant.CopyFrom(pb.Grant(expires_at=SEALED_AT + 3600, opens_allowed=3, opens_used=1))

    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys, "--request", REQUEST_ID)

    assert code == 4
    assert "expired at 2025-05-14 11:30:12" in stderr


def test_view_not_approved_request_for_other_document(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = stored_request(fake_daemon, pb.REQUEST_STATE_APPROVED)
    request.artefact_id = "9" * 32
    request.doc_number = "77/QĐ-UBND"

    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys, "--request", REQUEST_ID)

    assert code == 4
    assert "is for another document (number 77/QĐ-UBND)" in stderr


def test_view_not_approved_lists_own_pending(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = sample_request()
    other_viewer = sample_request()
    other_viewer.request_id = "d" * 32
    other_viewer.requester = "viewer-2"
    other_document = sample_request()
    other_document.request_id = "e" * 32
    other_document.artefact_id = "9" * 32
    fake_daemon.state.pending = [other_viewer, other_document, own]

    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys)

    assert code == 4
    assert f"Request {REQUEST_ID} is still pending: 0 of 2 approvals so far." in stderr
    assert "d" * 32 not in stderr
    assert "e" * 32 not in stderr


def test_view_not_approved_none_pending(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_daemon.state.pending = []

    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys)

    assert code == 4
    assert "You have no pending request for this document" in stderr
    assert "niemphong request" in stderr


def test_view_not_approved_message_covers_other_states(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = view_not_approved(fake_daemon, short_tmp, capsys, "--request", MISSING_REQUEST_ID)

    assert code == 4
    for words in ("pending", "denied", "used up or expired", "niemphong show"):
        assert words in stderr


def test_view_tampered_says_open_may_be_counted(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"A" * 5000 + TAMPER_MARK + b"B" * 5000)

    code, _, stderr = run(capsys, ["view", str(envelope), "--out", str(short_tmp / "p.pdf")], fake_daemon.environ("viewer"))

    assert code == 5
    assert "có thể đã tính một lượt mở" in stderr


def test_view_connection_lost_mid_transfer(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_daemon.state.crash_during_open = True
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + os.urandom(3 * CHUNK_BYTES))

    code, stdout, stderr = run(
        capsys, ["view", str(envelope), "--out", str(short_tmp / "p.pdf"), "--lang", "en"], fake_daemon.environ("viewer")
    )

    assert code == 6
    assert stdout == ""
    assert "was lost during the transfer" in stderr
    assert "Cannot connect" not in stderr
    assert sorted(path.name for path in short_tmp.iterdir()) == ["dev", "e.np"]


def test_client_refused_connection_says_cannot_connect(
    dev_layout: DevLayout, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + os.urandom(3 * CHUNK_BYTES))
    environ = {"NIEMPHONG_SERVER": f"unix:{dev_layout.socket}", "NIEMPHONG_IDENTITY": str(dev_layout.identity("viewer"))}

    code, _, stderr = run(capsys, ["view", str(envelope), "--out", str(short_tmp / "p.pdf"), "--lang", "en"], environ)

    assert code == 6
    assert "Cannot connect" in stderr
    assert "lost during the transfer" not in stderr


def test_pending_truncated_says_more(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    fake_daemon.state.pending_truncated = True

    code, stdout, _ = run(capsys, ["pending"], fake_daemon.environ("approver-1"))

    assert code == 0
    assert REQUEST_ID in stdout
    assert stdout.rstrip().endswith("niemphongd chỉ liệt kê 1 yêu cầu cũ nhất đang chờ duyệt.")
    assert "… và còn nữa" in stdout


def test_pending_json_truncated_flag(fake_daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    for truncated in (False, True):
        fake_daemon.state.pending_truncated = truncated

        code, stdout, _ = run(capsys, ["pending", "--json"], fake_daemon.environ("approver-1"))

        assert code == 0
        assert json.loads(stdout)["truncated"] is truncated


def test_inspect_registry_mismatch_warns(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_daemon.state.registry_mismatch = True
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * 100)

    code, stdout, stderr = run(capsys, ["inspect", str(envelope), "--lang", "en"], fake_daemon.environ("viewer"))

    assert code == 0
    assert stdout.startswith("!!! WARNING: the level or document number in the envelope header DIFFER")
    assert "has been altered" in stderr


def test_inspect_registry_mismatch_no_log_line(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_daemon.state.registry_mismatch = True
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * 100)

    code, _, quiet = run(capsys, ["inspect", str(envelope)], fake_daemon.environ("viewer"))
    _, _, verbose = run(capsys, ["inspect", str(envelope), "-v"], fake_daemon.environ("viewer"))

    assert code == 0
    assert quiet.startswith("Cảnh báo: phần đầu phong bì")
    assert "niemphong.clients" not in quiet
    assert "differ from the registry" in verbose


def test_inspect_json_registry_mismatch(fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * 100)

    for mismatch in (False, True):
        fake_daemon.state.registry_mismatch = mismatch

        code, stdout, stderr = run(capsys, ["inspect", str(envelope), "--json"], fake_daemon.environ("viewer"))

        assert code == 0
        assert json.loads(stdout)["registry_mismatch"] is mismatch
        assert ("sửa đổi" in stderr) is mismatch


def test_inspect_closed_stdout_ends_quietly(
    fake_daemon: FakeDaemon, short_tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    envelope = short_tmp / "e.np"
    envelope.write_bytes(ENVELOPE_MAGIC + b"H" * 100)
    read_end, write_end = os.pipe()
    os.close(read_end)
    # Python ignores SIGPIPE, so writing to the pipe raises BrokenPipeError as under `| head`.
    closed_stdout = io.TextIOWrapper(io.FileIO(write_end, "w"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", closed_stdout)

    code = main(["inspect", str(envelope)], fake_daemon.environ("viewer"))
    stderr = capsys.readouterr().err
    closed_stdout.write("x" * 100_000)
    closed_stdout.flush()

    assert code == 141
    assert stderr == ""
