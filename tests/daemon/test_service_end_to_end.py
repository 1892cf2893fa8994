"""The daemon's API against a real SoftHSM2 token and a real niemphongd
process, over the unix socket and over TCP, both with mutual TLS."""

from __future__ import annotations

import hashlib
import os
import struct

import grpc
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from conftest import DaemonProcess, DevEnvironment, error_reason, grant_access, open_bytes, seal_bytes
from niemphong.daemon import envelope
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

SEGMENT = envelope.DEFAULT_SEGMENT_SIZE


def sample(size: int) -> bytes:
    # Distinctive and incompressible enough that a leak would be found by search.
    block = b"BMNN-PLAINTEXT-MARKER:" + os.urandom(42)
    return (block * (size // len(block) + 1))[:size]


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as excinfo:
        call(*args, **kwargs)
    return excinfo.value


def test_seal_open_round_trip(daemon: DaemonProcess, dev_env: DevEnvironment, transport: str) -> None:
    data = sample(3 * 1024 * 1024 + 17)
    sealed, summary = seal_bytes(dev_env, data, transport=transport)

    grant_access(dev_env, summary.artefact_id, ["approver-1"], transport=transport)
    opened = open_bytes(dev_env, sealed, transport=transport)

    assert opened == data
    assert summary.plaintext_bytes == len(data)
    assert summary.envelope_bytes == len(sealed)
    assert summary.key.key_id == "niemphong-mat"
    assert summary.key.wrap_algorithm == "AES-KWP"


def test_seal_empty_document_round_trip(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    sealed, summary = seal_bytes(dev_env, b"")
    grant_access(dev_env, summary.artefact_id, ["approver-1"])

    assert open_bytes(dev_env, sealed) == b""


def test_envelope_contains_no_plaintext(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    data = sample(200_000)
    sealed, _ = seal_bytes(dev_env, data)

    assert b"BMNN-PLAINTEXT-MARKER" not in sealed
    assert data[:64] not in sealed


def test_envelope_contains_no_data_key(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    from pkcs11 import Attribute, ObjectClass

    from niemphong.daemon.config import load_config, read_pin
    from niemphong.daemon.hsm import Pkcs11Token

    sealed, _ = seal_bytes(dev_env, sample(10_000))
    slot = envelope.parse_header(sealed).slots[0]
    config = load_config(dev_env.root / "niemphongd.toml")
    token = Pkcs11Token(config.token, read_pin(config.token))
    try:
        data_key = token.unwrap_data_key(slot)
        with token.session() as session:
            kek = session.get_key(object_class=ObjectClass.SECRET_KEY, label=f"{slot.key_id}/v{slot.key_version}")
            assert kek[Attribute.SENSITIVE]
            assert not kek[Attribute.EXTRACTABLE]
            assert not kek[Attribute.ENCRYPT]
            assert not kek[Attribute.DECRYPT]
    finally:
        token.close()

    assert len(data_key) == 32
    assert data_key not in sealed


def test_toi_mat_needs_two_approvals(daemon: DaemonProcess, dev_env: DevEnvironment, transport: str) -> None:
    data = sample(70_000)
    sealed, summary = seal_bytes(dev_env, data, level=pb.LEVEL_TOI_MAT, transport=transport)
    assert summary.key.key_id == "niemphong-toi-mat"

    request_id = grant_access(dev_env, summary.artefact_id, ["approver-1"], transport=transport)
    error = rpc_error(open_bytes, dev_env, sealed, transport=transport)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "NOT_APPROVED"

    with dev_env.channel("approver-2", transport) as channel:
        approved = pb_grpc.AccessServiceStub(channel).Approve(pb.ApproveRequest(request_id=request_id))
    assert approved.state == pb.REQUEST_STATE_APPROVED
    assert open_bytes(dev_env, sealed, transport=transport) == data


def test_tuyet_mat_refused(daemon: DaemonProcess, dev_env: DevEnvironment, transport: str) -> None:
    error = rpc_error(seal_bytes, dev_env, b"x" * 100, level=pb.LEVEL_TUYET_MAT, transport=transport)

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(error) == "LEVEL_NEVER_DIGITIZED"


def test_seal_level_missing_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    error = rpc_error(seal_bytes, dev_env, b"x", level=pb.LEVEL_UNSPECIFIED)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "LEVEL_MISSING"


@pytest.mark.parametrize("issued_on", ["2025-02-30", "20/05/2025", "", "2025-W01-1", "9999-12-31"])
def test_seal_bad_issue_date_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, issued_on: str) -> None:
    error = rpc_error(seal_bytes, dev_env, b"x", issued_on=issued_on)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "INVALID_FIELD"


def test_seal_doc_number_too_long_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    error = rpc_error(seal_bytes, dev_env, b"x", doc_number="9" * 129)

    assert error_reason(error) == "FIELD_TOO_LONG"


def test_seal_nfd_metadata_stored_nfc(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    import unicodedata

    nfd = unicodedata.normalize("NFD", "07/GĐN-Tối")
    sealed, _ = seal_bytes(dev_env, b"abc", doc_number=nfd, title=unicodedata.normalize("NFD", "Giấy đề nghị"))

    header = envelope.parse_header(sealed)
    assert header.metadata["doc_number"] == unicodedata.normalize("NFC", nfd)
    assert header.metadata["title"] == "Giấy đề nghị"


@pytest.mark.parametrize("identity", ["viewer", "approver-1", "custodian", "auditor", "operator"])
def test_seal_by_non_scanner_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, identity: str) -> None:
    error = rpc_error(seal_bytes, dev_env, b"x", identity=identity)

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "ROLE_REQUIRED"


@pytest.mark.parametrize("identity", ["scanner", "approver-1", "custodian", "auditor", "operator"])
def test_open_by_non_viewer_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, identity: str) -> None:
    sealed, summary = seal_bytes(dev_env, b"abc")
    grant_access(dev_env, summary.artefact_id, ["approver-1"])

    error = rpc_error(open_bytes, dev_env, sealed, identity=identity)

    assert error_reason(error) == "ROLE_REQUIRED"


@pytest.mark.parametrize("identity", ["viewer", "scanner", "custodian"])
def test_approve_by_non_approver_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, identity: str) -> None:
    _, summary = seal_bytes(dev_env, b"abc")
    with dev_env.channel("viewer") as channel:
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="xem"))

    with dev_env.channel(identity) as channel:
        error = rpc_error(pb_grpc.AccessServiceStub(channel).Approve, pb.ApproveRequest(request_id=request.request_id))

    assert error_reason(error) == "ROLE_REQUIRED"


