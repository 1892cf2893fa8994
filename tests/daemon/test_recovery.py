"""Recovery end to end: the key ceremony makes a recovery token, envelopes carry
a recovery slot, the working token is destroyed, and two custodians recover
every envelope onto a new working token. Real daemon, real SoftHSM2 tokens,
the niemphong command line."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from conftest import error_reason, grant_access, open_bytes
from key_helpers import KeyLab, body, make_lab, open_file, run_niemphongd, sample, seal_file, slots
from niemphong.daemon import envelope
from niemphong.daemon.recovery_keys import load_public_key, oaep_padding
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import keys_pb2_grpc as kpb_grpc
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

MAT, TOI_MAT = pb.LEVEL_MAT, pb.LEVEL_TOI_MAT
RECOVERY_LABEL = "niemphong-recovery"


def run_ceremony(lab: KeyLab) -> Path:
    """Run the key ceremony for the lab's configuration and append its output to it; return the output folder."""
    out = lab.env.root / "recovery"
    config = lab.env.root / "niemphongd.toml"
    result = run_niemphongd("recovery-init", "--config", str(config), "--out", str(out), "--label", RECOVERY_LABEL,
                            "--init-softhsm")
    assert result.returncode == 0, result.stderr
    with config.open("a", encoding="utf-8") as handle:
        handle.write("\n" + (out / "recovery.toml").read_text(encoding="utf-8"))
    return out


def destroy_working_token(lab: KeyLab) -> None:
    """Delete the working token from SoftHSM2 and forget its PINs, as if it were lost."""
    softhsm = {"SOFTHSM2_CONF": str(lab.env.root / "softhsm2.conf")}
    deleted = subprocess.run(
        ["softhsm2-util", "--delete-token", "--token", "niemphong-dev"],
        env={**os.environ, **softhsm}, capture_output=True, text=True, timeout=60,
    )
    assert deleted.returncode == 0, deleted.stderr
    slots_left = subprocess.run(["softhsm2-util", "--show-slots"], env={**os.environ, **softhsm},
                                capture_output=True, text=True, timeout=60)
    assert "niemphong-dev" not in slots_left.stdout
    assert RECOVERY_LABEL in slots_left.stdout
    for name in ("token.pin", "so.pin"):
        (lab.env.root / "secrets" / name).unlink()


def provision_and_start(lab: KeyLab, root: Path) -> None:
    """Provision a new working token with the next key versions, then start the daemon."""
    provisioned = run_niemphongd("provision", "--config", str(root / "niemphongd.toml"), "--init-softhsm")
    assert provisioned.returncode == 0, provisioned.stderr
    assert "niemphong-mat/v2" in provisioned.stderr
    lab.daemon.start()


