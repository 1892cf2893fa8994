"""Error categories of the daemon and their one mapping to gRPC status.

Every error a handler raises on purpose is a :class:`ServiceError` carrying a
stable reason code. The reason codes are the API contract that clients turn
into a Vietnamese or English message and an exit code (see docs/api.md); the
English ``message`` is for logs and engineers and never holds secrets.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "niemphong.v1"

# reason code -> gRPC status code. One table, so a reason never travels with
# two different codes.
REASON_CODES: Mapping[str, grpc.StatusCode] = {
    "LEVEL_NEVER_DIGITIZED": grpc.StatusCode.FAILED_PRECONDITION,
    "LEVEL_MISSING": grpc.StatusCode.INVALID_ARGUMENT,
    "INVALID_FIELD": grpc.StatusCode.INVALID_ARGUMENT,
    "FIELD_TOO_LONG": grpc.StatusCode.INVALID_ARGUMENT,
    "PROTOCOL_VIOLATION": grpc.StatusCode.INVALID_ARGUMENT,
    "ROLE_REQUIRED": grpc.StatusCode.PERMISSION_DENIED,
    "UNKNOWN_IDENTITY": grpc.StatusCode.UNAUTHENTICATED,
    "NOT_APPROVED": grpc.StatusCode.PERMISSION_DENIED,
    "SELF_APPROVAL": grpc.StatusCode.PERMISSION_DENIED,
    "NOT_YOUR_REQUEST": grpc.StatusCode.PERMISSION_DENIED,
    "ALREADY_APPROVED": grpc.StatusCode.FAILED_PRECONDITION,
    "REQUEST_NOT_PENDING": grpc.StatusCode.FAILED_PRECONDITION,
    "TOO_MANY_PENDING": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "TOO_MANY_STREAMS": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "REQUEST_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "ARTEFACT_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "INTEGRITY_FAILURE": grpc.StatusCode.DATA_LOSS,
    "TOKEN_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "KEY_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "UNKNOWN_PROFILE": grpc.StatusCode.INVALID_ARGUMENT,
    "AUDIT_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    # The state database cannot be reached (PostgreSQL) or written (SQLite on a
    # full, read-only or failing disk).
    "STATE_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "DAEMON_STOPPING": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL": grpc.StatusCode.INTERNAL,
    # Local spool mode.
    "SPOOL_DISABLED": grpc.StatusCode.FAILED_PRECONDITION,
    "SPOOL_PATH_INVALID": grpc.StatusCode.INVALID_ARGUMENT,
    "SPOOL_FILE_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "SPOOL_FILE_REJECTED": grpc.StatusCode.PERMISSION_DENIED,
    "SPOOL_OUTPUT_EXISTS": grpc.StatusCode.ALREADY_EXISTS,
    "SPOOL_IO_FAILED": grpc.StatusCode.INTERNAL,
    # Key lifecycle and recovery.
    "KEY_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "KEY_STATE_CONFLICT": grpc.StatusCode.FAILED_PRECONDITION,
    "KEY_STILL_NEEDED": grpc.StatusCode.FAILED_PRECONDITION,
    "KEY_RETIRED": grpc.StatusCode.FAILED_PRECONDITION,
    "KEY_CHANGE_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "KEY_CHANGE_NOT_PENDING": grpc.StatusCode.FAILED_PRECONDITION,
    "KEY_CHANGE_PENDING": grpc.StatusCode.FAILED_PRECONDITION,
    "ALREADY_CONFIRMED": grpc.StatusCode.FAILED_PRECONDITION,
    "RECOVERY_NOT_CONFIGURED": grpc.StatusCode.FAILED_PRECONDITION,
    "RECOVERY_NOT_ACTIVE": grpc.StatusCode.FAILED_PRECONDITION,
    "RECOVERY_IN_PROGRESS": grpc.StatusCode.FAILED_PRECONDITION,
    "RECOVERY_NOT_PENDING": grpc.StatusCode.FAILED_PRECONDITION,
    "RECOVERY_LOGIN_FAILED": grpc.StatusCode.PERMISSION_DENIED,
    "REWRAP_UNSUPPORTED": grpc.StatusCode.FAILED_PRECONDITION,
    # Handover batches, printed copies and incidents.
    "BATCH_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "BATCH_NOT_APPROVED": grpc.StatusCode.PERMISSION_DENIED,
    "BATCH_STATE_CONFLICT": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_IN_BATCH": grpc.StatusCode.FAILED_PRECONDITION,
    "ALREADY_SEALED": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_YOUR_ARTEFACT": grpc.StatusCode.PERMISSION_DENIED,
    "PRINTING_NOT_ALLOWED": grpc.StatusCode.FAILED_PRECONDITION,
    "NOT_APPROVED_FOR_PRINTING": grpc.StatusCode.PERMISSION_DENIED,
    "UNPRINTABLE_DOCUMENT": grpc.StatusCode.FAILED_PRECONDITION,
    "RENDERER_UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "SUSPENDED_BY_INCIDENT": grpc.StatusCode.PERMISSION_DENIED,
    "INCIDENT_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "INCIDENT_CLOSED": grpc.StatusCode.FAILED_PRECONDITION,
    # Classification policy: metadata "code" holds the decision code.
    "CLASSIFICATION_REFUSED": grpc.StatusCode.FAILED_PRECONDITION,
    "EXTENSION_REJECTED": grpc.StatusCode.FAILED_PRECONDITION,
}


class ServiceError(Exception):
    """A refusal or failure reported to the caller with a stable reason code.

    Args:
        reason: a key of :data:`REASON_CODES`.
        message: English text for logs and engineers. Never put plaintext,
            key bytes or PINs in it.
        metadata: short machine-readable facts for the client's message,
            e.g. ``{"field": "doc_number"}``.
    """

    def __init__(self, reason: str, message: str, metadata: Mapping[str, str] | None = None) -> None:
        if reason not in REASON_CODES:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})

    @property
    def code(self) -> grpc.StatusCode:
        return REASON_CODES[self.reason]


class StateUnavailable(ServiceError):
    """The SQLite state database cannot be written because its disk is full, read-only or failing."""

    def __init__(self, message: str) -> None:
        super().__init__("STATE_UNAVAILABLE", message)


class ConfigError(Exception):
    """The configuration or policy file is invalid; the message names the file and key."""


class TokenUnavailable(Exception):
    """The token cannot be reached, logged in to, or has gone away."""


class TokenBusy(TokenUnavailable):
    """Every token session is in use for longer than a caller may wait; the token itself is fine."""


def to_rpc_status(error: ServiceError) -> grpc.Status:
    """Build the rich gRPC status for ``error``: code, message and one ErrorInfo."""
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=[detail])
    return rpc_status.to_status(status)


def abort(context: grpc.ServicerContext, error: ServiceError) -> None:
    """Abort the current call with ``error``; never returns.

    On a call context with ``facts`` the reason is recorded there too, for
    the audit trail wrapped around the call.
    """
    facts = getattr(context, "facts", None)
    if isinstance(facts, dict):
        facts["reason"] = error.reason
    status = to_rpc_status(error)
    request_id = getattr(context, "request_id", None)
    if isinstance(request_id, str):
        # abort_with_status replaces the trailing metadata, so the request id
        # that names this call in the logs and the audit trail goes in again.
        status = _Status(status.code, status.details, (*status.trailing_metadata, ("x-request-id", request_id)))
    context.abort_with_status(status)


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    """A gRPC status with trailing metadata, as grpc_status.rpc_status builds it."""