def test_request_by_non_viewer_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary = seal_bytes(dev_env, b"abc")

    with dev_env.channel("approver-1") as channel:
        error = rpc_error(pb_grpc.AccessServiceStub(channel).RequestAccess,
                          pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="xem"))

    assert error_reason(error) == "ROLE_REQUIRED"


def test_open_without_request_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, transport: str) -> None:
    sealed, _ = seal_bytes(dev_env, b"secret", transport=transport)

    error = rpc_error(open_bytes, dev_env, sealed, transport=transport)

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "NOT_APPROVED"


def test_open_other_viewers_grant_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, transport: str) -> None:
    sealed, summary = seal_bytes(dev_env, b"secret", transport=transport)
    grant_access(dev_env, summary.artefact_id, ["approver-1"], viewer="viewer", transport=transport)

    error = rpc_error(open_bytes, dev_env, sealed, identity="viewer-2", transport=transport)

    assert error_reason(error) == "NOT_APPROVED"


def test_open_after_denial_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    sealed, summary = seal_bytes(dev_env, b"secret")
    with dev_env.channel("viewer") as channel:
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="xem"))
    with dev_env.channel("approver-1") as channel:
        denied = pb_grpc.AccessServiceStub(channel).Deny(pb.DenyRequest(request_id=request.request_id, reason="không"))
    assert denied.state == pb.REQUEST_STATE_DENIED

    error = rpc_error(open_bytes, dev_env, sealed)

    assert error_reason(error) == "NOT_APPROVED"


def test_open_used_up_grant_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    # Tối mật grants allow one open in the development configuration.
    sealed, summary = seal_bytes(dev_env, b"secret", level=pb.LEVEL_TOI_MAT)
    grant_access(dev_env, summary.artefact_id, ["approver-1", "approver-2"])
    assert open_bytes(dev_env, sealed) == b"secret"

    error = rpc_error(open_bytes, dev_env, sealed)

    assert error_reason(error) == "NOT_APPROVED"


