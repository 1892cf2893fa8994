"""One audit record per call: the interceptor around every API method, and decision records.

:class:`AuditInterceptor` is the outermost interceptor. It names each call
(identity, request id, operation), refuses it with AUDIT_UNAVAILABLE when the
log cannot be written, and writes one record of its outcome when it ends,
refusals included. A unary response is released only after its record is
durable.

Calls that change state or release data record their decision themselves,
with :meth:`AuditTrail.record_decision`, at the point of no return. They
call it inside the transaction that stores the change (a sealed artefact, a
not-secret decision, a counted open, an access request, an approval, a
denial, an extension, a key change, a rewrap recorded in the registry), so
that without a durable record the change rolls back. A key change calls it
before it touches the token. Open calls it before the first byte of
plaintext. That record is the
call's one record. If the call fails after it (an integrity failure in a later
segment, a client that goes away), a second record says so and names the
first in ``follows``.

The audited methods are those of the API's service descriptors
(:mod:`niemphong.daemon.api`), so a new RPC is audited without any change
here. Calls to AuditService are served even while the log cannot be written,
because an inspector must be able to examine a log that the daemon can no
longer extend; their records are written when the log allows.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc

from niemphong.daemon.api import api_methods, operation_name
from niemphong.daemon.audit.log import AuditLog, AuditUnavailable
from niemphong.daemon.errors import REASON_CODES, ServiceError, abort
from niemphong.daemon.identity import CallContext, Identity, begin_call

log = logging.getLogger(__name__)

AUDIT_SERVICE = "niemphong.v1.AuditService"
# Longest text fact kept in a record; longer values are cut and marked.
MAX_FACT_CHARS = 2000

_HEX_ID = re.compile(r"[0-9a-f]{32}")
# Request fields copied into the record of a unary call, so that a refusal
# still names what was asked for: field name -> fact name.
_REQUEST_ID_FIELDS = {"artefact_id": "artefact_id", "request_id": "access_request_id"}
# gRPC codes that mean the daemon could not do the work, rather than that it
# decided against the caller.
_FAILURE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
})


class AuditedCall(CallContext):
    """A call context that knows its operation and whether its decision is recorded."""

    def __init__(self, context: grpc.ServicerContext, identity: Identity, request_id: str, operation: str) -> None:
        super().__init__(context, identity, request_id)
        self.operation = operation
        self.decision_seq: int | None = None


def decision_of(status: grpc.StatusCode) -> str:
    """Return ``allowed``, ``refused`` or ``failed`` for a call that ended with ``status``."""
    if status == grpc.StatusCode.OK:
        return "allowed"
    if status in _FAILURE_CODES:
        return "failed"
    return "refused"


def record_fields(call: AuditedCall, status: grpc.StatusCode, reason: str) -> dict[str, Any]:
    """Return the fields of the record of ``call`` ending with ``status`` and ``reason``."""
    facts: dict[str, str | int] = {}
    for name, value in call.facts.items():
        if name == "reason" or isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        if isinstance(value, str) and len(value) > MAX_FACT_CHARS:
            value = value[:MAX_FACT_CHARS] + "…"
        facts[name] = value

    fields: dict[str, Any] = {
        "request_id": call.request_id,
        "identity": call.identity.name,
        "roles": sorted(call.identity.roles),
        "operation": call.operation,
        "decision": decision_of(status),
        "status": status.name,
        "reason": reason,
        "facts": facts,
    }
    if call.decision_seq is not None:
        fields["follows"] = call.decision_seq
    return fields


class AuditTrail:
    """Writes the records of calls to the audit log."""

    def __init__(self, audit_log: AuditLog) -> None:
        self.log = audit_log
        # Per thread: the calls whose decisions a grouped_decisions block recorded.
        self._group = threading.local()

    def record_decision(self, call: CallContext) -> None:
        """Make the allowed decision of ``call`` durable; call it before releasing anything.

        Raises ServiceError AUDIT_UNAVAILABLE when the record cannot be made
        durable: the caller must then release nothing.
        """
        if not isinstance(call, AuditedCall):
            raise RuntimeError("record_decision needs a call named by AuditInterceptor")

        try:
            entry = self.log.append(record_fields(call, grpc.StatusCode.OK, ""))
        except AuditUnavailable as exc:
            log.warning(
                "request %s %s by %s refused: its audit record cannot be written (%s)",
                call.request_id, call.operation, call.identity.name, exc,
            )
            raise ServiceError("AUDIT_UNAVAILABLE", "the audit log cannot be written") from exc
        call.decision_seq = entry["seq"]
        recorded = getattr(self._group, "calls", None)
        if recorded is not None:
            recorded.append(call)

    @contextlib.contextmanager
    def grouped_decisions(self) -> Iterator[None]:
        """Let the decisions recorded by this thread in the block share one fdatasync at its end.

        For a batch of registrations in one SQLite transaction: raises
        ServiceError AUDIT_UNAVAILABLE at the end when the records cannot be
        made durable, and the caller must then roll back the whole batch.
        """
        if getattr(self._group, "calls", None) is not None:
            yield
            return
        calls: list[AuditedCall] = []
        self._group.calls = calls
        try:
            with self.log.grouped_sync():
                yield
        except AuditUnavailable as exc:
            for call in calls:
                # The decision record is gone, so the outcome record must not point to it.
                call.decision_seq = None
                log.warning(
                    "request %s %s by %s refused: its audit record cannot be written (%s)",
                    call.request_id, call.operation, call.identity.name, exc,
                )
            raise ServiceError("AUDIT_UNAVAILABLE", "the audit log cannot be written") from exc
        finally:
            self._group.calls = None

    def record_refusal(self, method: str, context: grpc.ServicerContext, error: ServiceError) -> None:
        """Record a call that a wrapper outside the audit interceptor refused, such as a drain."""
        operations = _operations()
        if method not in operations:
            return
        call = AuditedCall(context, *begin_call(context), operation=operations[method])
        call.facts["reason"] = error.reason
        self.record_outcome(call, error.code, error.reason)

    def record_outcome(self, call: AuditedCall, status: grpc.StatusCode, reason: str) -> bool:
        """Write the record of how ``call`` ended; return whether it is durable."""
        try:
            self.log.append(record_fields(call, status, reason))
        except AuditUnavailable as exc:
            log.warning(
                "request %s %s by %s ended %s %s, but its audit record cannot be written (%s)",
                call.request_id, call.operation, call.identity.name, status.name, reason, exc,
            )
            return False
        return True


class AuditInterceptor(grpc.ServerInterceptor):
    """Name every API call, refuse it while the log is unwritable, and record its outcome."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        methods = api_methods()
        self.operations = {path: operation_name(method) for path, method in methods.items()}
        self.read_only = frozenset(
            path for path, method in methods.items() if method.containing_service.full_name == AUDIT_SERVICE
        )

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith("/niemphong.v1."):
            return handler

        operation = self.operations.get(method)
        if operation is None:
            log.error("method %s is served but not in the API descriptors; auditing it by its path", method)
            operation = method.lstrip("/")
        return _Wrapper(self.trail, operation, fail_closed=method not in self.read_only).wrap(handler)


