"""AccessService: request, approve, deny, list and show access requests."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from niemphong.daemon import validation
from niemphong.daemon.access import APPROVED, DENIED, PENDING, AccessControl, RequestView
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.errors import ServiceError, abort
from niemphong.daemon.identity import CallContext
from niemphong.daemon.levels import Level
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_STATES = {PENDING: pb.REQUEST_STATE_PENDING, APPROVED: pb.REQUEST_STATE_APPROVED, DENIED: pb.REQUEST_STATE_DENIED}

T = TypeVar("T")


def to_proto(view: RequestView) -> pb.AccessRequest:
    request = view.request
    message = pb.AccessRequest(
        request_id=request.request_id,
        artefact_id=request.artefact_id,
        level=view.artefact.level,
        doc_number=view.artefact.doc_number,
        requester=request.requester,
        purpose=request.purpose,
        state=_STATES[request.state],
        approvals=[pb.Approval(approver=a.approver, approved_at=a.approved_at, head=a.head) for a in view.approvals],
        approvals_required=request.approvals_required,
        denied_by=request.denied_by or "",
        deny_reason=request.deny_reason or "",
        created_at=request.created_at,
        copies=request.copies,
        recipient=request.recipient,
        awaiting_head=view.awaiting_head,
    )
    if view.grant is not None:
        message.grant.CopyFrom(pb.Grant(
            expires_at=view.grant.expires_at,
            opens_allowed=view.grant.opens_allowed,
            opens_used=view.grant.opens_used,
            copies_allowed=view.grant.copies_allowed,
            copies_made=view.grant.copies_made,
            suspended=view.suspended,
        ))
    return message


def _request_facts(request: pb.AccessRequest) -> dict[str, str | int]:
    """Return what the audit record of a call needs to know about the request it touched."""
    level = Level.from_proto(request.level)
    facts: dict[str, str | int] = {
        "access_request_id": request.request_id,
        "artefact_id": request.artefact_id,
        "state": pb.RequestState.Name(request.state).removeprefix("REQUEST_STATE_").lower(),
        "approvals": len(request.approvals),
        "approvals_required": request.approvals_required,
    }
    if level is not None:
        facts["level"] = level.config_name
    if request.HasField("grant"):
        facts.update(grant_expires_at=request.grant.expires_at, opens_allowed=request.grant.opens_allowed)
    return facts


class AccessServicer(pb_grpc.AccessServiceServicer):
    def __init__(self, access: AccessControl, audit: AuditTrail) -> None:
        self.access = access
        self.audit = audit

    def _record(self, context: CallContext) -> Callable[[RequestView], None]:
        """Return the hook that makes the call's audit record durable before its change commits."""
        def record(view: RequestView) -> None:
            # Fail closed: without a durable record the change rolls back.
            context.facts.update(_request_facts(to_proto(view)))
            self.audit.record_decision(context)

        return record

    def _run(self, context: CallContext, operation: str, action: Callable[[], T]) -> T:
        try:
            result = action()
        except ServiceError as error:
            context.facts["reason"] = error.reason
            log.warning(
                "request %s %s by %s refused: %s (%s)",
                context.request_id, operation, context.identity.name, error.reason, error.message,
            )
            abort(context, error)
            raise AssertionError("unreachable") from None
        except Exception:
            context.facts["reason"] = "INTERNAL"
            log.exception("request %s %s by %s failed unexpectedly", context.request_id, operation, context.identity.name)
            abort(context, ServiceError("INTERNAL", f"internal error; see the daemon log for request {context.request_id}"))
            raise AssertionError("unreachable") from None
        if isinstance(result, pb.AccessRequest):
            context.facts.update(_request_facts(result))
        return result

    def RequestAccess(self, request: pb.RequestAccessRequest, context: CallContext) -> pb.AccessRequest:
        def action() -> pb.AccessRequest:
            artefact_id = validation.hex_id("artefact_id", request.artefact_id)
            purpose = validation.text("purpose", request.purpose, validation.MAX_PURPOSE)
            copies = validation.bounded("copies", request.copies, validation.MAX_COPIES)
            recipient = validation.text("recipient", request.recipient, validation.MAX_AGENCY, required=False)
            context.facts.update(artefact_id=artefact_id, copies=copies, purpose=purpose)
            if recipient:
                context.facts["recipient"] = recipient
            return to_proto(self.access.request_access(
                context.identity, artefact_id, purpose, copies, recipient, before_commit=self._record(context),
            ))

        return self._run(context, "access request", action)

    def Approve(self, request: pb.ApproveRequest, context: CallContext) -> pb.AccessRequest:
        def action() -> pb.AccessRequest:
            request_id = validation.hex_id("request_id", request.request_id)
            return to_proto(self.access.approve(context.identity, request_id, self._record(context)))

        return self._run(context, "approval", action)

    def Deny(self, request: pb.DenyRequest, context: CallContext) -> pb.AccessRequest:
        def action() -> pb.AccessRequest:
            request_id = validation.hex_id("request_id", request.request_id)
            reason = validation.text("reason", request.reason, validation.MAX_REASON)
            context.facts["deny_reason"] = reason
            return to_proto(self.access.deny(context.identity, request_id, reason, self._record(context)))

        return self._run(context, "denial", action)

    def ListPending(self, request: pb.ListPendingRequest, context: CallContext) -> pb.ListPendingResponse:
        def action() -> pb.ListPendingResponse:
            views, truncated = self.access.list_pending(context.identity)
            return pb.ListPendingResponse(requests=[to_proto(view) for view in views], truncated=truncated)

        return self._run(context, "list pending", action)

    def GetRequest(self, request: pb.GetRequestRequest, context: CallContext) -> pb.AccessRequest:
        def action() -> pb.AccessRequest:
            request_id = validation.hex_id("request_id", request.request_id)
            return to_proto(self.access.get_request(context.identity, request_id))

        return self._run(context, "show request", action)
