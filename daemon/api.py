"""The services of API v1, read from the generated descriptors.

Every .proto file of the niemphong.v1 package is listed in ``API_FILES``; a
test checks that no generated module is missing from it. The role table, the
audit trail and the health and reflection services take their list of
methods from here, so a new RPC is covered by all of them at once.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor

from niemphong.v1 import archive_pb2, audit_pb2, keys_pb2, niemphong_pb2, token_pb2

API_PACKAGE = "niemphong.v1"
API_FILES: tuple[FileDescriptor, ...] = (
    niemphong_pb2.DESCRIPTOR,
    keys_pb2.DESCRIPTOR,
    archive_pb2.DESCRIPTOR,
    audit_pb2.DESCRIPTOR,
    token_pb2.DESCRIPTOR,
)


def api_services() -> list[ServiceDescriptor]:
    """Return every service of the API, in file order."""
    return [service for file in API_FILES for service in file.services_by_name.values()]


def full_method_name(method: MethodDescriptor) -> str:
    """Return the gRPC path of ``method``, e.g. ``/niemphong.v1.EnvelopeService/Seal``."""
    return f"/{method.containing_service.full_name}/{method.name}"


def operation_name(method: MethodDescriptor) -> str:
    """Return the short name audit records use for ``method``, e.g. ``EnvelopeService/Seal``."""
    return f"{method.containing_service.name}/{method.name}"


def api_methods() -> Mapping[str, MethodDescriptor]:
    """Map the gRPC path of every API method to its descriptor."""
    return {full_method_name(method): method for service in api_services() for method in service.methods}
