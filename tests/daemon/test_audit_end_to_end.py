"""The audit trail of a real niemphongd: what each call records, and the auditor's commands."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message_factory import GetMessageClass

from conftest import DaemonProcess, DevEnvironment, error_reason, grant_access
from niemphong.daemon.api import api_methods, operation_name
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

MARKER = b"BMNN-AUDIT-PLAINTEXT-MARKER:"


def audit_path(env: DevEnvironment) -> Path:
    return Path(env.config["audit"]["path"])


def records_after(env: DevEnvironment, offset: int) -> list[dict]:
    data = audit_path(env).read_bytes()[offset:]
    entries = [json.loads(line) for line in data.splitlines()]
    return [entry for entry in entries if entry["kind"] == "record"]


def log_size(env: DevEnvironment) -> int:
    return audit_path(env).stat().st_size


def request_id_of(call: grpc.Call) -> str:
    return dict(call.trailing_metadata() or ())["x-request-id"]


def document(size: int = 70_000) -> bytes:
    block = MARKER + os.urandom(40)
    return (block * (size // len(block) + 1))[:size]


def seal_call(env: DevEnvironment, data: bytes, level: int = pb.LEVEL_MAT, identity: str = "scanner",
              doc_number: str = "88/UBND-VP") -> tuple[bytes, pb.SealSummary | None, str]:
    """Seal ``data``; return the envelope, the summary (None when refused) and the call's request id."""
    def requests() -> Iterator[pb.SealRequest]:
        yield pb.SealRequest(metadata=pb.SealMetadata(level=level, document=pb.DocumentMetadata(
            doc_number=doc_number, issued_on="2025-05-20", source_name="scan.pdf")))
        yield pb.SealRequest(chunk=data)

    with env.channel(identity) as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Seal(requests(), timeout=30)
        envelope = bytearray()
        summary = None
        try:
            for response in call:
                if response.WhichOneof("payload") == "chunk":
                    envelope += response.chunk
                else:
                    summary = response.summary
        except grpc.RpcError:
            pass
        return bytes(envelope), summary, request_id_of(call)


def open_call(env: DevEnvironment, envelope: bytes, identity: str = "viewer") -> tuple[bytes, bool, str]:
    """Open ``envelope``; return the plaintext received, whether the call succeeded, and its request id."""
    def requests() -> Iterator[pb.OpenRequest]:
        yield pb.OpenRequest(start=pb.OpenStart())
        yield pb.OpenRequest(chunk=envelope)

    with env.channel(identity) as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Open(requests(), timeout=30)
        plain = bytearray()
        try:
            for response in call:
                if response.WhichOneof("payload") == "chunk":
                    plain += response.chunk
            ok = True
        except grpc.RpcError:
            ok = False
        return bytes(plain), ok, request_id_of(call)


def by_request(records: list[dict], request_id: str) -> dict:
    found = [record for record in records if record["request_id"] == request_id]
    assert len(found) == 1, (request_id, found)
    return found[0]


def call_empty(channel: grpc.Channel, path: str) -> None:
    """Call any API method with an empty request and ignore the outcome."""
    method = api_methods()[path]
    request_class = GetMessageClass(method.input_type)
    response_class = GetMessageClass(method.output_type)
    options = {"request_serializer": request_class.SerializeToString, "response_deserializer": response_class.FromString}
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path, **options)(iter([]), timeout=10))
        elif method.client_streaming:
            channel.stream_unary(path, **options)(iter([]), timeout=10)
        elif method.server_streaming:
            list(channel.unary_stream(path, **options)(request_class(), timeout=10))
        else:
            channel.unary_unary(path, **options)(request_class(), timeout=10)
    except grpc.RpcError:
        pass


