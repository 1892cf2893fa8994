"""Seals whose envelope the client could not keep, against a real daemon on a SoftHSM2 token.

A full file system is made with RLIMIT_FSIZE on the client process, with
SIGXFSZ ignored: the kernel then fails the envelope write with EFBIG, as a
full disk fails it with ENOSPC, without root or a tmpfs.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pypdfium2 as pdfium
import pytest

from conftest import BIN, SAMPLES, DaemonProcess, DevEnvironment, error_reason, grant_access, open_bytes
from niemphong.v1 import audit_pb2 as audit_pb
from niemphong.v1 import audit_pb2_grpc as audit_grpc
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

# The client seals a document of up to 1 MiB with SealSmall, anything larger with a Seal stream.
SEAL_OPERATIONS = ("EnvelopeService/Seal", "EnvelopeService/SealSmall")
# Far below the envelope of the scan below, far above the client's small files.
FILE_SIZE_LIMIT = 64 * 1024
ISSUED_ON = "2025-05-20"


def run_with_file_limit(env: DevEnvironment, identity: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the niemphong command with every file it writes limited to FILE_SIZE_LIMIT bytes."""
    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))

    full_env = {key: value for key, value in os.environ.items() if not key.startswith("NIEMPHONG_")}
    full_env.update(
        LANG="vi_VN.UTF-8", NIEMPHONG_SERVER=env.unix_target, NIEMPHONG_IDENTITY=str(env.identity(identity)),
    )
    return subprocess.run(
        [str(BIN / "niemphong"), *args], env=full_env, capture_output=True, text=True, timeout=120,
        preexec_fn=limit_file_size,
    )


def write_scan(path: Path, padding: int = 512 * 1024) -> None:
    # Pillow reads only the JPEG header, so the padding keeps one page and
    # makes the envelope much larger than FILE_SIZE_LIMIT.
    with path.open("wb") as handle:
        handle.write((SAMPLES / "giay-de-nghi-mau.jpg").read_bytes())
        handle.write(os.urandom(padding))


