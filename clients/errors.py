"""Client failures, their exit codes, and the mapping from niemphongd's errors.

niemphongd attaches a google.rpc.ErrorInfo with domain "niemphong.v1" and a
stable reason code to every failed call. The client picks its exit code and
message from that reason, and falls back on the gRPC status code only when
the reason is missing or unknown. It never shows the English status message
as the user's message, because the daemon does not localize it.
"""

from __future__ import annotations

import enum
import errno
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from niemphong.clients.catalog import CATALOG
from niemphong.clients.i18n import Lang, format_timestamp, translate
from niemphong.clients.render import printable

log = logging.getLogger(__name__)

ERROR_DOMAIN = "niemphong.v1"

T = TypeVar("T")


class ExitCode(enum.IntEnum):
    """Process exit codes of the niemphong command."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    REFUSED_BY_POLICY = 3
    NOT_AUTHORIZED = 4
    INTEGRITY_FAILURE = 5
    UNAVAILABLE = 6


class CatalogText(NamedTuple):
    """A message parameter that is itself a catalog message, translated when shown."""

    message_id: str

    def localize(self, lang: Lang) -> str:
        """Return the message in ``lang``."""
        return translate(lang, self.message_id)


class RoleNames(NamedTuple):
    """A message parameter naming one or more roles, shown as "A or B" (or "A and B") in the user's language."""

    names: tuple[str, ...]
    conjunction_id: str = "word.or"

    def localize(self, lang: Lang) -> str:
        """Return the role labels in ``lang``, joined with the conjunction."""
        labels = [translate(lang, f"role.{name}") if name in _ROLE_LABELS else name for name in self.names]
        return translate(lang, self.conjunction_id).join(labels) or "?"


class LocalTime(NamedTuple):
    """A message parameter holding Unix seconds, shown as Vietnam local time in the user's language."""

    unix_seconds: int

    def localize(self, lang: Lang) -> str:
        """Return the time formatted for ``lang``."""
        return format_timestamp(self.unix_seconds, lang)


class LocalizedText(NamedTuple):
    """A message parameter that niemphongd already wrote in both languages."""

    vi: str
    en: str

    def localize(self, lang: Lang) -> str:
        return self.vi if lang == "vi" else self.en


class SystemErrorText(NamedTuple):
    """A message parameter holding an operating-system error, shown in the user's language.

    Vietnamese uses the catalog text for the errno; an errno without one,
    and English, use the system's own text.
    """

    number: int | None
    text: str

    def localize(self, lang: Lang) -> str:
        """Return the error text in ``lang``."""
        name = errno.errorcode.get(self.number) if self.number is not None else None
        if lang == "en" or name is None or f"os_error.{name}" not in CATALOG:
            return self.text
        return translate(lang, f"os_error.{name}")


def os_error_text(exc: OSError) -> SystemErrorText:
    """Return the error of ``exc`` as a message parameter that localizes itself."""
    return SystemErrorText(exc.errno, exc.strerror or str(exc))


class ClientError(Exception):
    """A failure to report to the user: an exit code and a catalog message.

    ``reason`` is the daemon's ErrorInfo reason when the failure came from
    niemphongd, so that a command can add advice of its own.
    """

    def __init__(
        self,
        exit_code: ExitCode,
        message_id: str,
        /,
        *,
        reason: str | None = None,
        **params: object,
    ) -> None:
        super().__init__(message_id)
        self.exit_code = exit_code
        self.message_id = message_id
        self.reason = reason
        self.params = params
        self.hints: list[tuple[str, dict[str, object]]] = []

    def add_hint(self, message_id: str, **params: object) -> None:
        """Attach advice that is shown after the message."""
        self.hints.append((message_id, params))

    def localize(self, lang: Lang) -> str:
        """Return the user's message in ``lang``, followed by any hints on their own lines."""
        lines = [_translate_with_params(lang, self.message_id, self.params)]
        lines += [_translate_with_params(lang, message_id, params) for message_id, params in self.hints]
        return "\n".join(lines)


_LOCALIZABLE = (CatalogText, RoleNames, LocalTime, LocalizedText, SystemErrorText)


def _translate_with_params(lang: Lang, message_id: str, params: Mapping[str, object]) -> str:
    resolved = {
        name: value.localize(lang) if isinstance(value, _LOCALIZABLE) else value
        for name, value in params.items()
    }
    return translate(lang, message_id, **resolved)


@dataclass(frozen=True)
class ReasonRule:
    """The gRPC status code niemphongd sends with a reason, and the exit code it maps to."""

    status_code: grpc.StatusCode
    exit_code: ExitCode