def test_audit_every_rpc_recorded(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    offset = log_size(dev_env)
    with dev_env.channel("operator") as channel:
        for path in api_methods():
            call_empty(channel, path)

    recorded = {record["operation"] for record in records_after(dev_env, offset) if record["identity"] == "operator"}

    assert recorded == {operation_name(method) for method in api_methods().values()}


def test_audit_seal_and_open_records(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    offset = log_size(dev_env)
    data = document()
    envelope, summary, seal_id = seal_call(dev_env, data)
    assert summary is not None
    _, refused_ok, refused_id = open_call(dev_env, envelope, identity="viewer-2")
    grant_id = grant_access(dev_env, summary.artefact_id, ["approver-1"])
    plain, opened_ok, open_id = open_call(dev_env, envelope)
    records = records_after(dev_env, offset)

    seal = by_request(records, seal_id)
    assert opened_ok and plain == data
    assert (seal["operation"], seal["decision"], seal["status"], seal["identity"]) == (
        "EnvelopeService/Seal", "allowed", "OK", "scanner",
    )
    assert seal["roles"] == ["scanner"]
    assert seal["facts"]["artefact_id"] == summary.artefact_id
    assert seal["facts"]["level"] == "mat"
    assert seal["facts"]["doc_number"] == "88/UBND-VP"
    assert seal["facts"]["plaintext_bytes"] == len(data)
    assert seal["facts"]["envelope_bytes"] == len(envelope)
    # The classification decision and the period it sets are on record.
    assert seal["facts"]["decision"] == "seal"
    assert seal["facts"]["protected_until"] == "2035-05-20"

    refused = by_request(records, refused_id)
    assert not refused_ok
    assert (refused["decision"], refused["status"], refused["reason"]) == ("refused", "PERMISSION_DENIED", "NOT_APPROVED")
    assert refused["facts"]["artefact_id"] == summary.artefact_id

    opened = by_request(records, open_id)
    assert (opened["operation"], opened["decision"], opened["identity"]) == ("EnvelopeService/Open", "allowed", "viewer")
    assert opened["facts"]["access_request_id"] == grant_id
    assert opened["facts"]["opens_used"] == 1
    assert opened["facts"]["plaintext_bytes"] == len(data)

    asked = [r for r in records if r["operation"] == "AccessService/RequestAccess" and r["facts"].get("access_request_id") == grant_id]
    approved = [r for r in records if r["operation"] == "AccessService/Approve" and r["facts"].get("access_request_id") == grant_id]
    assert asked[0]["facts"]["purpose"] == "kiểm tra"
    assert approved[0]["identity"] == "approver-1"
    assert approved[0]["facts"]["state"] == "approved"


def test_audit_not_secret_decision_recorded(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    offset = log_size(dev_env)

    def requests() -> Iterator[pb.SealRequest]:
        yield pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
            doc_number="3/UBND-2011", issued_on="2011-03-01", source_name="scan.pdf")))
        yield pb.SealRequest(chunk=b"het thoi han bao ve")

    with dev_env.channel("scanner") as channel:
        call = pb_grpc.EnvelopeServiceStub(channel).Seal(requests(), timeout=30)
        responses = list(call)
    record = by_request(records_after(dev_env, offset), request_id_of(call))

    assert [response.WhichOneof("payload") for response in responses] == ["not_sealed"]
    assert (record["operation"], record["decision"], record["status"]) == ("EnvelopeService/Seal", "allowed", "OK")
    assert record["facts"]["decision"] == "not_secret"
    assert record["facts"]["rule"] == "c"
    assert record["facts"]["doc_number"] == "3/UBND-2011"
    assert record["facts"]["record_id"] == responses[0].not_sealed.record_id
    assert "artefact_id" not in record["facts"]