def test_recovery_after_token_loss_restores_every_envelope(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("recovery")
    lab = make_lab(root, tmp_path_factory.mktemp("logs") / "niemphongd.log")
    archive = root / "archive"
    documents: dict[Path, tuple[bytes, str, int]] = {}

    def seal(relative: str, data: bytes, level: int) -> None:
        path = archive / relative
        documents[path] = (data, seal_file(lab, path, data, level).artefact_id, level)

    # Sealed before the level had a recovery key.
    lab.daemon.start()
    seal("2023/truoc-khi-co-khoa-khoi-phuc.npe", sample(90_000), MAT)
    assert lab.daemon.stop() == 0, lab.daemon.log()

    shares = run_ceremony(lab)
    lab.daemon.start()
    seal("2024/ke-hoach.npe", sample(2 * 65536 + 77), MAT)
    seal("2024/bien-ban.npe", sample(40_000), TOI_MAT)
    seal("2025/to-trinh.npe", b"", TOI_MAT)
    seal("2025/cong-van.npe", sample(1234), MAT)
    assert slots(archive / "2024/bien-ban.npe") == [
        ("niemphong-toi-mat", 1, "AES-KWP"), ("niemphong-recovery-toi-mat", 1, "RSA-OAEP-SHA1"),
    ]

    # An ordinary rewrap gives the old envelope its recovery slot.
    rewrapped = lab.cli("custodian", "rewrap", str(archive), "--json")
    assert rewrapped.returncode == 0, rewrapped.stderr
    assert json.loads(rewrapped.stdout)["rewrapped"] == 1
    assert slots(archive / "2023/truoc-khi-co-khoa-khoi-phuc.npe")[1][0] == "niemphong-recovery-mat"
    bodies = {path: body(path) for path in documents}
    assert lab.daemon.stop() == 0, lab.daemon.log()

    # The working token is lost; a new one gets the next key versions. The
    # audit log's checkpoint key went with it, so the old log is set aside
    # and the daemon starts a new one.
    destroy_working_token(lab)
    audit_log = Path(lab.env.config["audit"]["path"])
    with pytest.raises(RuntimeError, match="does not verify with the token's key"):
        provision_and_start(lab, root)
    audit_log.rename(audit_log.with_name("audit-before-token-loss.jsonl"))
    lab.daemon.start()

    old = archive / "2024/ke-hoach.npe"
    request_id = grant_access(lab.env, documents[old][1], ["approver-1"])
    with pytest.raises(grpc.RpcError) as unavailable:
        open_bytes(lab.env, old.read_bytes(), request_id=request_id)
    assert error_reason(unavailable.value) == "KEY_UNAVAILABLE"
    without_session = lab.cli("custodian", "recover", "rewrap", str(archive))
    assert without_session.returncode == 3

    # Two custodians, each with one share, open the recovery token.
    started = lab.cli("custodian", "recover", "start", "--reason", "Token chính bị mất",
                      "--share-file", str(shares / "share-1.txt"))
    assert started.returncode == 0, started.stderr
    session_id = started.stdout.strip()
    confirmed = lab.cli("custodian-2", "recover", "confirm", session_id, "--share-file", str(shares / "share-2.txt"))
    assert confirmed.returncode == 0, confirmed.stderr

    # Opening through the recovery slot is an open like any other: it uses the grant.
    opened = root / "ke-hoach.pdf"
    recovered_open = lab.cli("viewer", "recover", "open", str(old), "--out", str(opened), "--request", request_id)
    assert recovered_open.returncode == 0, recovered_open.stderr
    assert opened.read_bytes() == documents[old][0]
    with lab.env.channel("viewer") as channel:
        grant = pb_grpc.AccessServiceStub(channel).GetRequest(pb.GetRequestRequest(request_id=request_id)).grant
    assert grant.opens_used == 1

    recovered = lab.cli("custodian", "recover", "rewrap", str(archive), "--json")
    assert recovered.returncode == 0, recovered.stderr
    report = json.loads(recovered.stdout)
    assert report["rewrapped"] == len(documents)
    assert report["failed"] == 0
    ended = lab.cli("custodian", "recover", "end")
    assert ended.returncode == 0, ended.stderr
    status = lab.cli("auditor", "recover", "status", "--json")
    assert json.loads(status.stdout)["state"] == "ended"

    # Every envelope now opens under the new token, its body untouched.
    for path, (data, artefact_id, level) in documents.items():
        key_id = "niemphong-mat" if level == MAT else "niemphong-toi-mat"
        assert slots(path)[0] == (key_id, 2, "AES-KWP"), path
        assert slots(path)[1][:2] == (key_id.replace("niemphong-", "niemphong-recovery-"), 1), path
        assert body(path) == bodies[path], path
        assert open_file(lab, path, artefact_id, level) == data, path

    # The lost version is needed by no artefact, so it can be retired and destroyed.
    for arguments in (("retire", "--for", "opening"), ("destroy",)):
        result = lab.cli("custodian", "keys", arguments[0], "--level", "mat", "--version", "1", *arguments[1:])
        assert result.returncode == 0, result.stderr
    assert lab.daemon.stop() == 0, lab.daemon.log()


# Refusals, on a daemon configured with a recovery key from the start --------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeyLab, Path]]:
    lab = make_lab(tmp_path_factory.mktemp("recovery-refusals"), tmp_path_factory.mktemp("logs") / "niemphongd.log")
    shares = run_ceremony(lab)
    lab.daemon.start()
    yield lab, shares
    assert lab.daemon.stop() == 0, lab.daemon.log()


@pytest.fixture
def active_session(lab: tuple[KeyLab, Path]) -> Iterator[str]:
    keylab, shares = lab
    started = keylab.cli("custodian", "recover", "start", "--reason", "Kiểm tra", "--share-file", str(shares / "share-1.txt"))
    assert started.returncode == 0, started.stderr
    session_id = started.stdout.strip()
    confirmed = keylab.cli("custodian-2", "recover", "confirm", session_id, "--share-file", str(shares / "share-2.txt"))
    assert confirmed.returncode == 0, confirmed.stderr
    yield session_id
    keylab.cli("custodian", "recover", "end", session_id)


def test_recover_confirm_by_starter_rejected(lab: tuple[KeyLab, Path]) -> None:
    keylab, shares = lab
    started = keylab.cli("custodian", "recover", "start", "--reason", "Kiểm tra", "--share-file", str(shares / "share-1.txt"))
    session_id = started.stdout.strip()

    result = keylab.cli("custodian", "recover", "confirm", session_id, "--share-file", str(shares / "share-2.txt"))
    keylab.cli("custodian", "recover", "end", session_id)

    assert result.returncode == 3
    assert "người quản lý khóa khác" in result.stderr


def test_recover_wrong_share_fails_login(lab: tuple[KeyLab, Path], tmp_path: Path) -> None:
    keylab, shares = lab
    wrong = tmp_path / "wrong-share.txt"
    wrong.write_text("0" * 32 + "\n", encoding="ascii")
    started = keylab.cli("custodian", "recover", "start", "--reason", "Kiểm tra", "--share-file", str(shares / "share-1.txt"))

    result = keylab.cli("custodian-2", "recover", "confirm", started.stdout.strip(), "--share-file", str(wrong))

    assert result.returncode == 4
    status = keylab.cli("custodian", "recover", "status", "--json")
    assert json.loads(status.stdout)["state"] == "failed"


def test_recover_share_not_hex_rejected_before_sending(lab: tuple[KeyLab, Path], tmp_path: Path) -> None:
    keylab, _ = lab
    bad = tmp_path / "share.txt"
    bad.write_text("mật-khẩu-bí-mật-không-phải-hex\n", encoding="utf-8")

    result = keylab.cli("custodian", "recover", "start", "--reason", "Kiểm tra", "--share-file", str(bad))

    assert result.returncode == 2
    assert "mật-khẩu-bí-mật" not in result.stderr + result.stdout


def test_recover_start_by_viewer_rejected(lab: tuple[KeyLab, Path]) -> None:
    keylab, shares = lab

    result = keylab.cli("viewer", "recover", "start", "--reason", "Kiểm tra", "--share-file", str(shares / "share-1.txt"))

    assert result.returncode == 4


def test_recover_open_without_grant_rejected(lab: tuple[KeyLab, Path], active_session: str, tmp_path: Path) -> None:
    keylab, _ = lab
    path = tmp_path / "chua-duoc-duyet.npe"
    seal_file(keylab, path, sample(500), MAT)

    result = keylab.cli("viewer", "recover", "open", str(path), "--out", str(tmp_path / "out.pdf"))

    assert result.returncode == 4
    assert not (tmp_path / "out.pdf").exists()


def forge_with_recovery_key(genuine: bytes, public_key_path: Path, data: bytes) -> bytes:
    """Build an envelope for a registered artefact with a new data key, encrypted to the public recovery key.

    Anyone holding the public key can do this; the registry's pinned header
    core is what tells it apart from the genuine envelope.
    """
    header = envelope.parse_header(genuine)
    data_key = os.urandom(32)
    recovery = header.slots[1]
    wrapped = load_public_key(public_key_path).encrypt(data_key, oaep_padding(recovery.wrap_algorithm))
    slot = envelope.KeySlot(recovery.key_id, recovery.key_version, recovery.wrap_algorithm, wrapped)
    sealer = envelope.Sealer(data_key, artefact_id=header.artefact_id, level=header.level,
                             metadata=header.metadata, slots=[slot], sealed_at=header.sealed_at)
    return sealer.header_bytes + sealer.update(data) + sealer.finalize()


def test_recover_forged_envelope_rejected(lab: tuple[KeyLab, Path], active_session: str, tmp_path: Path) -> None:
    keylab, shares = lab
    genuine = tmp_path / "that.npe"
    summary = seal_file(keylab, genuine, sample(3000), MAT)
    forged = forge_with_recovery_key(genuine.read_bytes(), shares / "niemphong-recovery-mat-v1.pem", b"GIA MAO")

    with keylab.env.channel("custodian") as channel:
        stub = kpb_grpc.RecoveryServiceStub(channel)
        accepted = stub.RecoverRewrap(kpb.RewrapRequest(header=envelope.parse_header(genuine.read_bytes()).header_bytes))
        with pytest.raises(grpc.RpcError) as refused:
            stub.RecoverRewrap(kpb.RewrapRequest(header=envelope.parse_header(forged).header_bytes))

    assert accepted.artefact_id == summary.artefact_id
    assert error_reason(refused.value) == "INTEGRITY_FAILURE"
    forged_path = tmp_path / "forged.npe"
    forged_path.write_bytes(forged)
    request_id = grant_access(keylab.env, summary.artefact_id, ["approver-1"])
    opened = keylab.cli("viewer", "recover", "open", str(forged_path), "--out", str(tmp_path / "gia.pdf"),
                        "--request", request_id)
    assert opened.returncode == 5
    assert not (tmp_path / "gia.pdf").exists()