REASON_RULES: Mapping[str, ReasonRule] = {
    "LEVEL_NEVER_DIGITIZED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "LEVEL_MISSING": ReasonRule(grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
    "INVALID_FIELD": ReasonRule(grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
    "FIELD_TOO_LONG": ReasonRule(grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
    "PROTOCOL_VIOLATION": ReasonRule(grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
    "ROLE_REQUIRED": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "UNKNOWN_IDENTITY": ReasonRule(grpc.StatusCode.UNAUTHENTICATED, ExitCode.NOT_AUTHORIZED),
    "NOT_APPROVED": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "SELF_APPROVAL": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "NOT_YOUR_REQUEST": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "ALREADY_APPROVED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "REQUEST_NOT_PENDING": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "TOO_MANY_PENDING": ReasonRule(grpc.StatusCode.RESOURCE_EXHAUSTED, ExitCode.REFUSED_BY_POLICY),
    "TOO_MANY_STREAMS": ReasonRule(grpc.StatusCode.RESOURCE_EXHAUSTED, ExitCode.UNAVAILABLE),
    "REQUEST_NOT_FOUND": ReasonRule(grpc.StatusCode.NOT_FOUND, ExitCode.FAILURE),
    "ARTEFACT_NOT_FOUND": ReasonRule(grpc.StatusCode.NOT_FOUND, ExitCode.FAILURE),
    "INTEGRITY_FAILURE": ReasonRule(grpc.StatusCode.DATA_LOSS, ExitCode.INTEGRITY_FAILURE),
    "TOKEN_UNAVAILABLE": ReasonRule(grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
    "KEY_UNAVAILABLE": ReasonRule(grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
    "UNKNOWN_PROFILE": ReasonRule(grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
    "AUDIT_UNAVAILABLE": ReasonRule(grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
    "STATE_UNAVAILABLE": ReasonRule(grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
    "DAEMON_STOPPING": ReasonRule(grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
    "INTERNAL": ReasonRule(grpc.StatusCode.INTERNAL, ExitCode.FAILURE),
    "SPOOL_DISABLED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.FAILURE),
    "SPOOL_PATH_INVALID": ReasonRule(grpc.StatusCode.INVALID_ARGUMENT, ExitCode.USAGE),
    "SPOOL_FILE_NOT_FOUND": ReasonRule(grpc.StatusCode.NOT_FOUND, ExitCode.USAGE),
    "SPOOL_FILE_REJECTED": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "SPOOL_OUTPUT_EXISTS": ReasonRule(grpc.StatusCode.ALREADY_EXISTS, ExitCode.USAGE),
    "SPOOL_IO_FAILED": ReasonRule(grpc.StatusCode.INTERNAL, ExitCode.FAILURE),
    # Key lifecycle and recovery.
    "KEY_NOT_FOUND": ReasonRule(grpc.StatusCode.NOT_FOUND, ExitCode.FAILURE),
    "KEY_STATE_CONFLICT": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "KEY_STILL_NEEDED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "KEY_RETIRED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "KEY_CHANGE_NOT_FOUND": ReasonRule(grpc.StatusCode.NOT_FOUND, ExitCode.FAILURE),
    "KEY_CHANGE_NOT_PENDING": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "KEY_CHANGE_PENDING": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "ALREADY_CONFIRMED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "RECOVERY_NOT_CONFIGURED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "RECOVERY_NOT_ACTIVE": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "RECOVERY_IN_PROGRESS": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "RECOVERY_NOT_PENDING": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "RECOVERY_LOGIN_FAILED": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "REWRAP_UNSUPPORTED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    # Handover batches, printed copies and incidents.
    "BATCH_NOT_FOUND": ReasonRule(grpc.StatusCode.NOT_FOUND, ExitCode.FAILURE),
    "BATCH_NOT_APPROVED": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "BATCH_STATE_CONFLICT": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "NOT_IN_BATCH": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "ALREADY_SEALED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "NOT_YOUR_ARTEFACT": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "BATCH_UNCONFIRMED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "ARTEFACT_ABANDONED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "SEAL_CONFIRMED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "ENVELOPE_MISMATCH": ReasonRule(grpc.StatusCode.DATA_LOSS, ExitCode.INTEGRITY_FAILURE),
    "PRINTING_NOT_ALLOWED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "NOT_APPROVED_FOR_PRINTING": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "UNPRINTABLE_DOCUMENT": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "RENDERER_UNAVAILABLE": ReasonRule(grpc.StatusCode.UNAVAILABLE, ExitCode.UNAVAILABLE),
    "SUSPENDED_BY_INCIDENT": ReasonRule(grpc.StatusCode.PERMISSION_DENIED, ExitCode.NOT_AUTHORIZED),
    "INCIDENT_NOT_FOUND": ReasonRule(grpc.StatusCode.NOT_FOUND, ExitCode.FAILURE),
    "INCIDENT_CLOSED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "CLASSIFICATION_REFUSED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
    "EXTENSION_REJECTED": ReasonRule(grpc.StatusCode.FAILED_PRECONDITION, ExitCode.REFUSED_BY_POLICY),
}

# Exit codes for a failure whose reason is missing or unknown.
STATUS_EXIT_CODES: Mapping[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.UNAVAILABLE: ExitCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitCode.UNAVAILABLE,
    grpc.StatusCode.PERMISSION_DENIED: ExitCode.NOT_AUTHORIZED,
    grpc.StatusCode.UNAUTHENTICATED: ExitCode.NOT_AUTHORIZED,
    grpc.StatusCode.DATA_LOSS: ExitCode.INTEGRITY_FAILURE,
    grpc.StatusCode.INVALID_ARGUMENT: ExitCode.USAGE,
    grpc.StatusCode.FAILED_PRECONDITION: ExitCode.REFUSED_BY_POLICY,
}

# Messages for a failure whose reason is missing or unknown. Codes not
# listed use "code.OTHER", which names the code.
_STATUS_MESSAGES: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAUTHENTICATED: "code.UNAUTHENTICATED",
    grpc.StatusCode.PERMISSION_DENIED: "code.PERMISSION_DENIED",
    grpc.StatusCode.INVALID_ARGUMENT: "code.INVALID_ARGUMENT",
    grpc.StatusCode.FAILED_PRECONDITION: "code.FAILED_PRECONDITION",
    grpc.StatusCode.NOT_FOUND: "code.NOT_FOUND",
    grpc.StatusCode.DATA_LOSS: "reason.INTEGRITY_FAILURE",
    grpc.StatusCode.INTERNAL: "reason.INTERNAL",
}

_FIELD_LABELS = frozenset(
    {
        "doc_number", "issued_on", "title", "source_name", "purpose", "reason", "artefact_id", "request_id", "level",
        "copies", "recipient", "handed_over_by", "note", "text", "resolution", "batch_id", "documents",
        "classification.basis", "classification.stamp.starts_on", "classification.stamp.ends_on",
        "classification.extension.ends_on", "classification.extension.decision", "classification.extension.decided_on",
        "classification.declassification.decision", "classification.declassification.decided_on",
        "classification.standing_decision", "ends_on", "decided_on", "decision", "as_of", "within_days", "since", "until",
        "version", "operation", "change_id", "session_id", "pin_share", "header",
        "source_path", "envelope_path", "output_path",
    }
)
_EXTENSION_CODES = frozenset({"NOT_LATER", "DECIDED_AFTER_TODAY", "DECIDED_LATE"})
_SPOOL_PROBLEMS = frozenset({"symlink", "not_regular", "owner", "hard_links", "writable_by_others", "changed"})
# Key and session states the daemon names in metadata, each with a catalog label.
_STATE_LABELS = frozenset(
    {
        "active", "retired_sealing", "retired_opening", "destroyed", "none",
        "pending", "done", "rejected", "expired", "ended", "failed",
    }
)
_OPERATION_LABELS = frozenset({"create", "rotate", "retire_sealing", "retire_opening", "destroy"})
_ROLE_LABELS = frozenset({"scanner", "viewer", "approver", "head", "custodian", "auditor", "operator"})


def read_error_info(error: grpc.Call) -> error_details_pb2.ErrorInfo | None:
    """Return the niemphong.v1 ErrorInfo attached to a failed call, or None."""
    try:
        status = rpc_status.from_call(error)
    except ValueError as exc:
        # The rich status disagrees with the call's own code or message. A
        # proxy rewrote one of them, so the details cannot be trusted.
        log.warning("ignoring inconsistent rich status: %s", exc)
        return None
    if status is None:
        return None

    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                return info
    return None


def _field_param(name: str) -> object:
    if name in _FIELD_LABELS:
        return CatalogText(f"field.{name}")
    return name or "?"


def _role_param(value: str, conjunction_id: str) -> RoleNames:
    # Several roles arrive comma-separated: "approver,viewer".
    return RoleNames(tuple(name.strip() for name in value.split(",") if name.strip()), conjunction_id)


def _error_from_reason(info: error_details_pb2.ErrorInfo, rule: ReasonRule) -> ClientError:
    metadata = info.metadata
    params: dict[str, object] = {}
    if info.reason in ("INVALID_FIELD", "FIELD_TOO_LONG"):
        params["field"] = _field_param(metadata.get("field", ""))
    if info.reason in ("FIELD_TOO_LONG", "TOO_MANY_PENDING", "TOO_MANY_STREAMS"):
        params["max"] = metadata.get("max", "?")
    if info.reason.startswith("SPOOL_"):
        params["field"] = _field_param(metadata.get("field", ""))
        problem = metadata.get("problem", "")
        params["problem"] = CatalogText(f"spool.problem.{problem}") if problem in _SPOOL_PROBLEMS else problem or "?"
    if info.reason == "ROLE_REQUIRED":
        # Any one of the required roles is enough, and the caller has all of the listed roles.
        params["required_role"] = _role_param(metadata.get("required_role", ""), "word.or")
        params["role"] = _role_param(metadata.get("role", ""), "word.and")
    params.update(_key_params(metadata))
    if info.reason == "CLASSIFICATION_REFUSED":
        # niemphongd explains the refusal itself, citing the rule, in both languages.
        params["explanation"] = LocalizedText(metadata.get("explanation", "?"), metadata.get("explanation_en", "?"))
        params["code"] = metadata.get("code", "?")
    if info.reason == "BATCH_UNCONFIRMED":
        params["count"] = metadata.get("count", "?")
        params["doc_numbers"] = printable(metadata.get("doc_numbers", "?"))
    if info.reason in ("ARTEFACT_ABANDONED", "SEAL_CONFIRMED", "ENVELOPE_MISMATCH"):
        params["artefact_id"] = metadata.get("artefact_id", "?")
    if info.reason == "UNKNOWN_PROFILE":
        params["profile"] = printable(metadata.get("profile", "?"))
    if info.reason == "EXTENSION_REJECTED":
        code = metadata.get("code", "")
        params["why"] = CatalogText(f"extension.{code if code in _EXTENSION_CODES else 'OTHER'}")

    error = ClientError(rule.exit_code, f"reason.{info.reason}", reason=info.reason, **params)
    if info.reason == "LEVEL_NEVER_DIGITIZED" and metadata.get("code", "TUYET_MAT") != "TUYET_MAT":
        # The refusal rests on more than the level, such as a historical archive
        # that has not decided yet, so niemphongd's explanation names what is missing.
        explanation = LocalizedText(metadata.get("explanation", "?"), metadata.get("explanation_en", "?"))
        error.add_hint("scan.decision", explanation=explanation)
    return error


def _key_params(metadata: Mapping[str, str]) -> dict[str, object]:
    """Return the parameters of the key-lifecycle messages, each defaulting to "?"."""
    state = metadata.get("state", "")
    operation = metadata.get("operation", "")
    return {
        "key_id": metadata.get("key_id") or "?",
        "version": metadata.get("version") or "?",
        "artefacts": metadata.get("artefacts") or "?",
        "change_id": metadata.get("change_id") or "?",
        "session_id": metadata.get("session_id") or "?",
        "state": CatalogText(f"key_state.{state}") if state in _STATE_LABELS else (state or "?"),
        "operation": CatalogText(f"key_operation.{operation}") if operation in _OPERATION_LABELS else (operation or "?"),
    }


# What a failed connection's detail shows when TLS, not a missing daemon,
# stopped it. grpcio (1.85, BoringSSL) reports the client's own refusal of
# the server certificate as "Tls handshake failed" or a failed verification
# check. Under TLS 1.3 the server checks the client certificate after the
# client has finished its side of the handshake, so a daemon that rejects it
# shows only as a connection that listened and then closed ("Socket closed"),
# which clients/tls_check.py then confirms. When the client is still writing
# as the daemon closes, grpcio reports the write's error instead: a broken
# pipe ("Delayed close due to in-progress write") or a reset connection.
_SERVER_CERTIFICATE_MARKS = ("handshake failed", "certificate_verify_failed", "verification check failed")
_CLIENT_CERTIFICATE_MARKS = ("socket closed", "broken pipe", "connection reset")
_TLS_REJECTIONS: Mapping[str, tuple[ExitCode, str]] = {
    "server_certificate": (ExitCode.UNAVAILABLE, "error.server_certificate_rejected"),
    "client_certificate": (ExitCode.NOT_AUTHORIZED, "error.client_certificate_rejected"),
}


# Per server as shown to the user: a check that repeats the TLS handshake
# and returns True when the daemon rejects the client certificate.
_CERTIFICATE_CHECKS: dict[str, Callable[[], bool]] = {}


def register_certificate_check(server: str, check: Callable[[], bool]) -> None:
    """Record how to tell, for ``server``, a rejected client certificate from a daemon that went away."""
    _CERTIFICATE_CHECKS[server] = check


def _tls_rejection(detail: str, server: str) -> str | None:
    """Return which side's certificate a connection failure points at, or None for another failure."""
    text = detail.lower()
    if any(mark in text for mark in _SERVER_CERTIFICATE_MARKS):
        return "server_certificate"
    # A closed connection is also what a daemon that stopped or died leaves,
    # so only the daemon's own certificate alert, read by the check, counts.
    check = _CERTIFICATE_CHECKS.get(server)
    if any(mark in text for mark in _CLIENT_CERTIFICATE_MARKS) and check is not None and check():
        return "client_certificate"
    return None


def _error_from_status(code: grpc.StatusCode, detail: str, server: str, transfer_started: bool) -> ClientError:
    exit_code = STATUS_EXIT_CODES.get(code, ExitCode.FAILURE)

    if code == grpc.StatusCode.UNAVAILABLE and not transfer_started:
        rejected = _tls_rejection(detail, server)
        if rejected is not None:
            log.debug("TLS handshake with %s failed: %s", server, rejected)
            return ClientError(*_TLS_REJECTIONS[rejected], server=server)
    if code == grpc.StatusCode.UNAVAILABLE:
        # UNAVAILABLE without an ErrorInfo comes from the gRPC library itself:
        # before the transfer started, no daemon listens on the socket or the
        # TLS handshake failed; after it started, the connection broke.
        message_id = "error.connection_lost" if transfer_started else "error.connect"
        return ClientError(exit_code, message_id, server=server, detail=detail)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ClientError(exit_code, "error.deadline", server=server)

    message_id = _STATUS_MESSAGES.get(code)
    if message_id is None:
        return ClientError(exit_code, "code.OTHER", code=code.name)
    return ClientError(exit_code, message_id)


def error_from_rpc(error: grpc.RpcError, server: str, *, transfer_started: bool = False) -> ClientError:
    """Convert a failed gRPC call into a ClientError.

    ``server`` is the daemon address as the user gave it, for messages about
    connection failures. ``transfer_started`` tells a connection lost during
    a streamed transfer apart from a connection that never opened.
    """
    call: grpc.Call = error  # type: ignore[assignment]  # every RpcError that grpcio raises for a call is a Call
    code = call.code()
    detail = call.details() or ""
    info = read_error_info(call)
    log.debug("rpc failed: code=%s reason=%s detail=%r", code.name, info.reason if info else None, detail)

    if info is not None:
        rule = REASON_RULES.get(info.reason)
        if rule is not None:
            return _error_from_reason(info, rule)
        log.warning("unknown error reason %r with code %s; falling back on the code", info.reason, code.name)
    return _error_from_status(code, detail, server, transfer_started)


def describe_rpc_error(error: grpc.RpcError, lang: Lang, server: str) -> tuple[int, str]:
    """Return the exit code and the user's message for a failed gRPC call."""
    client_error = error_from_rpc(error, server)
    return int(client_error.exit_code), client_error.localize(lang)


@dataclass
class TransferProgress:
    """How far a streamed call got, so that its failure can be described."""

    # The daemon has received the first request message or sent a response
    # message, so the connection was open.
    started: bool = False
    # Response messages carrying data that were received.
    chunks_received: int = 0


def track_requests(requests: Iterable[T], progress: TransferProgress) -> Iterator[T]:
    """Yield ``requests`` and mark ``progress`` started once the first one was sent.

    grpcio asks the iterator for the next message only after the previous
    one was sent, and with no connection it never sends the first, so a
    request for the second message means that the stream was open.
    """
    for index, message in enumerate(requests):
        if index > 0:
            progress.started = True
        yield message


@contextmanager
def rpc_errors_as_client_errors(server: str, progress: TransferProgress | None = None) -> Iterator[None]:
    """Re-raise any grpc.RpcError in the block as a ClientError."""
    try:
        yield
    except grpc.RpcError as exc:
        started = progress is not None and progress.started
        raise error_from_rpc(exc, server, transfer_started=started) from exc