def test_approve_own_request_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    lead = "lead"
    if not dev_env.identity(lead).exists():
        dev_env.add_identity(lead, "viewer,approver")
    _, summary = seal_bytes(dev_env, b"secret")
    with dev_env.channel(lead) as channel:
        stub = pb_grpc.AccessServiceStub(channel)
        request = stub.RequestAccess(pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="xem"))
        error = rpc_error(stub.Approve, pb.ApproveRequest(request_id=request.request_id))

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error) == "SELF_APPROVAL"


def test_approve_twice_same_approver_counts_once(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    sealed, summary = seal_bytes(dev_env, b"secret", level=pb.LEVEL_TOI_MAT)
    request_id = grant_access(dev_env, summary.artefact_id, ["approver-1"])

    with dev_env.channel("approver-1") as channel:
        stub = pb_grpc.AccessServiceStub(channel)
        error = rpc_error(stub.Approve, pb.ApproveRequest(request_id=request_id))
        shown = stub.GetRequest(pb.GetRequestRequest(request_id=request_id))

    assert error_reason(error) == "ALREADY_APPROVED"
    assert shown.state == pb.REQUEST_STATE_PENDING
    assert [a.approver for a in shown.approvals] == ["approver-1"]
    assert error_reason(rpc_error(open_bytes, dev_env, sealed)) == "NOT_APPROVED"


def test_list_pending_shows_request(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    _, summary = seal_bytes(dev_env, b"secret")
    with dev_env.channel("viewer-2") as channel:
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=summary.artefact_id, purpose="đối chiếu"))

    with dev_env.channel("approver-2") as channel:
        pending = pb_grpc.AccessServiceStub(channel).ListPending(pb.ListPendingRequest())
    with dev_env.channel("viewer") as channel:
        others = pb_grpc.AccessServiceStub(channel).ListPending(pb.ListPendingRequest())

    assert request.request_id in {r.request_id for r in pending.requests}
    assert request.request_id not in {r.request_id for r in others.requests}


def test_inspect_reports_header_without_key(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    data = sample(150_000)
    sealed, summary = seal_bytes(dev_env, data, level=pb.LEVEL_TOI_MAT, doc_number="12/BB-TCT")

    with dev_env.channel("auditor") as channel:
        facts = pb_grpc.EnvelopeServiceStub(channel).Inspect(
            pb.InspectRequest(envelope_head=sealed[:80 * 1024], envelope_bytes=len(sealed)))

    assert facts.artefact_id == summary.artefact_id
    assert facts.level == pb.LEVEL_TOI_MAT
    assert facts.document.doc_number == "12/BB-TCT"
    assert facts.keys[0].version == 1
    assert facts.plaintext_bytes == len(data)
    assert facts.registered


# Tampering -------------------------------------------------------------------

@pytest.fixture
def granted_envelope(daemon: DaemonProcess, dev_env: DevEnvironment) -> tuple[bytes, bytes]:
    """A three-segment Mật envelope whose viewer holds a grant with opens to spare."""
    data = sample(2 * SEGMENT + 1000)
    sealed, summary = seal_bytes(dev_env, data)
    grant_access(dev_env, summary.artefact_id, ["approver-1"])
    return data, sealed


def header_length(sealed: bytes) -> int:
    return envelope.PREAMBLE_LEN + struct.unpack(">I", sealed[10:14])[0]


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1:]


def assert_integrity_failure(dev_env: DevEnvironment, tampered: bytes, data: bytes, good_segments: int = 0) -> None:
    received = bytearray()
    error = rpc_error(open_bytes, dev_env, tampered, received=received)
    assert error.code() == grpc.StatusCode.DATA_LOSS
    assert error_reason(error) == "INTEGRITY_FAILURE"
    assert len(received) <= good_segments * SEGMENT
    assert bytes(received) == data[:len(received)]


@pytest.mark.parametrize("where", ["magic", "version", "header_length", "metadata", "wrapped_key", "header_tag"])
def test_open_flipped_header_byte_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes], where: str) -> None:
    data, sealed = granted_envelope
    end = header_length(sealed)
    offsets = {"magic": 0, "version": 9, "header_length": 13, "metadata": end - 200,
               "wrapped_key": end - 40, "header_tag": end - 1}

    assert_integrity_failure(dev_env, flip(sealed, offsets[where]), data)


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_open_flipped_body_byte_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes], segment: int) -> None:
    data, sealed = granted_envelope
    offset = header_length(sealed) + segment * (SEGMENT + 16) + 5

    assert_integrity_failure(dev_env, flip(sealed, offset), data, good_segments=segment)


