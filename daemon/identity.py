"""Who is calling: identities and roles from the mTLS client certificate.

Every connection, TCP or unix socket, is mutual TLS against the agency CA
configured in [tls] ca. A certificate's common name, case-folded, is the
person or station (``approver-1``); each organizational unit (OU) attribute
names one role. The role table below is checked in an interceptor before any handler
runs, so a handler never sees a caller without the role its method needs.
"""

from __future__ import annotations

import functools
import logging
import threading
import unicodedata
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from niemphong.daemon.errors import ServiceError, abort

log = logging.getLogger(__name__)

# "head" is the head of the agency (người đứng đầu cơ quan); a deputy
# authorized to approve holds "approver" only.
ROLES = frozenset({"scanner", "viewer", "approver", "head", "custodian", "auditor", "operator"})
_DECIDERS = frozenset({"approver", "head"})

_V1 = "/niemphong.v1."

# Full method name -> roles allowed to call it. Every method of every
# niemphong.v1 service must appear here (a test checks it against the
# service descriptors); a method missing from it is refused.
METHOD_ROLES: Mapping[str, frozenset[str]] = {
    f"{_V1}EnvelopeService/Seal": frozenset({"scanner"}),
    f"{_V1}EnvelopeService/SealSmall": frozenset({"scanner"}),
    f"{_V1}EnvelopeService/Open": frozenset({"viewer"}),
    f"{_V1}EnvelopeService/Inspect": ROLES,
    f"{_V1}AccessService/RequestAccess": frozenset({"viewer"}),
    f"{_V1}AccessService/Approve": _DECIDERS,
    f"{_V1}AccessService/Deny": _DECIDERS,
    f"{_V1}AccessService/ListPending": frozenset({"viewer", "approver", "head"}),
    f"{_V1}AccessService/GetRequest": frozenset({"viewer", "approver", "head"}),
    f"{_V1}SpoolService/SealFile": frozenset({"scanner"}),
    f"{_V1}SpoolService/OpenFile": frozenset({"viewer"}),
    # Key lifecycle: custodians change keys; rewrap never exposes plaintext,
    # so operators may run it over an archive too.
    f"{_V1}KeyService/ListKeys": frozenset({"custodian", "auditor", "operator"}),
    f"{_V1}KeyService/ProposeKeyChange": frozenset({"custodian"}),
    f"{_V1}KeyService/ConfirmKeyChange": frozenset({"custodian"}),
    f"{_V1}KeyService/RejectKeyChange": frozenset({"custodian"}),
    f"{_V1}KeyService/ListKeyChanges": frozenset({"custodian", "auditor"}),
    f"{_V1}KeyService/Rewrap": frozenset({"custodian", "operator"}),
    # Recovery: custodians open the recovery token; viewers still need a grant to open.
    f"{_V1}RecoveryService/StartRecovery": frozenset({"custodian"}),
    f"{_V1}RecoveryService/ConfirmRecovery": frozenset({"custodian"}),
    f"{_V1}RecoveryService/EndRecovery": frozenset({"custodian"}),
    f"{_V1}RecoveryService/GetRecovery": frozenset({"custodian", "auditor", "operator"}),
    f"{_V1}RecoveryService/RecoverRewrap": frozenset({"custodian"}),
    f"{_V1}RecoveryService/RecoverOpen": frozenset({"viewer"}),
    f"{_V1}AuditService/Verify": frozenset({"auditor"}),
    f"{_V1}AuditService/Export": frozenset({"auditor"}),
    f"{_V1}AuditService/ArtefactHistory": frozenset({"auditor"}),
    f"{_V1}PolicyService/GetPolicy": ROLES,
    f"{_V1}PolicyService/Decide": ROLES,
    f"{_V1}PolicyService/ListDue": frozenset({"approver", "custodian", "auditor"}),
    f"{_V1}PolicyService/RecordExtension": frozenset({"approver"}),
    # The archive's working day: batches, printed copies, incidents.
    f"{_V1}EnvelopeService/Verify": frozenset({"scanner"}),
    f"{_V1}EnvelopeService/ConfirmSeal": frozenset({"scanner"}),
    f"{_V1}EnvelopeService/AbandonSeal": frozenset({"scanner"}),
    f"{_V1}HandoverService/OpenBatch": frozenset({"scanner"}),
    f"{_V1}HandoverService/ApproveBatch": _DECIDERS,
    f"{_V1}HandoverService/CloseBatch": frozenset({"scanner", "approver", "head"}),
    f"{_V1}HandoverService/GetBatch": frozenset({"scanner", "approver", "head", "auditor"}),
    f"{_V1}HandoverService/GetMinutes": frozenset({"scanner", "approver", "head", "auditor"}),
    f"{_V1}CopyService/Print": frozenset({"viewer"}),
    f"{_V1}CopyService/ListCopies": frozenset({"approver", "head", "auditor"}),
    f"{_V1}IncidentService/ReportIncident": ROLES,
    f"{_V1}IncidentService/CloseIncident": _DECIDERS,
    f"{_V1}IncidentService/ListIncidents": frozenset({"approver", "head", "auditor"}),
    f"{_V1}TokenService/Probe": frozenset({"operator", "auditor"}),
}


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: certificate common name and roles.

    ``full_name`` and ``title`` (chức vụ) come from the certificate's surname,
    given name and title attributes when it has them; they are printed on
    copy stamps and handover minutes.
    """

    name: str
    roles: frozenset[str]
    full_name: str = ""
    title: str = ""

    def has_role(self, role: str) -> bool:
        return role in self.roles


@functools.lru_cache(maxsize=1024)
def identity_from_pem(pem: bytes) -> Identity | None:
    """Read the identity from a PEM certificate; None when it names no known role or no CN."""
    certificate = x509.load_pem_x509_certificate(pem)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    roles = frozenset(str(unit.value) for unit in units) & ROLES
    if len(names) != 1 or not roles:
        return None
    # Names are compared case-insensitively and in one Unicode form, so that
    # "Viewer" cannot approve what "viewer" asked for.
    name = unicodedata.normalize("NFKC", str(names[0].value)).casefold()
    if not name:
        return None
    # A Vietnamese full name reads surname first: "Nguyễn" + "Văn An".
    parts = [
        str(attribute.value)
        for oid in (NameOID.SURNAME, NameOID.GIVEN_NAME)
        for attribute in certificate.subject.get_attributes_for_oid(oid)
    ]
    titles = certificate.subject.get_attributes_for_oid(NameOID.TITLE)
    return Identity(
        name=name,
        roles=roles,
        full_name=" ".join(parts),
        title=str(titles[0].value) if titles else "",
    )


class CallContext:
    """A servicer context with the caller's identity and a request id attached.

    Handlers record what the call touched in ``facts`` (keys such as
    ``artefact_id``, ``level``, ``plaintext_bytes``, ``envelope_bytes``,
    ``reason``), so that code wrapped around every call can report it
    without parsing messages. Never put secrets or plaintext there.
    """

    def __init__(self, context: grpc.ServicerContext, identity: Identity, request_id: str) -> None:
        self._context = context
        self.identity = identity
        self.request_id = request_id
        # Share the facts dict of a wrapper outside this one (observe.py), so
        # that it reads what the handler recorded.
        outer_facts = getattr(context, "facts", None)
        self.facts: dict[str, str | int] = outer_facts if isinstance(outer_facts, dict) else {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


@functools.lru_cache(maxsize=1024)
def _common_name(pem: bytes) -> str:
    names = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        return ""
    # The same form as identity_from_pem gives, so that records name one person one way.
    return unicodedata.normalize("NFKC", str(names[0].value)).casefold()


def peer_identity(context: grpc.ServicerContext) -> Identity:
    """Return the caller's identity; its roles are empty when the certificate names no known role."""
    certificates = context.auth_context().get("x509_pem_cert")
    if not certificates:
        return Identity(name="", roles=frozenset())
    return identity_from_pem(certificates[0]) or Identity(name=_common_name(certificates[0]), roles=frozenset())