class OneRowBatch:
    """A permitted batch of one Mật document, scanned through the command line."""

    def __init__(self, env: DevEnvironment, tmp_path: Path, doc_number: str) -> None:
        self.env = env
        self.doc_number = doc_number
        self.scans = tmp_path / "scans"
        self.scans.mkdir()
        write_scan(self.scans / "scan.jpg")
        self.manifest = tmp_path / "ds.csv"
        self.manifest.write_text(
            "\ufeffSTT,Số tài liệu,Ngày ban hành,Số tờ,Số trang,Độ mật,Tệp\n"
            f"1,{doc_number},{ISSUED_ON},1,1,Mật,scan.jpg\n",
            encoding="utf-8",
        )
        self.out = tmp_path / "out"
        self.envelope = self.out / "scan.jpg.npe"
        self.minutes = tmp_path / "bien-ban.pdf"

        opened = self.env.cli("scanner", *self.scan_args(), "--handed-over-by", "Phạm Thị Dung")
        assert opened.returncode == 4, opened.stderr
        self.batch_id = opened.stdout.strip()
        permitted = self.env.cli("approver-1", "batch", "approve", self.batch_id)
        assert permitted.returncode == 0, permitted.stderr

    def scan_args(self) -> list[str]:
        return ["scan", "--manifest", str(self.manifest), "--dir", str(self.scans), "--out-dir", str(self.out)]

    def scan(self) -> dict:
        result = self.env.cli("scanner", *self.scan_args(), "--json")
        assert result.stdout, result.stderr
        return json.loads(result.stdout)

    def show(self) -> dict:
        result = self.env.cli("scanner", "batch", "show", self.batch_id, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def minutes_json(self) -> dict:
        result = self.env.cli("approver-1", "batch", "minutes", self.batch_id, "--out", str(self.minutes), "--json", "--force")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def minutes_text(self) -> str:
        document = pdfium.PdfDocument(str(self.minutes))
        try:
            return "\n".join(document[index].get_textpage().get_text_range() for index in range(len(document)))
        finally:
            document.close()

    def seal_without_confirming(self) -> tuple[bytes, pb.SealSummary]:
        """Seal the row as a client that dies before it writes or confirms the envelope."""
        data = (self.scans / "scan.jpg").read_bytes()

        def requests() -> Iterator[pb.SealRequest]:
            yield pb.SealRequest(metadata=pb.SealMetadata(
                level=pb.LEVEL_MAT, batch_id=self.batch_id, page_count=1,
                document=pb.DocumentMetadata(doc_number=self.doc_number, issued_on=ISSUED_ON, source_name="scan.jpg"),
            ))
            for start in range(0, len(data), 256 * 1024):
                yield pb.SealRequest(chunk=data[start:start + 256 * 1024])

        envelope = bytearray()
        summary = None
        with self.env.channel("scanner") as channel:
            for response in pb_grpc.EnvelopeServiceStub(channel).Seal(requests(), timeout=60):
                if response.WhichOneof("payload") == "chunk":
                    envelope += response.chunk
                else:
                    summary = response.summary
        assert summary is not None
        return bytes(envelope), summary


def audit_records(env: DevEnvironment) -> list[dict]:
    lines = Path(env.config["audit"]["path"]).read_bytes().splitlines()
    return [entry for entry in map(json.loads, lines) if entry["kind"] == "record"]


def records_of(env: DevEnvironment, operation: str, artefact_id: str) -> list[dict]:
    return [
        record for record in audit_records(env)
        if record["operation"] == operation and record["facts"].get("artefact_id") == artefact_id
    ]


def history_operations(env: DevEnvironment, artefact_id: str) -> list[tuple[str, str]]:
    with env.channel("auditor") as channel:
        records = audit_grpc.AuditServiceStub(channel).ArtefactHistory(
            audit_pb.ArtefactHistoryRequest(artefact_id=artefact_id), timeout=30,
        )
        return [(record.operation, record.decision) for record in records]


def rpc_reason(call: object) -> str:
    with pytest.raises(grpc.RpcError) as error:
        call()  # type: ignore[operator]
    return error_reason(error.value)


def test_batch_full_disk_then_rerun_seals_row(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    batch = OneRowBatch(dev_env, tmp_path, "701/FB")
    abandoned_before = len([r for r in audit_records(dev_env) if r["operation"] == "EnvelopeService/AbandonSeal"])

    full = run_with_file_limit(dev_env, "scanner", *batch.scan_args(), "--json")

    assert full.returncode == 1, full.stderr
    row = json.loads(full.stdout)["rows"][0]
    assert row["status"] == "failed"
    assert "đã được báo hủy bỏ" in row["message"]
    assert "Chạy lại lệnh là an toàn" in row["message"]
    assert sorted(path.name for path in batch.out.iterdir()) == [".niemphong-batch.json"]
    abandon_records = [r for r in audit_records(dev_env) if r["operation"] == "EnvelopeService/AbandonSeal"]
    assert len(abandon_records) == abandoned_before + 1
    abandoned_id = abandon_records[-1]["facts"]["artefact_id"]
    assert abandon_records[-1]["decision"] == "allowed"
    assert abandon_records[-1]["facts"]["batch_id"] == batch.batch_id
    assert abandon_records[-1]["facts"]["error"] == os.strerror(27)  # EFBIG

    between = batch.show()["documents"][0]
    assert between["outcome"] == "not_sealed"
    assert between["artefact_id"] is None
    minutes = batch.minutes_json()["reconciliation"]
    assert (minutes["documents_sealed"], minutes["documents_flagged"]) == (0, 1)
    assert "Đã số hóa, khớp số trang" not in batch.minutes_text()

    rerun = batch.scan()

    assert rerun["exit_code"] == 0
    assert rerun["rows"][0]["status"] == "sealed"
    sealed_id = rerun["rows"][0]["artefact_id"]
    assert sealed_id != abandoned_id
    assert batch.envelope.is_file()
    assert batch.show()["documents"][0]["outcome"] == "sealed"
    confirmation = records_of(dev_env, "EnvelopeService/ConfirmSeal", sealed_id)
    assert [record["decision"] for record in confirmation] == ["allowed"]
    assert ("EnvelopeService/AbandonSeal", "allowed") in history_operations(dev_env, abandoned_id)
    with dev_env.channel("viewer") as channel:
        reason = rpc_reason(lambda: pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=abandoned_id, purpose="kiểm tra"), timeout=10))
    assert reason == "ARTEFACT_ABANDONED"

    closed = dev_env.cli("scanner", "batch", "close", batch.batch_id, "--note", "Trả đủ")
    assert closed.returncode == 0, closed.stderr
    summary = batch.minutes_json()["reconciliation"]
    assert (summary["documents_sealed"], summary["documents_flagged"]) == (1, 0)


