"""What became of a viewer's requests, to explain a NOT_APPROVED refusal of ``view``.

niemphongd answers NOT_APPROVED with no detail: the viewer holds no
approved, unexpired grant with opens left for the document. These lookups
ask GetRequest (when the viewer named a request) or ListPending (when not)
to tell which case it is: still pending, denied, used up, expired, or made
for another document. They are best effort: a failed lookup only loses the
detail, never the original error.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.errors import LocalTime
from niemphong.clients.render import printable
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# Hints are (catalog message id, parameters), as ClientError.add_hint takes them.
Hint = tuple[str, dict[str, Any]]

# At most this many pending requests are named in the explanation.
MAX_PENDING_SHOWN = 3


def find_artefact_id(channel: grpc.Channel, inspect_request: pb.InspectRequest) -> str | None:
    """Return the artefact id in the envelope header, as Inspect reads it, or None on failure."""
    try:
        response = pb_grpc.EnvelopeServiceStub(channel).Inspect(inspect_request, timeout=UNARY_TIMEOUT_SECONDS)
    except grpc.RpcError as exc:
        log.debug("cannot inspect the envelope to explain NOT_APPROVED: %s", exc.code())
        return None
    return response.artefact_id or None


def describe_request(request: pb.AccessRequest, artefact_id: str | None, now: int) -> list[Hint]:
    """Return the hints that explain why ``request`` gives no usable grant for ``artefact_id``."""
    request_id = request.request_id
    if artefact_id and request.artefact_id != artefact_id:
        return [("not_approved.other_document", {"request_id": request_id, "doc_number": printable(request.doc_number)})]

    if request.state == pb.REQUEST_STATE_PENDING:
        return [
            (
                "not_approved.pending",
                {"request_id": request_id, "count": len(request.approvals), "required": request.approvals_required},
            )
        ]
    if request.state == pb.REQUEST_STATE_DENIED:
        reason = " ".join(printable(request.deny_reason).split())
        return [
            ("not_approved.denied", {"request_id": request_id, "denied_by": printable(request.denied_by), "reason": reason})
        ]
    if request.state == pb.REQUEST_STATE_APPROVED and request.HasField("grant"):
        grant = request.grant
        if grant.opens_used >= grant.opens_allowed:
            return [
                ("not_approved.used_up", {"request_id": request_id, "used": grant.opens_used, "allowed": grant.opens_allowed})
            ]
        if grant.expires_at <= now:
            return [("not_approved.expired", {"request_id": request_id, "expires_at": LocalTime(grant.expires_at)})]
    return []


def _pending_for_artefact(
    requests: list[pb.AccessRequest], artefact_id: str, viewer: str | None
) -> list[pb.AccessRequest]:
    # An identity with both the viewer and the approver role sees every
    # pending request, so keep only the caller's own.
    return [
        request
        for request in requests
        if request.artefact_id == artefact_id and (viewer is None or request.requester == viewer)
    ]


def explain_not_approved(
    channel: grpc.Channel,
    *,
    request_id: str,
    artefact_id: str | None,
    viewer: str | None,
    now: int | None = None,
) -> list[Hint]:
    """Return hints that say what became of the viewer's requests for the document.

    ``request_id`` is the one given with ``view --request``, or empty.
    ``viewer`` is the caller's certificate CN, used to pick the caller's own
    requests from ListPending. Returns no hint when a lookup fails or finds
    nothing to add.
    """
    current = int(time.time()) if now is None else now
    access = pb_grpc.AccessServiceStub(channel)

    if request_id:
        try:
            request = access.GetRequest(pb.GetRequestRequest(request_id=request_id), timeout=UNARY_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            log.debug("cannot read request %s to explain NOT_APPROVED: %s", request_id, exc.code())
            return []
        return describe_request(request, artefact_id, current)

    if artefact_id is None:
        return []
    try:
        listing = access.ListPending(pb.ListPendingRequest(), timeout=UNARY_TIMEOUT_SECONDS)
    except grpc.RpcError as exc:
        log.debug("cannot list pending requests to explain NOT_APPROVED: %s", exc.code())
        return []

    pending = _pending_for_artefact(list(listing.requests), artefact_id, viewer)
    if not pending:
        # A truncated list may hide a pending request for this document.
        return [] if listing.truncated else [("not_approved.none_pending", {})]

    hints = [hint for request in pending[:MAX_PENDING_SHOWN] for hint in describe_request(request, artefact_id, current)]
    if len(pending) > MAX_PENDING_SHOWN:
        hints.append(("not_approved.more_pending", {"count": len(pending) - MAX_PENDING_SHOWN}))
    return hints