def begin_call(context: grpc.ServicerContext) -> tuple[Identity, str]:
    """Return the caller's identity and the call's request id, which is also sent as the x-request-id trailer.

    The request id is the one the observing wrapper gave the call, so that
    logs, metrics and the audit record name it alike; a new one otherwise.
    """
    request_id = getattr(context, "request_id", None) or uuid.uuid4().hex[:16]
    context.set_trailing_metadata((("x-request-id", request_id),))
    return peer_identity(context), request_id


class StreamLimiter:
    """Bound the streaming calls in progress, per identity and in total.

    A streamed call holds a server thread for as long as the client keeps it
    open, so without a bound one caller could take every thread and starve
    approvers' unary calls.
    """

    def __init__(self, per_identity: int, total: int) -> None:
        self.per_identity = per_identity
        self.total = total
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def acquire(self, name: str) -> bool:
        with self._lock:
            if sum(self._counts.values()) >= self.total or self._counts.get(name, 0) >= self.per_identity:
                return False
            self._counts[name] = self._counts.get(name, 0) + 1
            return True

    def release(self, name: str) -> None:
        with self._lock:
            remaining = self._counts[name] - 1
            if remaining:
                self._counts[name] = remaining
            else:
                del self._counts[name]


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticate the caller and check the role table before the handler runs.

    Args:
        streams: the bound on streaming calls (Seal, Open) in progress.
    """

    def __init__(self, streams: StreamLimiter) -> None:
        self.streams = streams

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        allowed = METHOD_ROLES.get(method)
        if allowed is None and method.startswith(_V1):
            log.error("method %s has no entry in the role table; refusing it", method)
            allowed = frozenset()

        def guard(behavior: Callable[..., Any]) -> Callable[..., Any]:
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(context, CallContext):
                    # An outer wrapper (the audit trail) has named the call already.
                    call = context
                else:
                    call = CallContext(context, *begin_call(context))
                identity, request_id = call.identity, call.request_id
                if not identity.roles:
                    log.warning("request %s to %s refused: certificate names no role", request_id, method)
                    abort(call, ServiceError("UNKNOWN_IDENTITY", "client certificate names no known role"))
                    raise AssertionError("unreachable")
                if allowed is not None and not (identity.roles & allowed):
                    log.warning(
                        "request %s to %s refused: %s has roles %s, needs one of %s",
                        request_id, method, identity.name, sorted(identity.roles), sorted(allowed),
                    )
                    abort(call, ServiceError(
                        "ROLE_REQUIRED",
                        f"{method.rsplit('/', 1)[-1]} needs role {' or '.join(sorted(allowed))}",
                        {"required_role": ",".join(sorted(allowed)), "role": ",".join(sorted(identity.roles))},
                    ))
                if allowed is None:
                    # Health checking and reflection: any authenticated caller.
                    return behavior(request, context)
                if handler.stream_stream is not None:
                    return self._limited(behavior, request, call)
                return behavior(request, call)

            return guarded

        return _wrap_handler(handler, guard)

    def _limited(self, behavior: Callable[..., Any], request: Any, call: CallContext) -> Any:
        name = call.identity.name
        if not self.streams.acquire(name):
            log.warning("request %s refused: %s has too many streams open", call.request_id, name)
            abort(call, ServiceError(
                "TOO_MANY_STREAMS", f"{name} already has {self.streams.per_identity} transfers in progress, or the daemon is full",
                {"max": str(self.streams.per_identity)},
            ))
        try:
            yield from behavior(request, call)
        finally:
            self.streams.release(name)


def _wrap_handler(
    handler: grpc.RpcMethodHandler, guard: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> grpc.RpcMethodHandler:
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for attribute, factory in kinds:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            return factory(
                guard(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
