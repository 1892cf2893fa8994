"""A fake niemphongd and the fixtures that run it, for the client tests.

The fake is an in-process gRPC server implementing just enough of the API to
drive the client commands, and sending the rich errors (google.rpc.Status
with one ErrorInfo) that the real daemon sends. It listens on a dev folder's
Unix socket and on loopback TCP with mutual TLS, using the PKI that
`niemphong dev init` writes. It never touches a token, and its "envelope" is
the plaintext behind a fixed prefix.

Test modules import the fixtures from here by name. This folder has no
conftest.py because tests elsewhere import the suite's top-level conftest
with `from conftest import ...`, and a second conftest module would shadow it.
"""

from __future__ import annotations

import hashlib
import unicodedata
import shutil
import tempfile
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from niemphong.clients.devinit import DevLayout, prepare_dev_folder
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

FAKE_MODULE = "/nonexistent/libsofthsm2.so"
# The real envelope magic, which the client checks, then a mark of the fake.
ENVELOPE_MAGIC = b"\x89NPHONG\nFAKE-ENVELOPE\n"
TAMPER_MARK = b"TAMPERED"
ARTEFACT_ID = "0123456789abcdef0123456789abcdef"
REQUEST_ID = "fedcba9876543210fedcba9876543210"
SELF_REQUEST_ID = "b" * 32
MISSING_REQUEST_ID = "c" * 32
SEALED_AT = 1747193412  # 2025-05-14 03:30:12 UTC, 10:30:12 in Vietnam