def test_batch_unconfirmed_row_shown_and_resealed(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    batch = OneRowBatch(dev_env, tmp_path, "702/FB")
    old_envelope, old = batch.seal_without_confirming()
    # A grant taken on the unconfirmed artefact before it is replaced.
    request_id = grant_access(dev_env, old.artefact_id, ["approver-1"])

    shown = dev_env.cli("scanner", "batch", "show", batch.batch_id)
    refused_close = dev_env.cli("scanner", "batch", "close", batch.batch_id, "--note", "Trả đủ")
    minutes = batch.minutes_json()

    assert batch.show()["documents"][0]["outcome"] == "unconfirmed"
    assert "CHƯA SỐ HÓA" in shown.stdout
    assert refused_close.returncode == 3
    assert "702/FB" in refused_close.stderr
    assert "chưa đóng lô" in refused_close.stderr
    assert minutes["documents"][0]["outcome"] == "unconfirmed"
    assert (minutes["reconciliation"]["documents_sealed"], minutes["reconciliation"]["documents_unconfirmed"]) == (0, 1)
    assert minutes["reconciliation"]["documents_flagged"] == 1
    text = batch.minutes_text()
    assert "phong bì chưa được xác nhận" in text
    assert "Không có chênh lệch" not in text

    rerun = batch.scan()

    row = rerun["rows"][0]
    assert row["status"] == "sealed"
    assert old.artefact_id in row["message"]
    assert batch.show()["documents"][0]["outcome"] == "sealed"
    seal_records = [
        record for record in audit_records(dev_env)
        if record["operation"] in SEAL_OPERATIONS and record["facts"].get("artefact_id") == row["artefact_id"]
    ]
    assert [record["facts"].get("superseded_artefact_id") for record in seal_records] == [old.artefact_id]
    history = history_operations(dev_env, old.artefact_id)
    assert any((operation, "allowed") in history for operation in SEAL_OPERATIONS)
    with pytest.raises(grpc.RpcError) as opened:
        open_bytes(dev_env, old_envelope, request_id=request_id)
    assert error_reason(opened.value) == "ARTEFACT_ABANDONED"
    with dev_env.channel("viewer") as channel:
        reason = rpc_reason(lambda: pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=old.artefact_id, purpose="kiểm tra"), timeout=10))
    assert reason == "ARTEFACT_ABANDONED"

    closed = dev_env.cli("scanner", "batch", "close", batch.batch_id, "--note", "Trả đủ")
    assert closed.returncode == 0, closed.stderr


