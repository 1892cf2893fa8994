"""Access rules against a real state store on each backend (no token needed)."""

from __future__ import annotations

import threading

import pytest
from conftest import StoreFactory

from niemphong.daemon.access import AccessControl
from niemphong.daemon.config import LevelPolicy
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import Identity
from niemphong.daemon.levels import Level
from niemphong.daemon.store import ArtefactRecord

VIEWER = Identity("viewer", frozenset({"viewer"}))
OTHER_VIEWER = Identity("viewer-2", frozenset({"viewer"}))
APPROVER_1 = Identity("approver-1", frozenset({"approver"}))
APPROVER_2 = Identity("approver-2", frozenset({"approver"}))
APPROVER_3 = Identity("approver-3", frozenset({"approver"}))
VIEWER_AND_APPROVER = Identity("lead", frozenset({"viewer", "approver"}))

POLICIES = {
    Level.TOI_MAT: LevelPolicy(Level.TOI_MAT, "niemphong-toi-mat", approvals=2, grant_seconds=3600, grant_opens=1),
    Level.MAT: LevelPolicy(Level.MAT, "niemphong-mat", approvals=1, grant_seconds=7200, grant_opens=3),
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def access(store_factory: StoreFactory, clock: Clock) -> AccessControl:
    store = store_factory.open()
    control = AccessControl(store, POLICIES, clock=clock)
    for artefact_id, level in (("a" * 32, Level.TOI_MAT), ("b" * 32, Level.MAT)):
        with store.transaction() as tx:
            tx.insert_artefact(ArtefactRecord(
                artefact_id=artefact_id, level=int(level), doc_number="12/BB-TCT", issued_on="2024-11-02",
                title="", source_name="", key_id=POLICIES[level].key_id, key_version=1,
                wrap_algorithm="AES-KWP", plaintext_bytes=10, envelope_bytes=100, envelope_sha256="0" * 64,
                sealed_by="scanner", sealed_at=int(clock.now),
            ))
    return control


TOI_MAT_ID, MAT_ID = "a" * 32, "b" * 32


def reason(excinfo: pytest.ExceptionInfo[ServiceError]) -> str:
    return excinfo.value.reason


def test_request_unknown_artefact_not_found(access: AccessControl) -> None:
    with pytest.raises(ServiceError) as excinfo:
        access.request_access(VIEWER, "c" * 32, "kiểm tra")
    assert reason(excinfo) == "ARTEFACT_NOT_FOUND"


def test_request_needs_level_approvals(access: AccessControl) -> None:
    assert access.request_access(VIEWER, TOI_MAT_ID, "x").request.approvals_required == 2
    assert access.request_access(VIEWER, MAT_ID, "x").request.approvals_required == 1


def test_mat_one_approval_grants(access: AccessControl, clock: Clock) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id

    view = access.approve(APPROVER_1, request_id)

    assert view.request.state == "approved"
    assert view.grant is not None
    assert view.grant.viewer == "viewer"
    assert view.grant.opens_allowed == 3
    assert view.grant.expires_at == int(clock.now) + 7200


def test_toi_mat_needs_two_distinct_approvers(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, TOI_MAT_ID, "x").request.request_id

    first = access.approve(APPROVER_1, request_id)
    assert first.request.state == "pending"
    assert first.grant is None
    with pytest.raises(ServiceError):
        access.find_grant(VIEWER, TOI_MAT_ID, None)

    second = access.approve(APPROVER_2, request_id)
    assert second.request.state == "approved"
    assert second.grant is not None


def test_approve_same_approver_twice_counts_once(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, TOI_MAT_ID, "x").request.request_id
    access.approve(APPROVER_1, request_id)

    with pytest.raises(ServiceError) as excinfo:
        access.approve(APPROVER_1, request_id)

    assert reason(excinfo) == "ALREADY_APPROVED"
    view = access.get_request(APPROVER_2, request_id)
    assert view.request.state == "pending"
    assert [a.approver for a in view.approvals] == ["approver-1"]


def test_approve_own_request_rejected(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER_AND_APPROVER, MAT_ID, "x").request.request_id

    with pytest.raises(ServiceError) as excinfo:
        access.approve(VIEWER_AND_APPROVER, request_id)

    assert reason(excinfo) == "SELF_APPROVAL"
    assert access.get_request(APPROVER_1, request_id).approvals == []


def test_deny_then_approve_rejected(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id
    denied = access.deny(APPROVER_1, request_id, "không đủ căn cứ")
    assert denied.request.state == "denied"
    assert denied.request.deny_reason == "không đủ căn cứ"

    with pytest.raises(ServiceError) as excinfo:
        access.approve(APPROVER_2, request_id)

    assert reason(excinfo) == "REQUEST_NOT_PENDING"
    with pytest.raises(ServiceError):
        access.find_grant(VIEWER, MAT_ID, None)


def test_grant_other_viewer_not_usable(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id
    access.approve(APPROVER_1, request_id)

    with pytest.raises(ServiceError) as excinfo:
        access.find_grant(OTHER_VIEWER, MAT_ID, None)

    assert reason(excinfo) == "NOT_APPROVED"


def test_grant_other_artefact_not_usable(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id
    access.approve(APPROVER_1, request_id)

    with pytest.raises(ServiceError):
        access.find_grant(VIEWER, TOI_MAT_ID, None)


def test_grant_used_up_after_allowed_opens(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id
    access.approve(APPROVER_1, request_id)

    for used in (1, 2, 3):
        assert access.count_open(VIEWER, MAT_ID, None).opens_used == used

    with pytest.raises(ServiceError) as excinfo:
        access.count_open(VIEWER, MAT_ID, None)
    assert reason(excinfo) == "NOT_APPROVED"


def test_grant_expired_at_boundary(access: AccessControl, clock: Clock) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id
    grant = access.approve(APPROVER_1, request_id).grant
    assert grant is not None

    clock.now = grant.expires_at - 1
    access.find_grant(VIEWER, MAT_ID, None)
    clock.now = grant.expires_at
    with pytest.raises(ServiceError) as excinfo:
        access.find_grant(VIEWER, MAT_ID, None)
    assert reason(excinfo) == "NOT_APPROVED"


def test_viewer_sees_only_own_requests(access: AccessControl) -> None:
    mine = access.request_access(VIEWER, MAT_ID, "x").request.request_id
    theirs = access.request_access(OTHER_VIEWER, MAT_ID, "y").request.request_id

    assert [v.request.request_id for v in access.list_pending(VIEWER)[0]] == [mine]
    assert {v.request.request_id for v in access.list_pending(APPROVER_1)[0]} == {mine, theirs}
    with pytest.raises(ServiceError) as excinfo:
        access.get_request(VIEWER, theirs)
    assert reason(excinfo) == "NOT_YOUR_REQUEST"


def test_concurrent_approvals_issue_one_grant(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, TOI_MAT_ID, "x").request.request_id
    approvers = [APPROVER_1, APPROVER_2, APPROVER_3]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(approvers))

    def approve(approver: Identity) -> None:
        barrier.wait()
        try:
            access.approve(approver, request_id)
            outcomes.append("ok")
        except ServiceError as error:
            outcomes.append(error.reason)

    threads = [threading.Thread(target=approve, args=(a,)) for a in approvers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["REQUEST_NOT_PENDING", "ok", "ok"]
    view = access.get_request(APPROVER_1, request_id)
    assert view.request.state == "approved"
    assert len(view.approvals) == 2
    assert view.grant is not None


def test_request_limit_per_viewer(access: AccessControl) -> None:
    from niemphong.daemon.access import MAX_PENDING_PER_VIEWER

    for _ in range(MAX_PENDING_PER_VIEWER):
        access.request_access(VIEWER, MAT_ID, "x")

    with pytest.raises(ServiceError) as excinfo:
        access.request_access(VIEWER, MAT_ID, "x")

    assert reason(excinfo) == "TOO_MANY_PENDING"
    access.request_access(OTHER_VIEWER, MAT_ID, "y")


def test_list_pending_reports_truncation(access: AccessControl, monkeypatch: pytest.MonkeyPatch) -> None:
    import niemphong.daemon.access as access_module

    monkeypatch.setattr(access_module, "MAX_LISTED_REQUESTS", 2)
    for viewer in (VIEWER, OTHER_VIEWER, VIEWER_AND_APPROVER):
        access.request_access(viewer, MAT_ID, "x")

    views, truncated = access.list_pending(APPROVER_1)

    assert len(views) == 2
    assert truncated
    assert access.list_pending(VIEWER)[1] is False



class RecordFailed(Exception):
    """Stands for an audit record that could not be made durable."""


def fail_record(view: object) -> None:
    raise RecordFailed


def test_request_not_stored_when_record_fails(access: AccessControl) -> None:
    with pytest.raises(RecordFailed):
        access.request_access(VIEWER, MAT_ID, "x", before_commit=fail_record)

    assert access.list_pending(VIEWER) == ([], False)


def test_approval_rolled_back_when_record_fails(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id

    with pytest.raises(RecordFailed):
        access.approve(APPROVER_1, request_id, before_commit=fail_record)
    view = access.get_request(APPROVER_1, request_id)

    assert view.request.state == "pending"
    assert view.approvals == []
    assert view.grant is None


def test_denial_rolled_back_when_record_fails(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id

    with pytest.raises(RecordFailed):
        access.deny(APPROVER_1, request_id, "không cần", before_commit=fail_record)

    assert access.get_request(APPROVER_1, request_id).request.state == "pending"


def test_open_not_counted_when_record_fails(access: AccessControl) -> None:
    request_id = access.request_access(VIEWER, MAT_ID, "x").request.request_id
    access.approve(APPROVER_1, request_id)

    with pytest.raises(RecordFailed):
        access.count_open(VIEWER, MAT_ID, request_id, before_commit=fail_record)
    grant = access.find_grant(VIEWER, MAT_ID, request_id)

    assert grant.opens_used == 0
