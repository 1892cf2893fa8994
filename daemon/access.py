"""Access rules: requests, approvals, denials and grants.

A viewer asks to open one artefact for a stated purpose. The request is
approved once enough distinct approvers (set per level) have approved it;
nobody approves their own request, and a second approval by the same person
is rejected rather than counted. Approval creates a grant for that viewer and
that artefact only, limited in time and in number of opens, and in number
of printed copies when the request asked for copies and the level's policy
allows printing. A request that gives the document to another agency names
the recipient and needs the head of the agency among its approvers (Articles
15 and 16 of the Law on Protection of State Secrets No. 29/2018/QH14). While
an incident on the artefact is open, its grants are suspended. Every rule
runs inside one state transaction, so concurrent approvals cannot produce two
grants or lose an approval.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from niemphong.daemon.errors import ServiceError
from niemphong.daemon.config import LevelPolicy
from niemphong.daemon.identity import Identity
from niemphong.daemon.levels import Level
from niemphong.daemon.store import (
    ApprovalRecord,
    ArtefactRecord,
    GrantRecord,
    RequestRecord,
    StateStore,
    StateTransaction,
)

log = logging.getLogger(__name__)

PENDING, APPROVED, DENIED = "pending", "approved", "denied"
MAX_LISTED_REQUESTS = 1000
# A viewer with this many requests still pending must wait for decisions
# before asking again, so one viewer cannot bury other requests.
MAX_PENDING_PER_VIEWER = 50


@dataclass(frozen=True)
class RequestView:
    """A request with what a reader needs to judge it."""

    request: RequestRecord
    artefact: ArtefactRecord
    approvals: list[ApprovalRecord]
    grant: GrantRecord | None
    suspended: bool = False

    @property
    def awaiting_head(self) -> bool:
        """Whether the request names a recipient and no head of the agency has approved it yet."""
        return bool(self.request.recipient) and self.request.state == PENDING and not _has_head(self.approvals)


# Runs inside the transaction that changes a request; when it raises, the change rolls back.
BeforeCommit = Callable[[RequestView], None]


class AccessControl:
    """Apply the access rules against a state store.

    Args:
        store: where requests, approvals and grants are kept.
        policies: the key policy of each sealable level.
        clock: seconds since the epoch; tests pass their own.
    """

    def __init__(
        self,
        store: StateStore,
        policies: Mapping[Level, LevelPolicy],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policies = policies
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock())

    def request_access(
        self, viewer: Identity, artefact_id: str, purpose: str, copies: int = 0, recipient: str = "",
        before_commit: BeforeCommit | None = None,
    ) -> RequestView:
        """Record a pending request of ``viewer`` to open ``artefact_id``.

        ``before_commit`` runs inside the transaction with the new request;
        when it raises, nothing is recorded. ``approve`` and ``deny`` take it too.
        """
        now = self._now()

        with self.store.transaction() as tx:
            artefact = tx.get_artefact(artefact_id)
            if artefact is None:
                raise ServiceError("ARTEFACT_NOT_FOUND", f"artefact {artefact_id} is not in the registry")
            check_not_abandoned(artefact)
            pending = tx.list_requests(PENDING, viewer.name, MAX_PENDING_PER_VIEWER)
            if len(pending) >= MAX_PENDING_PER_VIEWER:
                raise ServiceError(
                    "TOO_MANY_PENDING",
                    f"{viewer.name} already has {MAX_PENDING_PER_VIEWER} pending requests",
                    {"max": str(MAX_PENDING_PER_VIEWER)},
                )
            policy = self.policies[Level(artefact.level)]
            if copies and not policy.printing:
                raise ServiceError(
                    "PRINTING_NOT_ALLOWED", f"the policy of level {Level(artefact.level).name} allows no printing",
                    {"level": Level(artefact.level).config_name},
                )
            request = RequestRecord(
                request_id=uuid.uuid4().hex,
                artefact_id=artefact_id,
                requester=viewer.name,
                purpose=purpose,
                state=PENDING,
                approvals_required=policy.approvals,
                created_at=now,
                copies=copies,
                recipient=recipient,
            )
            tx.insert_request(request)
            view = RequestView(request, artefact, [], None)
            if before_commit is not None:
                before_commit(view)

        log.info(
            "access request %s by %s for artefact %s (%s), %d approvals needed",
            request.request_id, viewer.name, artefact_id, Level(artefact.level).name, policy.approvals,
        )
        return view

    def approve(self, approver: Identity, request_id: str, before_commit: BeforeCommit | None = None) -> RequestView:
        now = self._now()

        with self.store.transaction() as tx:
            request, artefact = self._load(tx, request_id)
            check_not_abandoned(artefact)
            if request.requester == approver.name:
                raise ServiceError("SELF_APPROVAL", "nobody may approve their own request")
            if request.state != PENDING:
                raise ServiceError("REQUEST_NOT_PENDING", f"request is already {request.state}", {"state": request.state})
            if not tx.insert_approval(ApprovalRecord(request_id, approver.name, now, approver.has_role("head"))):
                raise ServiceError("ALREADY_APPROVED", f"{approver.name} has already approved this request")

            approvals = tx.list_approvals(request_id)
            grant = None
            # Giving a document to another agency needs the head, not only deputies.
            head_ok = not request.recipient or _has_head(approvals)
            if len(approvals) >= request.approvals_required and head_ok:
                request = _replace_state(request, APPROVED, now)
                tx.update_request(request)
                policy = self.policies[Level(artefact.level)]
                grant = GrantRecord(
                    request_id=request_id,
                    artefact_id=request.artefact_id,
                    viewer=request.requester,
                    created_at=now,
                    expires_at=now + policy.grant_seconds,
                    opens_allowed=policy.grant_opens,
                    copies_allowed=request.copies,
                    authorized_by=approver.name,
                    authorized_name=approver.full_name,
                    authorized_title=approver.title,
                )
                tx.insert_grant(grant)
            view = RequestView(request, artefact, approvals, grant)
            if before_commit is not None:
                before_commit(view)

        log.info(
            "request %s approved by %s (%d of %d)%s",
            request_id, approver.name, len(approvals), request.approvals_required,
            "; grant issued" if grant else "",
        )
        return view

    def deny(
        self, approver: Identity, request_id: str, reason: str, before_commit: BeforeCommit | None = None,
    ) -> RequestView:
        now = self._now()

        with self.store.transaction() as tx:
            request, artefact = self._load(tx, request_id)
            if request.requester == approver.name:
                raise ServiceError("SELF_APPROVAL", "nobody may decide their own request")
            if request.state != PENDING:
                raise ServiceError("REQUEST_NOT_PENDING", f"request is already {request.state}", {"state": request.state})
            request = _replace_state(request, DENIED, now, denied_by=approver.name, deny_reason=reason)
            tx.update_request(request)
            view = RequestView(request, artefact, tx.list_approvals(request_id), None)
            if before_commit is not None:
                before_commit(view)

        log.info("request %s denied by %s", request_id, approver.name)
        return view

    def list_pending(self, caller: Identity) -> tuple[list[RequestView], bool]:
        """Return the oldest pending requests the caller may see, and whether more exist."""
        requester = None if _decides(caller) else caller.name

        with self.store.transaction() as tx:
            requests = tx.list_requests(PENDING, requester, MAX_LISTED_REQUESTS + 1)
            views = []
            for request in requests[:MAX_LISTED_REQUESTS]:
                artefact = tx.get_artefact(request.artefact_id)
                assert artefact is not None  # a foreign key guarantees it
                views.append(RequestView(request, artefact, tx.list_approvals(request.request_id), None))
        return views, len(requests) > MAX_LISTED_REQUESTS

    def get_request(self, caller: Identity, request_id: str) -> RequestView:
        with self.store.transaction() as tx:
            request, artefact = self._load(tx, request_id)
            if not _decides(caller) and request.requester != caller.name:
                raise ServiceError("NOT_YOUR_REQUEST", "viewers may only see their own requests")
            suspended = bool(tx.open_incidents_for(request.artefact_id))
            return RequestView(request, artefact, tx.list_approvals(request_id), tx.get_grant(request_id), suspended)

    def find_grant(self, viewer: Identity, artefact_id: str, request_id: str | None) -> GrantRecord:
        """Return a usable grant of ``viewer`` for ``artefact_id`` without counting an open."""
        with self.store.transaction() as tx:
            return self._usable_grant(tx, viewer, artefact_id, request_id, self._now())

    def count_open(
        self,
        viewer: Identity,
        artefact_id: str,
        request_id: str | None,
        before_commit: Callable[[GrantRecord], None] | None = None,
    ) -> GrantRecord:
        """Count one open against a usable grant, atomically, and return the grant after it.

        ``before_commit`` runs inside the transaction with the updated grant;
        when it raises, the open is not counted.
        """
        with self.store.transaction() as tx:
            grant = self._usable_grant(tx, viewer, artefact_id, request_id, self._now())
            tx.count_open(grant.request_id)
            updated = tx.get_grant(grant.request_id)
            assert updated is not None
            if before_commit is not None:
                before_commit(updated)
        return updated

    @staticmethod
    def _usable_grant(
        tx: StateTransaction, viewer: Identity, artefact_id: str, request_id: str | None, now: int
    ) -> GrantRecord:
        grants = [
            grant for grant in tx.list_grants(artefact_id, viewer.name)
            if grant.usable_at(now) and (not request_id or grant.request_id == request_id)
        ]
        if not grants:
            raise ServiceError(
                "NOT_APPROVED",
                "no approved, unexpired grant with opens left for this viewer and artefact",
            )
        check_not_suspended(tx, artefact_id)
        return grants[0]

    @staticmethod
    def _load(tx: StateTransaction, request_id: str) -> tuple[RequestRecord, ArtefactRecord]:
        request = tx.get_request(request_id)
        if request is None:
            raise ServiceError("REQUEST_NOT_FOUND", f"request {request_id} not found")
        artefact = tx.get_artefact(request.artefact_id)
        assert artefact is not None  # a foreign key guarantees it
        return request, artefact


def check_not_abandoned(artefact: ArtefactRecord) -> None:
    """Raise ARTEFACT_ABANDONED when the envelope of ``artefact`` was never kept.

    Such an artefact stays in the registry for the record, but any copy of
    its envelope is not the document's live envelope, so it is never opened,
    printed or granted.
    """
    if artefact.abandoned:
        raise ServiceError(
            "ARTEFACT_ABANDONED",
            f"artefact {artefact.artefact_id} was abandoned ({artefact.abandon_reason}): its envelope was never kept",
            {"artefact_id": artefact.artefact_id},
        )


def check_not_suspended(tx: StateTransaction, artefact_id: str) -> None:
    """Raise SUSPENDED_BY_INCIDENT while an open incident names ``artefact_id``."""
    incidents = tx.open_incidents_for(artefact_id)
    if incidents:
        raise ServiceError(
            "SUSPENDED_BY_INCIDENT", f"grants on artefact {artefact_id} are suspended by incident {incidents[0]}",
            {"incident_id": incidents[0]},
        )


def _has_head(approvals: list[ApprovalRecord]) -> bool:
    return any(approval.head for approval in approvals)


def _decides(caller: Identity) -> bool:
    return caller.has_role("approver") or caller.has_role("head")


def _replace_state(
    request: RequestRecord, state: str, now: int, denied_by: str | None = None, deny_reason: str | None = None
) -> RequestRecord:
    return RequestRecord(
        request_id=request.request_id,
        artefact_id=request.artefact_id,
        requester=request.requester,
        purpose=request.purpose,
        state=state,
        approvals_required=request.approvals_required,
        created_at=request.created_at,
        decided_at=now,
        denied_by=denied_by,
        deny_reason=deny_reason,
        copies=request.copies,
        recipient=request.recipient,
    )