def test_batch_rerun_confirms_envelope_left_unconfirmed(
    dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path
) -> None:
    batch = OneRowBatch(dev_env, tmp_path, "703/FB")
    envelope, summary = batch.seal_without_confirming()
    # The client wrote the envelope and stopped before confirming it.
    batch.out.mkdir(exist_ok=True)
    batch.envelope.write_bytes(envelope)

    rerun = batch.scan()

    assert rerun["rows"][0]["status"] == "already_sealed"
    assert rerun["rows"][0]["artefact_id"] == summary.artefact_id
    assert batch.show()["documents"][0]["outcome"] == "sealed"
    assert batch.envelope.read_bytes() == envelope
    with dev_env.channel("scanner") as channel:
        stub = pb_grpc.EnvelopeServiceStub(channel)
        abandon = rpc_reason(lambda: stub.AbandonSeal(pb.AbandonSealRequest(artefact_id=summary.artefact_id), timeout=10))
    assert abandon == "SEAL_CONFIRMED"

    batch.envelope.unlink()
    missing = batch.scan()
    assert missing["rows"][0]["status"] == "refused"
    assert missing["exit_code"] == 3


def test_confirm_seal_checks_envelope_and_sealer(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    batch = OneRowBatch(dev_env, tmp_path, "704/FB")
    envelope, summary = batch.seal_without_confirming()
    if not dev_env.identity("scanner-2").exists():
        dev_env.add_identity("scanner-2", "scanner")
    right = pb.ConfirmSealRequest(artefact_id=summary.artefact_id, envelope_sha256=hashlib.sha256(envelope).hexdigest())
    wrong = pb.ConfirmSealRequest(
        artefact_id=summary.artefact_id, envelope_sha256=hashlib.sha256(envelope[:-1]).hexdigest(),
    )

    with dev_env.channel("scanner") as channel:
        mismatch = rpc_reason(lambda: pb_grpc.EnvelopeServiceStub(channel).ConfirmSeal(wrong, timeout=10))
    with dev_env.channel("scanner-2") as channel:
        other = rpc_reason(lambda: pb_grpc.EnvelopeServiceStub(channel).ConfirmSeal(right, timeout=10))
    unconfirmed = batch.show()["documents"][0]["outcome"]
    with dev_env.channel("scanner") as channel:
        state = pb_grpc.EnvelopeServiceStub(channel).ConfirmSeal(right, timeout=10)
        again = pb_grpc.EnvelopeServiceStub(channel).ConfirmSeal(right, timeout=10)

    assert mismatch == "ENVELOPE_MISMATCH"
    assert other == "NOT_YOUR_ARTEFACT"
    assert unconfirmed == "unconfirmed"
    assert state.state == pb.SEAL_WRITE_STATE_CONFIRMED
    assert again.confirmed_at == state.confirmed_at
    assert batch.show()["documents"][0]["outcome"] == "sealed"
    assert len(records_of(dev_env, "EnvelopeService/ConfirmSeal", summary.artefact_id)) >= 3


@pytest.mark.parametrize(
    ("lang", "expected", "padding"),
    [
        # One SealSmall call.
        ("vi", "đã được báo hủy bỏ", 512 * 1024),
        # A Seal stream, whose write fails while envelope chunks still arrive.
        ("en", "was reported abandoned", 3 * 1024 * 1024),
    ],
)
def test_scan_full_disk_reports_abandoned_seal(
    dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path, lang: str, expected: str, padding: int
) -> None:
    source = tmp_path / "scan.jpg"
    write_scan(source, padding)
    out = tmp_path / "scan.npe"
    before = len(audit_records(dev_env))

    result = run_with_file_limit(
        dev_env, "scanner", "--lang", lang, "scan", str(source), "--level", "mat", "--doc-number", "705/FB",
        "--issued", ISSUED_ON, "--out", str(out),
    )

    assert result.returncode == 1
    assert expected in result.stderr
    assert str(out) in result.stderr
    assert not out.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["scan.jpg"]
    new_records = audit_records(dev_env)[before:]
    sealed = [r["facts"]["artefact_id"] for r in new_records if r["operation"] in SEAL_OPERATIONS
              and r["decision"] == "allowed" and "artefact_id" in r["facts"]]
    abandoned = [r["facts"]["artefact_id"] for r in new_records if r["operation"] == "EnvelopeService/AbandonSeal"]
    assert len(sealed) == 1
    assert abandoned == sealed
