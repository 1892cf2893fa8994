"""KeyService refusals and reports, through the niemphong command line and the
API, on a daemon of their own."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from conftest import error_reason, state_query
from key_helpers import KeyLab, body, make_lab, sample, seal_file, slots
from test_audit_end_to_end import log_size, records_after
from test_metrics import scrape, value
from niemphong.daemon import envelope
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import keys_pb2_grpc as kpb_grpc
from niemphong.v1 import niemphong_pb2 as pb

DAY = 86400


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyLab]:
    lab = make_lab(tmp_path_factory.mktemp("key-service"), tmp_path_factory.mktemp("logs") / "niemphongd.log")
    lab.daemon.start()
    yield lab
    assert lab.daemon.stop() == 0, lab.daemon.log()


def rewrap_error(lab: KeyLab, header: bytes) -> str:
    with lab.env.channel("custodian") as channel:
        with pytest.raises(grpc.RpcError) as excinfo:
            kpb_grpc.KeyServiceStub(channel).Rewrap(kpb.RewrapRequest(header=header), timeout=10)
    return error_reason(excinfo.value)


@pytest.mark.parametrize(("identity", "args"), [
    ("viewer", ("keys", "list")),
    ("scanner", ("keys", "due")),
    ("auditor", ("keys", "rotate", "--level", "mat")),
    ("operator", ("keys", "destroy", "--level", "mat", "--version", "1")),
    ("viewer", ("rewrap", "{archive}")),
    ("operator", ("recover", "rewrap", "{archive}")),
])
def test_keys_command_without_role_exits_4(lab: KeyLab, tmp_path: Path, identity: str, args: tuple[str, ...]) -> None:
    seal_file(lab, tmp_path / "e.npe", sample(100), pb.LEVEL_MAT)

    result = lab.cli(identity, *(arg.format(archive=tmp_path) for arg in args))

    assert result.returncode == 4
    assert "vai trò" in result.stderr


def test_keys_destroy_active_version_exits_3(lab: KeyLab) -> None:
    result = lab.cli("custodian", "keys", "destroy", "--level", "mat", "--version", "1", lang="en_US.UTF-8")

    assert result.returncode == 3
    assert "active" in result.stderr


def test_keys_retire_unknown_version_exits_1(lab: KeyLab) -> None:
    result = lab.cli("custodian", "keys", "retire", "--level", "mat", "--version", "99", "--for", "sealing")

    assert result.returncode == 1
    assert "99" in result.stderr


def test_keys_tuyet_mat_rejected(lab: KeyLab) -> None:
    result = lab.cli("custodian", "keys", "rotate", "--level", "tuyet-mat")

    assert result.returncode == 3
    assert "Tuyệt mật" in result.stderr


def test_keys_rejected_change_no_longer_pending(lab: KeyLab) -> None:
    proposed = lab.cli("custodian", "keys", "rotate", "--level", "toi-mat", "--reason", "định kỳ")
    change_id = proposed.stdout.strip()
    second = lab.cli("custodian-2", "keys", "rotate", "--level", "toi-mat")

    rejected = lab.cli("custodian-2", "keys", "reject", change_id, "--reason", "chưa đến hạn")
    pending = lab.cli("auditor", "keys", "pending", "--json")
    late = lab.cli("custodian-2", "keys", "confirm", change_id)

    assert second.returncode == 3
    assert change_id in second.stderr
    assert rejected.returncode == 0, rejected.stderr
    assert json.loads(pending.stdout) == {"changes": []}
    assert late.returncode == 3
    assert "đã bị từ chối" in late.stderr


def test_keys_due_lists_key_past_rotation(lab: KeyLab) -> None:
    age = "UPDATE key_versions SET created_at = created_at {} ? WHERE key_id = 'niemphong-mat' AND state = 'active'"
    before = lab.cli("auditor", "keys", "due", "--json")
    state_query(lab.env, age.format("-"), (731 * DAY,))
    try:
        due = lab.cli("auditor", "keys", "due", "--json")
        text = lab.cli("auditor", "keys", "due", lang="en_US.UTF-8")
        # The metric reads the same registry, at every scrape.
        samples = scrape(lab.env)
    finally:
        state_query(lab.env, age.format("+"), (731 * DAY,))

    assert json.loads(before.stdout) == {"due": []}
    listed = json.loads(due.stdout)["due"]
    assert [(key["key_id"], key["rotation_due"]) for key in listed] == [("niemphong-mat", True)]
    assert listed[0]["age_seconds"] >= 731 * DAY
    assert "past its 730-day rotation period" in text.stdout
    assert value(samples, "niemphong_key_rotation_due", level="mat") == 1
    assert value(samples, "niemphong_key_rotation_due", level="toi-mat") == 0
    assert ("niemphong_key_rotation_due", (("level", "toi-mat"),)) in samples


def test_rewrap_tampered_envelope_left_unchanged(lab: KeyLab, tmp_path: Path) -> None:
    path = tmp_path / "hong.npe"
    seal_file(lab, path, sample(5000), pb.LEVEL_MAT)
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))

    result = lab.cli("custodian", "rewrap", str(tmp_path), "--json")

    assert result.returncode == 5
    assert path.read_bytes() == bytes(data)
    assert json.loads(result.stdout)["failed"] == 1


def test_rewrap_unregistered_envelope_rejected(lab: KeyLab) -> None:
    data_key = os.urandom(32)
    slot = envelope.KeySlot("niemphong-mat", 1, "AES-KWP", aes_key_wrap_with_padding(os.urandom(32), data_key))
    sealer = envelope.Sealer(data_key, artefact_id=os.urandom(16), level=1, metadata={}, slots=[slot], sealed_at=1)

    assert rewrap_error(lab, sealer.header_bytes) == "INTEGRITY_FAILURE"


def test_rewrap_header_with_body_bytes_rejected(lab: KeyLab, tmp_path: Path) -> None:
    path = tmp_path / "a.npe"
    seal_file(lab, path, sample(100), pb.LEVEL_MAT)
    sealed = path.read_bytes()
    header = envelope.parse_header(sealed).header_bytes

    assert rewrap_error(lab, sealed[: len(header) + 1]) == "INTEGRITY_FAILURE"
    assert rewrap_error(lab, header[:-1]) == "INTEGRITY_FAILURE"


def test_rewrap_header_over_bound_rejected(lab: KeyLab) -> None:
    assert rewrap_error(lab, b"\x00" * (envelope.PREAMBLE_LEN + envelope.MAX_HEADER_LEN + 1)) == "FIELD_TOO_LONG"


def test_rewrap_current_envelope_not_rewritten(lab: KeyLab, tmp_path: Path) -> None:
    path = tmp_path / "moi.npe"
    seal_file(lab, path, sample(3000), pb.LEVEL_MAT)
    before = path.stat()

    result = lab.cli("operator", "rewrap", str(path), lang="en_US.UTF-8")

    assert result.returncode == 0, result.stderr
    assert "0 files rewrapped, 1 already on the newest keys" in result.stderr
    assert path.stat().st_ino == before.st_ino
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_rewrap_missing_path_exits_2(lab: KeyLab, tmp_path: Path) -> None:
    result = lab.cli("custodian", "rewrap", str(tmp_path / "khong-co"))

    assert result.returncode == 2


def test_rewrap_keeps_file_mode(lab: KeyLab, tmp_path: Path) -> None:
    path = tmp_path / "che-do.npe"
    seal_file(lab, path, sample(70_000), pb.LEVEL_MAT)
    path.chmod(0o640)
    original_body = body(path)
    rotated = lab.cli("custodian", "keys", "rotate", "--level", "mat")
    assert rotated.returncode == 0, rotated.stderr

    result = lab.cli("custodian", "rewrap", str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert path.stat().st_mode & 0o777 == 0o640
    assert body(path) == original_body


def test_recover_without_configuration_exits_3(lab: KeyLab, tmp_path: Path) -> None:
    share = tmp_path / "share.txt"
    share.write_text("ab" * 16 + "\n", encoding="ascii")

    result = lab.cli("custodian", "recover", "start", "--reason", "thử", "--share-file", str(share))

    assert result.returncode == 3
    assert "[recovery]" in result.stderr


def test_key_change_and_rewrap_audited(lab: KeyLab, tmp_path: Path) -> None:
    path = tmp_path / "kiem-toan.npe"
    seal_file(lab, path, sample(3000), pb.LEVEL_MAT)
    offset = log_size(lab.env)

    rotated = lab.cli("custodian", "keys", "rotate", "--level", "mat", "--reason", "Kiểm tra nhật ký")
    rewrapped = lab.cli("operator", "rewrap", str(path))

    assert rotated.returncode == 0, rotated.stderr
    assert rewrapped.returncode == 0, rewrapped.stderr
    records = records_after(lab.env, offset)
    [change] = [record for record in records if record["operation"] == "KeyService/ProposeKeyChange"]
    assert change["decision"] == "allowed"
    assert change["identity"] == "custodian"
    assert change["facts"]["operation"] == "rotate"
    assert change["facts"]["level"] == "mat"
    rewraps = [record for record in records if record["operation"] == "KeyService/Rewrap"]
    # One call returns the new header, the confirming call records the move.
    assert [record["decision"] for record in rewraps] == ["allowed", "allowed"]
    assert rewraps[-1]["identity"] == "operator"
    assert rewraps[-1]["facts"]["recorded"] == 1
    assert rewraps[-1]["facts"]["to_version"] == slots(path)[0][1]