class _Wrapper:
    """The audited behavior of one method."""

    def __init__(self, trail: AuditTrail, operation: str, fail_closed: bool) -> None:
        self.trail = trail
        self.operation = operation
        self.fail_closed = fail_closed

    def wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary, True), **options)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._unary(handler.stream_unary, False), **options)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._stream(handler.unary_stream, True), **options)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(self._stream(handler.stream_stream, False), **options)
        return handler

    def _begin(self, context: grpc.ServicerContext, request: Any, unary_request: bool) -> AuditedCall:
        call = AuditedCall(context, *begin_call(context), operation=self.operation)
        if unary_request:
            _note_request_ids(call, request)
        if self.fail_closed and not self.trail.log.writable():
            log.warning(
                "request %s %s by %s refused: the audit log cannot be written",
                call.request_id, self.operation, call.identity.name,
            )
            abort(call, ServiceError("AUDIT_UNAVAILABLE", "the audit log cannot be written"))
        return call

    def _unary(self, behavior: Callable[..., Any], unary_request: bool) -> Callable[..., Any]:
        def audited(request: Any, context: grpc.ServicerContext) -> Any:
            call = self._begin(context, request, unary_request)
            try:
                response = behavior(request, call)
            except Exception:
                self._record_failure(call, context)
                raise
            self._record_success(call)
            return response

        return audited

    def _stream(self, behavior: Callable[..., Iterator[Any]], unary_request: bool) -> Callable[..., Iterator[Any]]:
        def audited(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = self._begin(context, request, unary_request)
            try:
                yield from behavior(request, call)
            except GeneratorExit:
                # The client went away; grpc closes the response iterator.
                self.trail.record_outcome(call, grpc.StatusCode.CANCELLED, "")
                raise
            except Exception:
                self._record_failure(call, context)
                raise
            self._record_success(call)

        return audited

    def _record_failure(self, call: AuditedCall, context: grpc.ServicerContext) -> None:
        reason = str(call.facts.get("reason", ""))
        status = REASON_CODES.get(reason) or context.code() or grpc.StatusCode.UNKNOWN
        self.trail.record_outcome(call, status, reason)

    def _record_success(self, call: AuditedCall) -> None:
        if call.decision_seq is not None:
            return
        if not self.trail.record_outcome(call, grpc.StatusCode.OK, "") and self.fail_closed:
            abort(call, ServiceError("AUDIT_UNAVAILABLE", "the audit log cannot be written"))


@functools.cache
def _operations() -> dict[str, str]:
    return {path: operation_name(method) for path, method in api_methods().items()}


def _note_request_ids(call: AuditedCall, request: Any) -> None:
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return
    for field, fact in _REQUEST_ID_FIELDS.items():
        if field in descriptor.fields_by_name:
            value = str(getattr(request, field)).strip().lower()
            if _HEX_ID.fullmatch(value):
                call.facts[fact] = value


def facts_as_text(facts: Mapping[str, Any]) -> dict[str, str]:
    """Return a record's facts as strings, for the API's map field."""
    return {name: str(value) for name, value in facts.items()}