def test_audit_extension_records_grounds(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary, _ = seal_call(dev_env, os.urandom(500), doc_number="90/UBND-VP")
    assert summary is not None
    offset = log_size(dev_env)

    with dev_env.channel("approver-1") as channel:
        call = pb_grpc.PolicyServiceStub(channel).RecordExtension.with_call(pb.RecordExtensionRequest(
            artefact_id=summary.artefact_id, ends_on="2040-05-20", decided_on="2025-06-01",
            decision="Quyết định 05/QĐ-UBND gia hạn bảo vệ"), timeout=10)[1]
    record = by_request(records_after(dev_env, offset), request_id_of(call))

    assert (record["operation"], record["decision"], record["identity"]) == (
        "PolicyService/RecordExtension", "allowed", "approver-1",
    )
    assert record["facts"]["artefact_id"] == summary.artefact_id
    assert record["facts"]["extension_decision"] == "Quyết định 05/QĐ-UBND gia hạn bảo vệ"
    assert record["facts"]["previous_until"] == "2035-05-20"
    assert record["facts"]["protected_until"] == "2040-05-20"


def test_audit_refusal_carries_request_id(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    offset = log_size(dev_env)

    _, summary, request_id = seal_call(dev_env, b"x", level=pb.LEVEL_TUYET_MAT)
    record = by_request(records_after(dev_env, offset), request_id)

    assert summary is None
    assert (record["decision"], record["reason"], record["facts"]["level"]) == ("refused", "LEVEL_NEVER_DIGITIZED", "tuyet-mat")


def test_audit_role_refusal_recorded(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    offset = log_size(dev_env)

    _, summary, request_id = seal_call(dev_env, b"x", identity="viewer")
    record = by_request(records_after(dev_env, offset), request_id)

    assert summary is None
    assert (record["identity"], record["reason"], record["status"]) == ("viewer", "ROLE_REQUIRED", "PERMISSION_DENIED")


def test_audit_log_holds_no_plaintext_or_pin(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    data = document()
    envelope, summary, _ = seal_call(dev_env, data)
    assert summary is not None
    grant_access(dev_env, summary.artefact_id, ["approver-1"])
    plain, _, _ = open_call(dev_env, envelope)
    pin = (dev_env.root / "secrets" / "token.pin").read_text().strip().encode()
    log_bytes = audit_path(dev_env).read_bytes()

    assert plain == data
    assert MARKER not in log_bytes
    assert data[100:164] not in log_bytes
    assert pin not in log_bytes


def test_audit_concurrent_calls_one_total_order(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    offset = log_size(dev_env)
    ids: list[str] = []
    lock = threading.Lock()

    def seal_some() -> None:
        for _ in range(4):
            _, summary, request_id = seal_call(dev_env, os.urandom(2000))
            assert summary is not None
            with lock:
                ids.append(request_id)

    threads = [threading.Thread(target=seal_some) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = [json.loads(line) for line in audit_path(dev_env).read_bytes()[offset:].splitlines()]
    result = dev_env.cli("auditor", "audit", "verify", "--json")

    seqs = [entry["seq"] for entry in entries]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert all(entry["prev"] == before["hash"] for before, entry in zip(entries, entries[1:]))
    assert set(ids) <= {entry.get("request_id") for entry in entries}
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["intact"] is True


# The auditor's commands --------------------------------------------------------


def test_audit_verify_command_reports_intact(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    vietnamese = dev_env.cli("auditor", "audit", "verify")
    english = dev_env.cli("auditor", "audit", "verify", "--lang", "en")

    assert vietnamese.returncode == 0, vietnamese.stderr
    assert "Nhật ký kiểm toán nguyên vẹn" in vietnamese.stdout
    assert english.returncode == 0, english.stderr
    assert "The audit log is intact" in english.stdout


@pytest.mark.parametrize("command", [["verify"], ["export"], ["show", "0" * 32]])
def test_audit_commands_need_auditor_role(daemon: DaemonProcess, dev_env: DevEnvironment, command: list[str]) -> None:
    result = dev_env.cli("viewer", "audit", *command)

    assert result.returncode == 4
    assert "người kiểm tra (auditor)" in result.stderr


def test_audit_export_csv_vietnamese_columns(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    _, summary, _ = seal_call(dev_env, os.urandom(1000), doc_number="=cmd|'/c calc'!A1")
    assert summary is not None
    out = tmp_path / "nhat-ky.csv"

    result = dev_env.cli("auditor", "audit", "export", "--format", "csv", "--out", str(out))
    raw = out.read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    sealed = [row for row in rows[1:] if row[8] == summary.artefact_id]

    assert result.returncode == 0, result.stderr
    assert raw.startswith(b"\xef\xbb\xbf")
    assert rows[0][:7] == ["Số thứ tự", "Thời gian (giờ Việt Nam)", "Người thực hiện", "Vai trò", "Thao tác", "Mã thao tác", "Quyết định"]
    assert len(sealed) == 1
    assert sealed[0][4] == "Niêm phong"
    assert sealed[0][6] == "Cho phép"
    assert sealed[0][10] == "Mật"
    # A cell that a spreadsheet would run as a formula is neutralized.
    assert sealed[0][9] == "'=cmd|'/c calc'!A1"
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_audit_export_jsonl_stored_entries(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary, seal_id = seal_call(dev_env, os.urandom(1000))
    assert summary is not None

    result = dev_env.cli("auditor", "audit", "export", "--format", "jsonl")
    lines = result.stdout.splitlines()
    records = [json.loads(line) for line in lines]
    stored = audit_path(dev_env).read_text(encoding="utf-8").splitlines()

    assert result.returncode == 0, result.stderr
    assert by_request(records, seal_id)["facts"]["artefact_id"] == summary.artefact_id
    assert set(lines) <= set(stored)
    assert all(record["kind"] == "record" for record in records)


def test_audit_export_time_range(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    future = dev_env.cli("auditor", "audit", "export", "--since", "2999-01-01", "--format", "jsonl")
    past = dev_env.cli("auditor", "audit", "export", "--until", "01/01/2000", "--format", "jsonl")
    today = dev_env.cli("auditor", "audit", "export", "--since", "2000-01-01T00:00:00+07:00", "--format", "jsonl")

    assert future.returncode == 0
    assert future.stdout == ""
    assert past.returncode == 0
    assert past.stdout == ""
    assert today.returncode == 0
    assert today.stdout.count("\n") > 0


@pytest.mark.parametrize(
    "arguments",
    [
        ["--since", "2025-06-02", "--until", "2025-06-01"],
        ["--since", "hôm qua"],
        ["--until", "2025-13-01"],
        ["--format", "xml"],
    ],
    ids=["since-after-until", "since-not-a-time", "until-not-a-date", "unknown-format"],
)
def test_audit_export_bad_arguments_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, arguments: list[str]) -> None:
    result = dev_env.cli("auditor", "audit", "export", *arguments)

    assert result.returncode == 2, result.stderr
    assert result.stdout == ""


def test_audit_show_artefact_history(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    envelope, summary, _ = seal_call(dev_env, document())
    assert summary is not None
    grant_access(dev_env, summary.artefact_id, ["approver-1"])
    open_call(dev_env, envelope)
    envelope_path = tmp_path / "doc.npe"
    envelope_path.write_bytes(envelope)

    table = dev_env.cli("auditor", "audit", "show", summary.artefact_id)
    by_file = dev_env.cli("auditor", "audit", "show", str(envelope_path), "--json")
    records = json.loads(by_file.stdout)["records"]
    operations = [record["operation"] for record in records]

    assert table.returncode == 0, table.stderr
    for label in ("Niêm phong", "Xin khai thác", "Phê duyệt", "Mở tài liệu", "mục đích: kiểm tra"):
        assert label in table.stdout
    assert by_file.returncode == 0, by_file.stderr
    assert operations[0] == "EnvelopeService/Seal"
    assert operations[1:4] == ["AccessService/RequestAccess", "AccessService/Approve", "EnvelopeService/Open"]
    # The command's own Inspect of the envelope file is on record too.
    assert (operations[-1], records[-1]["identity"]) == ("EnvelopeService/Inspect", "auditor")


def test_audit_show_unknown_artefact_empty(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    result = dev_env.cli("auditor", "audit", "show", "ab" * 16)

    assert result.returncode == 0
    assert "không có bản ghi nào" in result.stderr


def test_audit_show_missing_envelope_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    result = dev_env.cli("auditor", "audit", "show", str(tmp_path / "absent.npe"))

    assert result.returncode == 2


def test_audit_history_rejects_bad_artefact_id(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    from niemphong.v1 import audit_pb2, audit_pb2_grpc

    with dev_env.channel("auditor") as channel, pytest.raises(grpc.RpcError) as excinfo:
        list(audit_pb2_grpc.AuditServiceStub(channel).ArtefactHistory(
            audit_pb2.ArtefactHistoryRequest(artefact_id="not-hex"), timeout=10))

    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(excinfo.value) == "INVALID_FIELD"