@pytest.mark.parametrize("cut", ["in_header", "at_segment_boundary", "in_last_segment", "last_byte"])
def test_open_truncated_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes], cut: str) -> None:
    data, sealed = granted_envelope
    start = header_length(sealed)
    lengths = {"in_header": start - 10, "at_segment_boundary": start + 2 * (SEGMENT + 16),
               "in_last_segment": len(sealed) - 500, "last_byte": len(sealed) - 1}

    assert_integrity_failure(dev_env, sealed[:lengths[cut]], data, good_segments=2)


def test_open_appended_bytes_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    data, sealed = granted_envelope

    assert_integrity_failure(dev_env, sealed + b"\x00", data, good_segments=2)


def test_open_reordered_segments_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    data, sealed = granted_envelope
    start, size = header_length(sealed), SEGMENT + 16
    first, second = sealed[start:start + size], sealed[start + size:start + 2 * size]
    tampered = sealed[:start] + second + first + sealed[start + 2 * size:]

    assert_integrity_failure(dev_env, tampered, data)


def test_open_duplicated_segment_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    data, sealed = granted_envelope
    start, size = header_length(sealed), SEGMENT + 16
    tampered = sealed[:start + size] + sealed[start:start + size] + sealed[start + size:]

    assert_integrity_failure(dev_env, tampered, data, good_segments=1)


def test_open_dropped_segment_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    data, sealed = granted_envelope
    start, size = header_length(sealed), SEGMENT + 16
    tampered = sealed[:start + size] + sealed[start + 2 * size:]

    assert_integrity_failure(dev_env, tampered, data, good_segments=1)


def test_open_header_from_other_envelope_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    data, sealed = granted_envelope
    other, _ = seal_bytes(dev_env, sample(len(data)))
    spliced = sealed[:header_length(sealed)] + other[header_length(other):]

    assert_integrity_failure(dev_env, spliced, data)


def test_open_data_key_under_wrong_kek_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    # Same artefact and grant, but the data key wrapped by a key that is not
    # the token's: the token's unwrap must fail before any segment is read.
    data, sealed = granted_envelope
    header = envelope.parse_header(sealed)
    data_key = os.urandom(32)
    wrapped = aes_key_wrap_with_padding(os.urandom(32), data_key)
    slot = envelope.KeySlot(header.slots[0].key_id, header.slots[0].key_version, "AES-KWP", wrapped)
    sealer = envelope.Sealer(data_key, artefact_id=header.artefact_id, level=header.level,
                             metadata=header.metadata, slots=[slot], sealed_at=header.sealed_at)
    forged = sealer.header_bytes + sealer.update(data) + sealer.finalize()

    assert_integrity_failure(dev_env, forged, data)


def test_open_not_an_envelope_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    data, _ = granted_envelope

    assert_integrity_failure(dev_env, b"%PDF-1.4 not an envelope" * 10, data)


