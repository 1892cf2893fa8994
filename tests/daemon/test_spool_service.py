"""SpoolService against the real daemon: the daemon reads and writes files in each identity's spool directory."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import grpc
import pytest

from conftest import DaemonProcess, DevEnvironment, error_reason, grant_access, open_bytes, run_niemphong
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.services.spool_service import SpoolServicer
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

METADATA = pb.SealMetadata(
    level=pb.LEVEL_MAT,
    document=pb.DocumentMetadata(doc_number="88/UBND-VP", issued_on="2025-05-20", source_name="scan.pdf"),
)


def spool_dir(env: DevEnvironment, identity: str) -> Path:
    return Path(env.config["spool"]["root"]) / identity


def unique(name: str) -> str:
    return f"{os.urandom(6).hex()}-{name}"


def seal_file_response(env: DevEnvironment, source: str, envelope: str, identity: str = "scanner",
                       replace: bool = False, metadata: pb.SealMetadata = METADATA) -> pb.SealFileResponse:
    with env.channel(identity) as channel:
        return pb_grpc.SpoolServiceStub(channel).SealFile(
            pb.SealFileRequest(metadata=metadata, source_path=source, envelope_path=envelope, replace=replace),
            timeout=60,
        )


def seal_file(env: DevEnvironment, source: str, envelope: str, identity: str = "scanner",
              replace: bool = False) -> pb.SealSummary:
    response = seal_file_response(env, source, envelope, identity, replace)
    assert response.WhichOneof("result") == "summary"
    return response.summary


def open_file(env: DevEnvironment, envelope: str, output: str, identity: str = "viewer") -> pb.OpenSummary:
    with env.channel(identity) as channel:
        return pb_grpc.SpoolServiceStub(channel).OpenFile(
            pb.OpenFileRequest(envelope_path=envelope, output_path=output), timeout=60,
        )


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


def sealed_in_spool(env: DevEnvironment, data: bytes) -> tuple[str, pb.SealSummary]:
    name = unique("scan.pdf")
    (spool_dir(env, "scanner") / name).write_bytes(data)
    summary = seal_file(env, name, name + ".npe")
    return name + ".npe", summary


def test_seal_file_open_file_round_trip(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    data = os.urandom(9 * 1024 * 1024 + 5)
    envelope, summary = sealed_in_spool(dev_env, data)
    sealed = (spool_dir(dev_env, "scanner") / envelope).read_bytes()
    (spool_dir(dev_env, "viewer") / envelope).write_bytes(sealed)
    grant_access(dev_env, summary.artefact_id, ["approver-1"])

    opened = open_file(dev_env, envelope, "opened.pdf")

    output = spool_dir(dev_env, "viewer") / "opened.pdf"
    assert output.read_bytes() == data
    assert opened.plaintext_bytes == len(data)
    assert opened.artefact_id == summary.artefact_id
    assert summary.envelope_bytes == len(sealed)
    assert stat.S_IMODE(output.stat().st_mode) == 0o640
    output.unlink()


def test_seal_file_envelope_opens_over_stream(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    data = os.urandom(200_000)
    envelope, summary = sealed_in_spool(dev_env, data)
    grant_access(dev_env, summary.artefact_id, ["approver-1"])

    assert open_bytes(dev_env, (spool_dir(dev_env, "scanner") / envelope).read_bytes()) == data


def test_seal_file_summary_sha256_matches_file(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    envelope, summary = sealed_in_spool(dev_env, b"")

    assert summary.envelope_sha256 == hashlib.sha256((spool_dir(dev_env, "scanner") / envelope).read_bytes()).hexdigest()
    assert summary.plaintext_bytes == 0


def test_open_file_without_grant_writes_nothing(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    envelope, _ = sealed_in_spool(dev_env, b"secret scan")
    (spool_dir(dev_env, "viewer") / envelope).write_bytes((spool_dir(dev_env, "scanner") / envelope).read_bytes())
    output = unique("opened.pdf")

    error = rpc_error(open_file, dev_env, envelope, output)

    assert error_reason(error) == "NOT_APPROVED"
    assert not (spool_dir(dev_env, "viewer") / output).exists()


def test_open_file_altered_envelope_writes_nothing(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    envelope, summary = sealed_in_spool(dev_env, os.urandom(300_000))
    altered = bytearray((spool_dir(dev_env, "scanner") / envelope).read_bytes())
    altered[-100] ^= 1
    (spool_dir(dev_env, "viewer") / envelope).write_bytes(bytes(altered))
    grant_access(dev_env, summary.artefact_id, ["approver-1"])
    output = unique("opened.pdf")

    error = rpc_error(open_file, dev_env, envelope, output)

    assert error.code() == grpc.StatusCode.DATA_LOSS
    assert error_reason(error) == "INTEGRITY_FAILURE"
    assert [name for name in os.listdir(spool_dir(dev_env, "viewer")) if name.startswith(".niemphong-")] == []
    assert not (spool_dir(dev_env, "viewer") / output).exists()


def test_seal_file_symlink_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    name = unique("scan.pdf")
    (spool_dir(dev_env, "scanner") / name).symlink_to(dev_env.root / "secrets" / "token.pin")

    error = rpc_error(seal_file, dev_env, name, name + ".npe")

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "SPOOL_FILE_REJECTED"
    assert not (spool_dir(dev_env, "scanner") / (name + ".npe")).exists()


def test_seal_file_escaping_path_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    error = rpc_error(seal_file, dev_env, "../viewer/scan.pdf", "x.npe")

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "SPOOL_PATH_INVALID"


def test_seal_file_missing_source_not_found(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    error = rpc_error(seal_file, dev_env, unique("missing.pdf"), unique("x.npe"))

    assert error_reason(error) == "SPOOL_FILE_NOT_FOUND"


def test_seal_file_existing_output_kept(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    name = unique("scan.pdf")
    (spool_dir(dev_env, "scanner") / name).write_bytes(b"scan")
    (spool_dir(dev_env, "scanner") / (name + ".npe")).write_bytes(b"older envelope")

    error = rpc_error(seal_file, dev_env, name, name + ".npe")

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error) == "SPOOL_OUTPUT_EXISTS"
    assert (spool_dir(dev_env, "scanner") / (name + ".npe")).read_bytes() == b"older envelope"


def test_seal_file_by_viewer_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    error = rpc_error(seal_file, dev_env, "scan.pdf", "scan.pdf.npe", identity="viewer")

    assert error_reason(error) == "ROLE_REQUIRED"


def test_seal_file_tuyet_mat_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    name = unique("scan.pdf")
    (spool_dir(dev_env, "scanner") / name).write_bytes(b"scan")
    request = pb.SealFileRequest(
        metadata=pb.SealMetadata(level=pb.LEVEL_TUYET_MAT, document=METADATA.document),
        source_path=name, envelope_path=name + ".npe",
    )

    with dev_env.channel("scanner") as channel:
        error = rpc_error(pb_grpc.SpoolServiceStub(channel).SealFile, request, timeout=30)

    assert error_reason(error) == "LEVEL_NEVER_DIGITIZED"
    assert not (spool_dir(dev_env, "scanner") / (name + ".npe")).exists()


def test_seal_file_summary_carries_decision(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary = sealed_in_spool(dev_env, b"scan")

    assert summary.decision.outcome == pb.DECISION_OUTCOME_SEAL
    assert summary.decision.level == pb.LEVEL_MAT
    # Mật: ten years from the issue date 2025-05-20.
    assert summary.decision.protected_until == "2035-05-20"


def test_seal_file_records_protection_period(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary = sealed_in_spool(dev_env, b"scan")

    with dev_env.channel("approver-1") as channel:
        due = pb_grpc.PolicyServiceStub(channel).ListDue(pb.ListDueRequest(within_days=3650), timeout=30)

    listed = {artefact.artefact_id: artefact for artefact in due.artefacts}
    assert listed[summary.artefact_id].protected_until == "2035-05-20"


def test_seal_file_not_secret_writes_nothing(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    name = unique("scan.pdf")
    scanner_dir = spool_dir(dev_env, "scanner")
    (scanner_dir / name).write_bytes(b"scan")
    metadata = pb.SealMetadata(
        level=pb.LEVEL_MAT, document=METADATA.document,
        classification=pb.ClassificationFacts(declassification=pb.Declassification(
            decision="Quyết định số 3/QĐ-UBND", decided_on="2026-01-15",
        )),
    )

    response = seal_file_response(dev_env, name, name + ".npe", metadata=metadata)

    assert response.WhichOneof("result") == "not_sealed"
    assert response.not_sealed.decision.outcome == pb.DECISION_OUTCOME_NOT_SECRET
    assert response.not_sealed.decision.rule == "e"
    assert len(response.not_sealed.record_id) == 32
    assert not (scanner_dir / (name + ".npe")).exists()
    assert not list(scanner_dir.glob(".niemphong-*"))


def test_seal_file_refused_by_policy_writes_nothing(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    name = unique("scan.pdf")
    scanner_dir = spool_dir(dev_env, "scanner")
    (scanner_dir / name).write_bytes(b"scan")
    # The sample catalog puts this item at Mật, so Tối mật is above it.
    metadata = pb.SealMetadata(
        level=pb.LEVEL_TOI_MAT, document=METADATA.document,
        classification=pb.ClassificationFacts(basis="Điểm a Khoản 2 Điều 1 danh mục mẫu"),
    )

    error = rpc_error(seal_file_response, dev_env, name, name + ".npe", metadata=metadata)

    assert error_reason(error) == "CLASSIFICATION_REFUSED"
    assert not (scanner_dir / (name + ".npe")).exists()
    assert not list(scanner_dir.glob(".niemphong-*"))


class _Context:
    request_id = "test"
    facts: dict[str, object] = {}


def test_spool_not_configured_disabled() -> None:
    servicer = SpoolServicer(None, envelopes=None)  # type: ignore[arg-type]
    try:
        with pytest.raises(ServiceError) as excinfo:
            servicer._seal_file(pb.SealFileRequest(source_path="a", envelope_path="b"), _Context())  # type: ignore[arg-type]
    finally:
        servicer.close()

    assert excinfo.value.reason == "SPOOL_DISABLED"


def test_cli_scan_view_spool(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    scanner_dir = spool_dir(dev_env, "scanner")
    name = unique("công-văn.pdf")
    (scanner_dir / name).write_bytes(b"%PDF-1.7 " + os.urandom(5000))

    sealed = dev_env.cli("scanner", "scan", str(scanner_dir / name), "--level", "mat", "--doc-number", "9/UBND",
                         "--issued", "2025-03-01", "--out", str(scanner_dir / (name + ".npe")),
                         "--spool", str(scanner_dir))
    assert sealed.returncode == 0, sealed.stderr
    artefact_id = sealed.stdout.strip()
    viewer_dir = spool_dir(dev_env, "viewer")
    (viewer_dir / (name + ".npe")).write_bytes((scanner_dir / (name + ".npe")).read_bytes())
    grant_access(dev_env, artefact_id, ["approver-1"])

    opened = dev_env.cli("viewer", "view", str(viewer_dir / (name + ".npe")), "--out", str(viewer_dir / name),
                         "--spool", str(viewer_dir))

    assert opened.returncode == 0, opened.stderr
    assert (viewer_dir / name).read_bytes() == (scanner_dir / name).read_bytes()


def test_cli_scan_spool_not_secret_exits_3(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    scanner_dir = spool_dir(dev_env, "scanner")
    name = unique("cu.pdf")
    (scanner_dir / name).write_bytes(b"%PDF-1.4 old")

    # A Mật document issued in 2011: its ten-year period has ended.
    result = dev_env.cli("scanner", "scan", str(scanner_dir / name), "--level", "mat", "--doc-number", "3/UBND",
                         "--issued", "2011-05-20", "--out", str(scanner_dir / (name + ".npe")),
                         "--spool", str(scanner_dir), "--json")

    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["rule"] == "c"
    assert "điểm c" in result.stderr
    assert not (scanner_dir / (name + ".npe")).exists()


def test_cli_scan_outside_spool_exits_2(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"x")

    result = dev_env.cli("scanner", "scan", str(scan), "--level", "mat", "--doc-number", "9/UBND",
                         "--issued", "2025-03-01", "--out", str(tmp_path / "scan.pdf.npe"),
                         "--spool", str(spool_dir(dev_env, "scanner")), lang="en_US.UTF-8")

    assert result.returncode == 2
    assert "not inside the spool directory" in result.stderr


def test_cli_scan_spool_symlink_exits_4(daemon: DaemonProcess, dev_env: DevEnvironment, tmp_path: Path) -> None:
    outside = tmp_path / "scan.pdf"
    outside.write_bytes(b"x")
    scanner_dir = spool_dir(dev_env, "scanner")
    link = scanner_dir / unique("link.pdf")
    link.symlink_to(outside)

    result = run_niemphong(
        "scan", str(link), "--level", "mat", "--doc-number", "9/UBND", "--issued", "2025-03-01",
        "--out", str(scanner_dir / unique("x.npe")), "--spool", str(scanner_dir), "--lang", "en",
        env={"NIEMPHONG_SERVER": dev_env.unix_target, "NIEMPHONG_IDENTITY": str(dev_env.identity("scanner"))},
    )

    assert result.returncode == 4
    assert "symbolic link" in result.stderr


def test_cli_scan_spool_remove_source_exits_2(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    scanner_dir = spool_dir(dev_env, "scanner")
    name = unique("scan.pdf")
    (scanner_dir / name).write_bytes(b"%PDF-1.7 scan")

    result = dev_env.cli("scanner", "scan", str(scanner_dir / name), "--level", "mat", "--doc-number", "9/UBND",
                         "--issued", "2025-03-01", "--out", str(scanner_dir / (name + ".npe")),
                         "--spool", str(scanner_dir), "--remove-source", lang="en_US.UTF-8")

    assert result.returncode == 2
    assert "--remove-source cannot be used with --spool" in result.stderr
    assert (scanner_dir / name).exists()
    assert not (scanner_dir / (name + ".npe")).exists()