def abort_with_reason(
    context: grpc.ServicerContext, code: grpc.StatusCode, reason: str, message: str, **metadata: str
) -> None:
    """Abort the call the way niemphongd does: a google.rpc.Status with one ErrorInfo."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain="niemphong.v1", metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))


@dataclass
class FakeState:
    """What the fake daemon received, and switches that make it misbehave."""

    seal_metadata: list[pb.SealMetadata] = field(default_factory=list)
    seal_chunk_sizes: list[int] = field(default_factory=list)
    # The document sizes of SealSmall calls.
    seal_small_sizes: list[int] = field(default_factory=list)
    open_starts: list[pb.OpenStart] = field(default_factory=list)
    inspect_requests: list[pb.InspectRequest] = field(default_factory=list)
    access_requests: list[pb.RequestAccessRequest] = field(default_factory=list)
    deny_requests: list[pb.DenyRequest] = field(default_factory=list)
    wrong_sha256: bool = False
    deny_open: bool = False
    # Stop the whole server after the first plaintext chunk of an Open, as if niemphongd died.
    crash_during_open: bool = False
    registry_mismatch: bool = False
    # The title Inspect reports, as a forged header could carry it.
    inspect_title: str = "Kế hoạch bảo vệ bí mật nhà nước năm 2025"
    # What ListPending and GetRequest return; None means the sample request.
    pending: list[pb.AccessRequest] | None = None
    pending_truncated: bool = False
    requests_by_id: dict[str, pb.AccessRequest] = field(default_factory=dict)
    # The server itself, for crash_during_open.
    server: grpc.Server | None = None
    list_pending_calls: int = 0


def sample_request(state: int = pb.REQUEST_STATE_PENDING) -> pb.AccessRequest:
    return pb.AccessRequest(
        request_id=REQUEST_ID,
        artefact_id=ARTEFACT_ID,
        level=pb.LEVEL_TOI_MAT,
        doc_number="1479/UBND-NC",
        requester="viewer",
        purpose="Phục vụ thanh tra \x1b[31mđột xuất",
        state=state,  # type: ignore[arg-type]
        approvals_required=2,
        created_at=SEALED_AT,
    )


class FakeEnvelopeService(pb_grpc.EnvelopeServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.state = state

    def _check_seal_metadata(self, metadata: pb.SealMetadata, context: grpc.ServicerContext) -> None:
        self.state.seal_metadata.append(metadata)
        if metadata.level == pb.LEVEL_TUYET_MAT:
            abort_with_reason(
                context, grpc.StatusCode.FAILED_PRECONDITION, "LEVEL_NEVER_DIGITIZED", "Tuyệt mật is never digitized"
            )
        if metadata.level == pb.LEVEL_UNSPECIFIED:
            abort_with_reason(context, grpc.StatusCode.INVALID_ARGUMENT, "LEVEL_MISSING", "level missing")
        if any(unicodedata.category(char) in ("Cc", "Cf") for char in metadata.document.source_name):
            abort_with_reason(
                context, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "bad source_name", field="source_name"
            )

    def _seal_summary(self, metadata: pb.SealMetadata, plaintext_bytes: int, envelope: bytes) -> pb.SealSummary:
        digest = hashlib.sha256(envelope).hexdigest()
        if self.state.wrong_sha256:
            digest = "0" * 64
        return pb.SealSummary(
            artefact_id=ARTEFACT_ID,
            level=metadata.level,
            key=pb.KeyRef(key_id="niemphong-mat", version=1, wrap_algorithm="AES-KWP"),
            plaintext_bytes=plaintext_bytes,
            envelope_bytes=len(envelope),
            envelope_sha256=digest,
        )

    def Seal(self, request_iterator, context):  # type: ignore[no-untyped-def]
        first = next(request_iterator)
        metadata = first.metadata
        self._check_seal_metadata(metadata, context)

        plaintext = bytearray()
        for request in request_iterator:
            self.state.seal_chunk_sizes.append(len(request.chunk))
            plaintext += request.chunk
        envelope = ENVELOPE_MAGIC + bytes(plaintext)
        for offset in range(0, len(envelope), 1024 * 1024):
            yield pb.SealResponse(chunk=envelope[offset : offset + 1024 * 1024])
        yield pb.SealResponse(summary=self._seal_summary(metadata, len(plaintext), envelope))

    def SealSmall(self, request, context):  # type: ignore[no-untyped-def]
        self._check_seal_metadata(request.metadata, context)
        self.state.seal_small_sizes.append(len(request.document))
        envelope = ENVELOPE_MAGIC + request.document
        summary = self._seal_summary(request.metadata, len(request.document), envelope)
        return pb.SealSmallResponse(sealed=pb.Sealed(envelope=envelope, summary=summary))

    def Open(self, request_iterator, context):  # type: ignore[no-untyped-def]
        first = next(request_iterator)
        self.state.open_starts.append(first.start)
        if self.state.deny_open:
            abort_with_reason(context, grpc.StatusCode.PERMISSION_DENIED, "NOT_APPROVED", "no grant")

        envelope = b"".join(request.chunk for request in request_iterator)
        plaintext = envelope.removeprefix(ENVELOPE_MAGIC)
        if self.state.crash_during_open:
            yield pb.OpenResponse(chunk=plaintext[:1024])
            assert self.state.server is not None
            self.state.server.stop(grace=None).wait()
            return
        if TAMPER_MARK in plaintext:
            # Like the real daemon: plaintext before the damaged segment, then DATA_LOSS.
            yield pb.OpenResponse(chunk=plaintext[: plaintext.index(TAMPER_MARK)])
            abort_with_reason(context, grpc.StatusCode.DATA_LOSS, "INTEGRITY_FAILURE", "segment 1 failed")
        for offset in range(0, len(plaintext), 1024 * 1024):
            yield pb.OpenResponse(chunk=plaintext[offset : offset + 1024 * 1024])
        yield pb.OpenResponse(
            summary=pb.OpenSummary(artefact_id=ARTEFACT_ID, plaintext_bytes=len(plaintext), opens_remaining=2)
        )

    def Inspect(self, request, context):  # type: ignore[no-untyped-def]
        self.state.inspect_requests.append(request)
        return pb.InspectResponse(
            format_version=1,
            artefact_id=ARTEFACT_ID,
            level=pb.LEVEL_TOI_MAT,
            document=pb.DocumentMetadata(
                doc_number="1479/UBND-NC",
                issued_on="2025-05-14",
                title=self.state.inspect_title,
                source_name="cong-van.pdf",
            ),
            keys=[pb.KeyRef(key_id="niemphong-toi-mat", version=3, wrap_algorithm="AES-KWP")],
            segment_bytes=65536,
            header_bytes=512,
            plaintext_bytes=1234567,
            sealed_at=SEALED_AT,
            registered=True,
            registry_mismatch=self.state.registry_mismatch,
        )


class FakeAccessService(pb_grpc.AccessServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.state = state

    def RequestAccess(self, request, context):  # type: ignore[no-untyped-def]
        self.state.access_requests.append(request)
        answer = sample_request()
        answer.purpose = request.purpose
        return answer

    def Approve(self, request, context):  # type: ignore[no-untyped-def]
        if request.request_id == SELF_REQUEST_ID:
            abort_with_reason(context, grpc.StatusCode.PERMISSION_DENIED, "SELF_APPROVAL", "own request")
        answer = sample_request(pb.REQUEST_STATE_APPROVED)
        answer.approvals.add(approver="approver-1", approved_at=SEALED_AT + 60)
        answer.approvals.add(approver="approver-2", approved_at=SEALED_AT + 120)
        answer.grant.CopyFrom(pb.Grant(expires_at=SEALED_AT + 8 * 3600, opens_allowed=1, opens_used=0))
        return answer

    def Deny(self, request, context):  # type: ignore[no-untyped-def]
        self.state.deny_requests.append(request)
        answer = sample_request(pb.REQUEST_STATE_DENIED)
        answer.denied_by = "approver-1"
        answer.deny_reason = request.reason
        return answer

    def ListPending(self, request, context):  # type: ignore[no-untyped-def]
        self.state.list_pending_calls += 1
        requests = [sample_request()] if self.state.pending is None else self.state.pending
        return pb.ListPendingResponse(requests=requests, truncated=self.state.pending_truncated)

    def GetRequest(self, request, context):  # type: ignore[no-untyped-def]
        if request.request_id == MISSING_REQUEST_ID:
            abort_with_reason(context, grpc.StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND", "no such request")
        return self.state.requests_by_id.get(request.request_id) or sample_request()


@dataclass
class FakeDaemon:
    """A running fake daemon and what a client needs to reach it."""

    layout: DevLayout
    state: FakeState
    server_address: str
    tcp_address: str

    def environ(self, identity: str = "scanner", lang: str = "vi_VN.UTF-8") -> dict[str, str]:
        """Return client environment variables for ``identity``."""
        return {
            "NIEMPHONG_SERVER": self.server_address,
            "NIEMPHONG_IDENTITY": str(self.layout.identity(identity)),
            "LANG": lang,
        }


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path, so that Unix socket paths inside it fit."""
    folder = Path(tempfile.mkdtemp(prefix="np-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dev_layout(short_tmp: Path) -> DevLayout:
    """A dev folder written by prepare_dev_folder, without a provisioned token."""
    return prepare_dev_folder(short_tmp / "dev", module_path=FAKE_MODULE)


@pytest.fixture
def fake_daemon(dev_layout: DevLayout) -> Iterator[FakeDaemon]:
    """Run the fake daemon on the dev folder's Unix socket, with mTLS from its PKI."""
    state = FakeState()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_EnvelopeServiceServicer_to_server(FakeEnvelopeService(state), server)
    pb_grpc.add_AccessServiceServicer_to_server(FakeAccessService(state), server)
    credentials = grpc.ssl_server_credentials(
        [((dev_layout.pki / "server.key").read_bytes(), (dev_layout.pki / "server.pem").read_bytes())],
        root_certificates=(dev_layout.pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    address = f"unix:{dev_layout.socket}"
    server.add_secure_port(address, credentials)
    tcp_port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    state.server = server
    yield FakeDaemon(layout=dev_layout, state=state, server_address=address, tcp_address=f"127.0.0.1:{tcp_port}")
    server.stop(grace=None)