def test_failed_open_keeps_grant(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    # A damaged header is rejected before the open is counted.
    data, sealed = granted_envelope
    for _ in range(4):
        assert_integrity_failure(dev_env, flip(sealed, 20), data)

    assert open_bytes(dev_env, sealed) == data


def test_unauthenticated_client_rejected(daemon: DaemonProcess, dev_env: DevEnvironment, transport: str) -> None:
    identity = dev_env.identity("viewer")
    credentials = grpc.ssl_channel_credentials(root_certificates=(identity / "ca.pem").read_bytes())
    with grpc.secure_channel(dev_env.target(transport), credentials,
                             options=[("grpc.ssl_target_name_override", "niemphongd")]) as channel:
        error = rpc_error(pb_grpc.AccessServiceStub(channel).ListPending, pb.ListPendingRequest(), timeout=10)

    assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


def test_open_slot_naming_other_key_version_rejected(dev_env: DevEnvironment, granted_envelope: tuple[bytes, bytes]) -> None:
    # The key version is read before the header is authenticated; naming a
    # version the token lacks is tampering, not a missing key.
    data, sealed = granted_envelope
    at = sealed.index(b"niemphong-mat", envelope.PREAMBLE_LEN) + len(b"niemphong-mat")
    tampered = sealed[:at] + struct.pack(">I", 7) + sealed[at + 4:]

    assert_integrity_failure(dev_env, tampered, data)


def test_second_daemon_on_same_config_refused(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    import subprocess

    from conftest import BIN

    second = subprocess.run(
        [str(BIN / "niemphongd"), "--config", str(dev_env.root / "niemphongd.toml")],
        capture_output=True, text=True, timeout=60,
    )

    assert second.returncode != 0
    # The state database on SQLite, the audit log on PostgreSQL, which daemons share.
    assert "another niemphongd already uses" in second.stderr
    assert daemon.serving()


def test_seal_response_chunks_whole(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    chunk_bytes = dev_env.config["server"]["chunk_bytes"]
    data = os.urandom(2 * chunk_bytes + 1000)
    requests = [pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
        doc_number="7/UBND", issued_on="2025-05-20", source_name="scan.pdf")))]
    requests += [pb.SealRequest(chunk=data[start:start + chunk_bytes]) for start in range(0, len(data), chunk_bytes)]

    with dev_env.channel("scanner") as channel:
        responses = list(pb_grpc.EnvelopeServiceStub(channel).Seal(iter(requests), timeout=60))

    sizes = [len(response.chunk) for response in responses if response.WhichOneof("payload") == "chunk"]
    header, *body = sizes
    # The header goes first on its own. Segment tags make the body a little
    # longer than the plaintext; it still goes out in the fewest messages.
    assert header < 4096
    assert body[:-1] == [chunk_bytes] * (len(body) - 1)
    assert len(body) == 3
    assert sum(sizes) == responses[-1].summary.envelope_bytes


SMALL_METADATA = pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
    doc_number="8/UBND", issued_on="2025-05-20", source_name="scan.pdf"))


def seal_small(env: DevEnvironment, document: bytes, metadata: pb.SealMetadata = SMALL_METADATA,
               identity: str = "scanner") -> pb.SealSmallResponse:
    with env.channel(identity) as channel:
        return pb_grpc.EnvelopeServiceStub(channel).SealSmall(
            pb.SealSmallRequest(metadata=metadata, document=document), timeout=30)


def test_seal_small_opens_with_stream(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    data = os.urandom(4096)

    response = seal_small(dev_env, data)
    sealed = response.sealed
    grant_access(dev_env, sealed.summary.artefact_id, ["approver-1"])

    assert response.WhichOneof("result") == "sealed"
    assert sealed.summary.envelope_bytes == len(sealed.envelope)
    assert sealed.summary.envelope_sha256 == hashlib.sha256(sealed.envelope).hexdigest()
    assert sealed.summary.decision.outcome == pb.DECISION_OUTCOME_SEAL
    assert open_bytes(dev_env, sealed.envelope) == data


def test_seal_small_empty_document(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    response = seal_small(dev_env, b"")
    grant_access(dev_env, response.sealed.summary.artefact_id, ["approver-1"])

    assert response.sealed.summary.plaintext_bytes == 0
    assert open_bytes(dev_env, response.sealed.envelope) == b""


def test_seal_small_over_chunk_bound_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    chunk_bytes = dev_env.config["server"]["chunk_bytes"]

    error = rpc_error(seal_small, dev_env, b"x" * (chunk_bytes + 1))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(error) == "FIELD_TOO_LONG"


def test_seal_small_not_secret_returns_record(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    metadata = pb.SealMetadata(
        level=pb.LEVEL_MAT, document=SMALL_METADATA.document,
        classification=pb.ClassificationFacts(declassification=pb.Declassification(
            decision="Quyết định số 3/QĐ-UBND", decided_on="2026-01-15",
        )),
    )

    response = seal_small(dev_env, b"scan", metadata)

    assert response.WhichOneof("result") == "not_sealed"
    assert response.not_sealed.decision.rule == "e"


def test_seal_small_by_viewer_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    error = rpc_error(seal_small, dev_env, b"scan", identity="viewer")

    assert error_reason(error) == "ROLE_REQUIRED"


def test_seal_small_tuyet_mat_rejected(daemon: DaemonProcess, dev_env: DevEnvironment) -> None:
    metadata = pb.SealMetadata(level=pb.LEVEL_TUYET_MAT, document=SMALL_METADATA.document)

    error = rpc_error(seal_small, dev_env, b"scan", metadata)

    assert error_reason(error) == "LEVEL_NEVER_DIGITIZED"
