"""Fuzz the gRPC request handlers of a real niemphongd with raw request bytes.

The harness starts the daemon in this process on a throwaway SoftHSM2 token
made by ``niemphong dev init``, and sends each input over the unix socket
with mutual TLS as one of the development identities. The input picks the
RPC and the identity in its first two bytes; the rest is the serialized
request, or for a client-streaming RPC, up to eight messages separated by
``SEPARATOR``.

A call may succeed or fail with a documented reason code (docs/api.md)
other than INTERNAL. gRPC itself answers INTERNAL with the detail
"Exception deserializing request!" for bytes that are no valid protobuf
message; that is allowed too. Anything else, an INTERNAL reason from a
handler above all, is a finding.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc  # noqa: E402
from google.rpc import error_details_pb2  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

from fuzz_envelope_header import sample_envelope  # noqa: E402
from harness import fuzz, instrumented_imports  # noqa: E402

with instrumented_imports():
    from niemphong.daemon.config import load_config
    from niemphong.daemon.errors import REASON_CODES
    from niemphong.daemon.server import Daemon
    import niemphong.v1
    from niemphong.clients.devpki import DEFAULT_IDENTITIES
    from niemphong.v1 import niemphong_pb2 as pb

NAME = "rpc_handlers"
SEPARATOR = b"\x00\xfe\x00"
IDENTITIES = tuple(DEFAULT_IDENTITIES)


def _api_methods() -> list:  # type: ignore[type-arg]
    """Every method of every service in every proto module of niemphong.v1."""
    methods = []
    for module_info in sorted(pkgutil.iter_modules(niemphong.v1.__path__), key=lambda info: info.name):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"niemphong.v1.{module_info.name}")
            methods += [method for service in module.DESCRIPTOR.services_by_name.values() for method in service.methods]
    return methods


METHODS = _api_methods()
GRPC_DESERIALIZE_FAILURE = "Exception deserializing request!"
MESSAGE_LIMIT = 1024 * 1024 + 64 * 1024


class Target:
    """A niemphongd serving in this process, and one channel per identity."""

    def __init__(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="fuzz-rpc-")) / "env"
        niemphong = Path(sys.executable).parent / "niemphong"
        subprocess.run([str(niemphong), "dev", "init", str(root)], check=True, capture_output=True, timeout=300)
        with (root / "niemphongd.toml").open("rb") as handle:
            self.socket = tomllib.load(handle)["server"]["unix_socket"]
        # Refusals are logged at warning level; thousands of them per second
        # would only slow the fuzzer down.
        logging.basicConfig(level=logging.CRITICAL)
        self.daemon = Daemon(load_config(root / "niemphongd.toml"))
        self.daemon.start()
        self.channels = {name: self._channel(root / "identities" / name) for name in IDENTITIES}

    def _channel(self, identity: Path) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(identity / "ca.pem").read_bytes(),
            private_key=(identity / "key.pem").read_bytes(),
            certificate_chain=(identity / "cert.pem").read_bytes(),
        )
        return grpc.secure_channel(f"unix:{self.socket}", credentials, options=[
            ("grpc.ssl_target_name_override", "niemphongd"),
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
        ])


_target: Target | None = None


def target() -> Target:
    global _target
    if _target is None:
        _target = Target()
    return _target


def call(channel: grpc.Channel, method_index: int, body: bytes) -> None:
    method = METHODS[method_index % len(METHODS)]
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.client_streaming:
        messages = body.split(SEPARATOR)[:8]
        if method.server_streaming:
            for _ in channel.stream_stream(path)(iter(messages), timeout=20):
                pass
        else:
            channel.stream_unary(path)(iter(messages), timeout=20)
    elif method.server_streaming:
        for _ in channel.unary_stream(path)(body, timeout=20):
            pass
    else:
        channel.unary_unary(path)(body, timeout=20)


def reason_of(error: grpc.RpcError) -> str | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return None


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    channel = target().channels[IDENTITIES[data[1] % len(IDENTITIES)]]
    try:
        call(channel, data[0], data[2:])
    except grpc.RpcError as error:
        reason = reason_of(error)
        if reason is None:
            assert error.code() == grpc.StatusCode.INTERNAL and error.details() == GRPC_DESERIALIZE_FAILURE, (
                f"{error.code()} without a reason code: {error.details()}"
            )
            return
        assert reason in REASON_CODES and reason != "INTERNAL", f"{error.code()} {reason}: {error.details()}"


def _index(service: str, name: str) -> int:
    return next(i for i, method in enumerate(METHODS)
                if method.containing_service.name == service and method.name == name)


def seeds() -> Iterator[bytes]:
    envelope_bytes, _ = sample_envelope()
    identity = {name: i for i, name in enumerate(IDENTITIES)}
    metadata = pb.SealRequest(metadata=pb.SealMetadata(level=pb.LEVEL_MAT, document=pb.DocumentMetadata(
        doc_number="12/UBND-VP", issued_on="2025-05-20", title="Báo cáo", source_name="scan.pdf")))
    yield bytes([_index("EnvelopeService", "Seal"), identity["scanner"]]) + SEPARATOR.join([
        metadata.SerializeToString(), pb.SealRequest(chunk=b"document bytes").SerializeToString(),
    ])
    yield bytes([_index("EnvelopeService", "Open"), identity["viewer"]]) + SEPARATOR.join([
        pb.OpenRequest(start=pb.OpenStart()).SerializeToString(),
        pb.OpenRequest(chunk=envelope_bytes).SerializeToString(),
    ])
    yield bytes([_index("EnvelopeService", "Inspect"), identity["auditor"]]) + pb.InspectRequest(
        envelope_head=envelope_bytes[:2048], envelope_bytes=len(envelope_bytes)).SerializeToString()
    yield bytes([_index("AccessService", "RequestAccess"), identity["viewer"]]) + pb.RequestAccessRequest(
        artefact_id="00" * 16, purpose="kiểm tra").SerializeToString()
    yield bytes([_index("AccessService", "Approve"), identity["approver-1"]]) + pb.ApproveRequest(
        request_id="ab" * 16).SerializeToString()
    yield bytes([_index("PolicyService", "Decide"), identity["scanner"]]) + pb.DecideRequest(documents=[
        pb.DocumentToDecide(row="1", level=pb.LEVEL_TOI_MAT, doc_number="1/X", issued_on="2001-01-01",
                            classification=pb.ClassificationFacts(basis="Điều 1 Quyết định 1722/QĐ-TTg")),
    ]).SerializeToString()
    yield bytes([_index("PolicyService", "RecordExtension"), identity["approver-1"]]) + pb.RecordExtensionRequest(
        artefact_id="00" * 16, ends_on="2040-01-01", decision="Quyết định 1", decided_on="2025-01-01",
    ).SerializeToString()


if __name__ == "__main__":
    target()
    fuzz(NAME, test_one_input, seeds)
