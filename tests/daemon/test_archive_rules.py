"""Handover, printing, recipient and incident rules against a real SQLite state file (no token needed)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from niemphong.daemon.access import AccessControl
from niemphong.daemon.config import LevelPolicy
from niemphong.daemon.copies import ISSUED, SPOILED, Copies
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.handover import (
    NEVER_DIGITIZED,
    NOT_SEALED,
    NOT_SECRET,
    PAGES_DIFFER,
    SEALED,
    UNCONFIRMED,
    Handover,
    check_batch_seal,
    outcome,
    record_batch_not_secret,
    record_batch_seal,
)
from niemphong.daemon.identity import Identity
from niemphong.daemon.incidents import Incidents
from niemphong.daemon.levels import Level
from niemphong.daemon.metrics import StateCollector
from niemphong.daemon.store import SCHEMA_VERSION, ArtefactRecord, ClassificationRecord, SqliteStore
from niemphong.daemon.store_archive import BatchDocumentRecord

SCANNER = Identity("scanner", frozenset({"scanner"}))
VIEWER = Identity("viewer", frozenset({"viewer"}))
DEPUTY_1 = Identity("approver-1", frozenset({"approver"}), "Trần Thị Bình", "Phó Chánh Văn phòng")
DEPUTY_2 = Identity("approver-2", frozenset({"approver"}))
HEAD = Identity("head", frozenset({"approver", "head"}), "Nguyễn Văn An", "Giám đốc")

POLICIES = {
    Level.TOI_MAT: LevelPolicy(Level.TOI_MAT, "niemphong-toi-mat", 2, 3600, 1, printing=False),
    Level.MAT: LevelPolicy(Level.MAT, "niemphong-mat", 1, 7200, 3, printing=True),
}
TOI_MAT_ID, MAT_ID = "a" * 32, "b" * 32
NOW = 1_800_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    state = SqliteStore(tmp_path / "state.db")
    for artefact_id, level in ((TOI_MAT_ID, Level.TOI_MAT), (MAT_ID, Level.MAT)):
        with state.transaction() as tx:
            tx.insert_artefact(_artefact(artefact_id, level))
    yield state
    state.close()


def _artefact(artefact_id: str, level: Level, batch_id: str | None = None) -> ArtefactRecord:
    return ArtefactRecord(
        artefact_id=artefact_id, level=int(level), doc_number="12/BB-TCT", issued_on="2024-11-02", title="",
        source_name="", key_id=POLICIES.get(level, POLICIES[Level.MAT]).key_id, key_version=1,
        wrap_algorithm="AES-KWP", plaintext_bytes=10, envelope_bytes=100, envelope_sha256="0" * 64,
        sealed_by="scanner", sealed_at=NOW, batch_id=batch_id,
    )


@pytest.fixture
def access(store: SqliteStore) -> AccessControl:
    return AccessControl(store, POLICIES, clock=lambda: NOW)


def _reason(error: pytest.ExceptionInfo[ServiceError]) -> str:
    return error.value.reason


# Printing grants ------------------------------------------------------------------


def test_request_copies_refused_when_level_forbids_printing(access: AccessControl) -> None:
    with pytest.raises(ServiceError) as error:
        access.request_access(VIEWER, TOI_MAT_ID, "in bản sao", copies=1)

    assert _reason(error) == "PRINTING_NOT_ALLOWED"


def test_grant_carries_copies_and_authorizer(access: AccessControl) -> None:
    request = access.request_access(VIEWER, MAT_ID, "in bản sao", copies=2).request

    view = access.approve(DEPUTY_1, request.request_id)

    assert view.grant is not None
    assert view.grant.copies_allowed == 2
    assert view.grant.authorized_name == "Trần Thị Bình"
    assert view.grant.authorized_title == "Phó Chánh Văn phòng"


def test_print_refused_without_copies_in_grant(access: AccessControl, store: SqliteStore) -> None:
    request = access.request_access(VIEWER, MAT_ID, "xem").request
    access.approve(DEPUTY_1, request.request_id)

    with pytest.raises(ServiceError) as error:
        Copies(store, POLICIES, clock=lambda: NOW).assign(VIEWER, MAT_ID, None)

    assert _reason(error) == "NOT_APPROVED_FOR_PRINTING"


def test_print_refused_once_policy_forbids_printing(access: AccessControl, store: SqliteStore) -> None:
    request = access.request_access(VIEWER, MAT_ID, "in bản sao", copies=2).request
    access.approve(DEPUTY_1, request.request_id)
    no_printing = dict(POLICIES)
    no_printing[Level.MAT] = LevelPolicy(Level.MAT, "niemphong-mat", 1, 7200, 3, printing=False)

    with pytest.raises(ServiceError) as error:
        Copies(store, no_printing, clock=lambda: NOW).assign(VIEWER, MAT_ID, None)

    assert _reason(error) == "PRINTING_NOT_ALLOWED"
    assert Copies(store, POLICIES, clock=lambda: NOW).list(MAT_ID) == []


def test_copy_numbers_exact_under_concurrency(access: AccessControl, store: SqliteStore) -> None:
    copies = Copies(store, POLICIES, clock=lambda: NOW)
    request_ids = []
    for _ in range(4):
        request = access.request_access(VIEWER, MAT_ID, "in bản sao", copies=5).request
        access.approve(DEPUTY_1, request.request_id)
        request_ids.append(request.request_id)
    numbers: list[int] = []
    refusals: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(24)

    def print_one(request_id: str) -> None:
        start.wait()
        try:
            copy, _ = copies.assign(VIEWER, MAT_ID, request_id)
        except ServiceError as error:
            with lock:
                refusals.append(error.reason)
            return
        with lock:
            numbers.append(copy.copy_number)

    # Four grants of five copies each, and 24 attempts: exactly 20 succeed.
    threads = [threading.Thread(target=print_one, args=(request_ids[i % 4],)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(numbers) == list(range(1, 21))
    assert refusals == ["NOT_APPROVED_FOR_PRINTING"] * 4
    assert [copy.copy_number for copy in copies.list(MAT_ID)] == list(range(1, 21))


def test_spoiled_copy_number_not_reused(access: AccessControl, store: SqliteStore) -> None:
    copies = Copies(store, POLICIES, clock=lambda: NOW)
    request = access.request_access(VIEWER, MAT_ID, "in bản sao", copies=3).request
    access.approve(DEPUTY_1, request.request_id)

    first, _ = copies.assign(VIEWER, MAT_ID, None)
    copies.finish(first, SPOILED)
    second, grant = copies.assign(VIEWER, MAT_ID, None)
    copies.finish(second, ISSUED)

    assert (first.copy_number, second.copy_number) == (1, 2)
    assert [copy.state for copy in copies.list(MAT_ID)] == [SPOILED, ISSUED]
    assert grant.copies_made == 2


def test_copy_numbers_separate_per_document(access: AccessControl, store: SqliteStore, tmp_path: Path) -> None:
    other_id = "c" * 32
    with store.transaction() as tx:
        tx.insert_artefact(_artefact(other_id, Level.MAT))
    copies = Copies(store, POLICIES, clock=lambda: NOW)
    for artefact_id in (MAT_ID, other_id):
        request = access.request_access(VIEWER, artefact_id, "in", copies=1).request
        access.approve(DEPUTY_1, request.request_id)

    assert copies.assign(VIEWER, MAT_ID, None)[0].copy_number == 1
    assert copies.assign(VIEWER, other_id, None)[0].copy_number == 1


# Giving a document to another agency ---------------------------------------------------


def test_recipient_request_waits_for_head(access: AccessControl) -> None:
    request = access.request_access(VIEWER, MAT_ID, "cung cấp", recipient="Sở Tư pháp").request

    deputy = access.approve(DEPUTY_1, request.request_id)
    head = access.approve(HEAD, request.request_id)

    assert deputy.request.state == "pending"
    assert deputy.grant is None
    assert deputy.awaiting_head
    assert head.request.state == "approved"
    assert head.grant is not None
    assert not head.awaiting_head
    assert [approval.head for approval in head.approvals] == [False, True]


def test_recipient_request_deputies_alone_never_grant(access: AccessControl) -> None:
    request = access.request_access(VIEWER, TOI_MAT_ID, "cung cấp", recipient="Bộ Công an").request

    access.approve(DEPUTY_1, request.request_id)
    view = access.approve(DEPUTY_2, request.request_id)

    assert view.request.state == "pending"
    assert view.awaiting_head


def test_internal_request_needs_no_head(access: AccessControl) -> None:
    request = access.request_access(VIEWER, MAT_ID, "nội bộ").request

    view = access.approve(DEPUTY_1, request.request_id)

    assert view.request.state == "approved"
    assert view.request.recipient == ""


# Incidents -------------------------------------------------------------------------------


def test_incident_suspends_open_and_print(access: AccessControl, store: SqliteStore) -> None:
    request = access.request_access(VIEWER, MAT_ID, "in", copies=1).request
    access.approve(DEPUTY_1, request.request_id)
    incidents = Incidents(store, clock=lambda: NOW)

    incident = incidents.report(VIEWER, [MAT_ID], "Mất bản in").incident

    assert incident.grants_suspended == 1
    assert incidents.count_open() == 1
    with pytest.raises(ServiceError) as opened:
        access.count_open(VIEWER, MAT_ID, None)
    with pytest.raises(ServiceError) as printed:
        Copies(store, POLICIES, clock=lambda: NOW).assign(VIEWER, MAT_ID, None)
    assert _reason(opened) == "SUSPENDED_BY_INCIDENT"
    assert _reason(printed) == "SUSPENDED_BY_INCIDENT"
    assert access.get_request(VIEWER, request.request_id).suspended


def test_incident_close_lifts_suspension(access: AccessControl, store: SqliteStore) -> None:
    request = access.request_access(VIEWER, MAT_ID, "xem").request
    access.approve(DEPUTY_1, request.request_id)
    incidents = Incidents(store, clock=lambda: NOW)
    incident_id = incidents.report(VIEWER, [MAT_ID], "Nghi lộ").incident.incident_id

    incidents.close(DEPUTY_1, incident_id, "Không có lộ lọt", revoke_grants=False)

    assert access.count_open(VIEWER, MAT_ID, None).opens_used == 1
    assert incidents.count_open() == 0


def test_incident_close_revokes_grants(access: AccessControl, store: SqliteStore) -> None:
    request = access.request_access(VIEWER, MAT_ID, "xem").request
    access.approve(DEPUTY_1, request.request_id)
    incidents = Incidents(store, clock=lambda: NOW)
    incident_id = incidents.report(VIEWER, [MAT_ID], "Mất").incident.incident_id

    closed = incidents.close(DEPUTY_1, incident_id, "Thu hồi", revoke_grants=True)

    assert closed.incident.grants_revoked
    with pytest.raises(ServiceError) as error:
        access.count_open(VIEWER, MAT_ID, None)
    assert _reason(error) == "NOT_APPROVED"


def test_incident_suspends_grants_approved_later(access: AccessControl, store: SqliteStore) -> None:
    Incidents(store, clock=lambda: NOW).report(VIEWER, [MAT_ID], "Mất")
    request = access.request_access(VIEWER, MAT_ID, "xem").request
    access.approve(DEPUTY_1, request.request_id)

    with pytest.raises(ServiceError) as error:
        access.count_open(VIEWER, MAT_ID, None)

    assert _reason(error) == "SUSPENDED_BY_INCIDENT"


def test_incident_leaves_other_documents_alone(access: AccessControl, store: SqliteStore) -> None:
    request = access.request_access(VIEWER, MAT_ID, "xem").request
    access.approve(DEPUTY_1, request.request_id)

    Incidents(store, clock=lambda: NOW).report(VIEWER, [TOI_MAT_ID], "Mất")

    assert access.count_open(VIEWER, MAT_ID, None).opens_used == 1


def test_incident_unknown_artefact_rejected(store: SqliteStore) -> None:
    with pytest.raises(ServiceError) as error:
        Incidents(store, clock=lambda: NOW).report(VIEWER, ["d" * 32], "Mất")

    assert _reason(error) == "ARTEFACT_NOT_FOUND"


def test_incident_closed_twice_rejected(store: SqliteStore) -> None:
    incidents = Incidents(store, clock=lambda: NOW)
    incident_id = incidents.report(VIEWER, [MAT_ID], "Mất").incident.incident_id
    incidents.close(DEPUTY_1, incident_id, "Xong", revoke_grants=False)

    with pytest.raises(ServiceError) as error:
        incidents.close(DEPUTY_1, incident_id, "Xong", revoke_grants=False)

    assert _reason(error) == "INCIDENT_CLOSED"


# Handover batches ------------------------------------------------------------------------


def _document(doc_number: str, level: Level, pages: int) -> BatchDocumentRecord:
    return BatchDocumentRecord(
        batch_id="", doc_number=doc_number, number=0, issued_on="2024-11-02", sheets=1, pages=pages,
        level=int(level), title="", basis="", protected_until="", source_name="",
    )


@pytest.fixture
def handover(store: SqliteStore) -> Handover:
    return Handover(store, clock=lambda: NOW)


def _open(handover: Handover) -> str:
    documents = [
        _document("1/A", Level.MAT, 4), _document("2/B", Level.TOI_MAT, 2),
        _document("3/C", Level.MAT, 1), _document("4/D", Level.TUYET_MAT, 5),
    ]
    return handover.open_batch(SCANNER, "Phạm Thị Dung", "", documents).batch.batch_id


def _seal(store: SqliteStore, batch_id: str, doc_number: str, level: Level, artefact_id: str, pages: int,
          confirmed: bool = True) -> None:
    with store.transaction() as tx:
        listed = check_batch_seal(tx, batch_id, doc_number, level, "2024-11-02")
        tx.insert_artefact(_artefact(artefact_id, level, batch_id))
        record_batch_seal(tx, batch_id, doc_number, artefact_id, pages, NOW, listed.artefact_id)
        if confirmed:
            tx.confirm_artefact(artefact_id, NOW)
            tx.confirm_batch_seal(artefact_id, NOW)


def test_batch_seal_refused_before_permission(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)

    with pytest.raises(ServiceError) as error, store.transaction() as tx:
        check_batch_seal(tx, batch_id, "1/A", Level.MAT, "2024-11-02")

    assert _reason(error) == "BATCH_NOT_APPROVED"


def test_batch_permission_by_opener_refused(handover: Handover) -> None:
    batch_id = _open(handover)
    scanner_and_approver = Identity("scanner", frozenset({"scanner", "approver"}))

    with pytest.raises(ServiceError) as error:
        handover.approve(scanner_and_approver, batch_id)

    assert _reason(error) == "SELF_APPROVAL"


@pytest.mark.parametrize(
    ("doc_number", "level", "issued_on"),
    [("9/Z", Level.MAT, "2024-11-02"), ("1/A", Level.TOI_MAT, "2024-11-02"), ("1/A", Level.MAT, "2024-11-03")],
)
def test_batch_seal_must_match_list(handover: Handover, store: SqliteStore, doc_number: str, level: Level,
                                    issued_on: str) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)

    with pytest.raises(ServiceError) as error, store.transaction() as tx:
        check_batch_seal(tx, batch_id, doc_number, level, issued_on)

    assert _reason(error) == "NOT_IN_BATCH"


def test_batch_document_sealed_once(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)
    _seal(store, batch_id, "1/A", Level.MAT, "e" * 32, 4)

    with pytest.raises(ServiceError) as error:
        _seal(store, batch_id, "1/A", Level.MAT, "f" * 32, 4)

    assert _reason(error) == "ALREADY_SEALED"
    with store.transaction() as tx:
        assert tx.get_artefact("f" * 32) is None


def test_batch_reconciliation_flags_differences(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)
    _seal(store, batch_id, "1/A", Level.MAT, "e" * 32, 4)
    _seal(store, batch_id, "2/B", Level.TOI_MAT, "f" * 32, 3)

    view = handover.close(SCANNER, batch_id, not_returned=["3/C"], damaged=["1/A"], note="")
    summary = view.reconcile()

    assert [outcome(document) for document in view.documents] == [SEALED, PAGES_DIFFER, NOT_SEALED, NEVER_DIGITIZED]
    assert [view.flagged(document) for document in view.documents] == [True, True, True, False]
    assert (summary.documents_out, summary.documents_back) == (4, 3)
    assert (summary.pages_out, summary.pages_back) == (12, 11)
    assert (summary.documents_sealed, summary.pages_scanned) == (2, 7)
    assert summary.documents_flagged == 3


def test_batch_unconfirmed_document_not_digitized(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)
    _seal(store, batch_id, "1/A", Level.MAT, "e" * 32, 4, confirmed=False)

    view = handover.get(batch_id)
    summary = view.reconcile()
    with pytest.raises(ServiceError) as error:
        handover.close(SCANNER, batch_id, not_returned=[], damaged=[], note="")

    assert outcome(view.documents[0]) == UNCONFIRMED
    assert view.flagged(view.documents[0])
    assert (summary.documents_sealed, summary.documents_unconfirmed, summary.pages_scanned) == (0, 1, 0)
    assert _reason(error) == "BATCH_UNCONFIRMED"
    assert handover.get(batch_id).batch.state == "out"


def test_batch_unconfirmed_document_sealed_again(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)
    _seal(store, batch_id, "1/A", Level.MAT, "e" * 32, 4, confirmed=False)

    _seal(store, batch_id, "1/A", Level.MAT, "f" * 32, 4)
    with pytest.raises(ServiceError) as error:
        _seal(store, batch_id, "1/A", Level.MAT, "a" * 32, 4)

    view = handover.get(batch_id)
    assert view.documents[0].artefact_id == "f" * 32
    assert outcome(view.documents[0]) == SEALED
    assert _reason(error) == "ALREADY_SEALED"


def _decline(store: SqliteStore, batch_id: str, doc_number: str, record_id: str, pages: int) -> None:
    with store.transaction() as tx:
        check_batch_seal(tx, batch_id, doc_number, Level.MAT, "2024-11-02")
        tx.insert_classification(ClassificationRecord(
            record_id=record_id, artefact_id=None, outcome="not_secret", code="STAMP_ENDED", rule="d",
            stated_level=int(Level.MAT), level=None, doc_number=doc_number, issued_on="2024-11-02", title="",
            source_name="", basis="", catalog_item="", facts_json="{}", stamp_required=False, protected_until=None,
            protection_source=None, extension_decision=None, explanation="", decided_on="2027-01-01",
            decided_by="scanner", decided_at=NOW,
        ))
        record_batch_not_secret(tx, batch_id, doc_number, record_id, pages, NOW)


def test_batch_not_secret_document_reconciled(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)
    _seal(store, batch_id, "1/A", Level.MAT, "e" * 32, 4)
    _decline(store, batch_id, "3/C", "d" * 32, 1)

    view = handover.close(SCANNER, batch_id, not_returned=[], damaged=[], note="")
    summary = view.reconcile()

    assert [outcome(document) for document in view.documents] == [SEALED, NOT_SEALED, NOT_SECRET, NEVER_DIGITIZED]
    assert [view.flagged(document) for document in view.documents] == [False, True, False, False]
    assert summary.documents_not_secret == 1
    assert (summary.documents_sealed, summary.pages_scanned) == (1, 4)
    assert view.documents[2].record_id == "d" * 32


def test_batch_not_secret_document_handled_once(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)
    _decline(store, batch_id, "3/C", "d" * 32, 1)

    with pytest.raises(ServiceError) as again:
        _decline(store, batch_id, "3/C", "c" * 32, 1)
    with pytest.raises(ServiceError) as sealed:
        _seal(store, batch_id, "3/C", Level.MAT, "e" * 32, 1)

    assert _reason(again) == "ALREADY_SEALED"
    assert _reason(sealed) == "ALREADY_SEALED"


def test_batch_seal_without_stated_level_rejected(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)

    with pytest.raises(ServiceError) as error, store.transaction() as tx:
        check_batch_seal(tx, batch_id, "1/A", None, "2024-11-02")

    assert _reason(error) == "NOT_IN_BATCH"
    assert error.value.metadata["field"] == "level"


def test_batch_close_unknown_document_rejected(handover: Handover) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)

    with pytest.raises(ServiceError) as error:
        handover.close(SCANNER, batch_id, not_returned=["9/Z"], damaged=[], note="")

    assert _reason(error) == "NOT_IN_BATCH"


def test_batch_closed_refuses_seal_and_close(handover: Handover, store: SqliteStore) -> None:
    batch_id = _open(handover)
    handover.approve(DEPUTY_1, batch_id)
    handover.close(SCANNER, batch_id, not_returned=[], damaged=[], note="")

    with pytest.raises(ServiceError) as sealing, store.transaction() as tx:
        check_batch_seal(tx, batch_id, "1/A", Level.MAT, "2024-11-02")
    with pytest.raises(ServiceError) as closing:
        handover.close(SCANNER, batch_id, not_returned=[], damaged=[], note="")

    assert _reason(sealing) == "BATCH_STATE_CONFLICT"
    assert _reason(closing) == "BATCH_STATE_CONFLICT"


def test_batch_unknown_rejected(handover: Handover) -> None:
    with pytest.raises(ServiceError) as error:
        handover.get("0" * 32)

    assert _reason(error) == "BATCH_NOT_FOUND"


# Schema migration ---------------------------------------------------------------------


def test_store_upgrades_version_1_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        from niemphong.daemon.store import _SCHEMA

        db.executescript(_SCHEMA)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.execute(
            "INSERT INTO artefacts VALUES (?, 1, '1/A', '2024-01-01', '', '', 'k', 1, 'AES-KWP', 1, 1, ?, 's', 1)",
            ("a" * 32, "0" * 64),
        )
    db.close()

    store = SqliteStore(path)
    with store.transaction() as tx:
        artefact = tx.get_artefact("a" * 32)
        version = tx._db.execute("SELECT version FROM schema_version").fetchone()[0]  # type: ignore[attr-defined]
    store.close()

    assert version == SCHEMA_VERSION == 4
    assert artefact is not None
    assert artefact.batch_id is None
    assert artefact.page_count == 0


def test_incident_gauge_follows_shared_store(store: SqliteStore, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(StateCollector(
        lambda: [], lambda: [], {}, open_incidents=Incidents(store, clock=lambda: NOW).count_open,
    ))
    # A second daemon on the same state file reports the incident.
    other = SqliteStore(tmp_path / "state.db")
    try:
        incident_id = Incidents(other, clock=lambda: NOW).report(VIEWER, [MAT_ID], "Nghi lộ").incident.incident_id

        assert registry.get_sample_value("niemphong_incidents_open") == 1

        Incidents(other, clock=lambda: NOW).close(DEPUTY_1, incident_id, "Không có lộ lọt", revoke_grants=False)
    finally:
        other.close()

    assert registry.get_sample_value("niemphong_incidents_open") == 0


def test_incident_gauge_absent_when_store_fails(store: SqliteStore) -> None:
    def broken() -> int:
        raise sqlite3.OperationalError("database is locked")

    registry = CollectorRegistry()
    registry.register(StateCollector(lambda: [], lambda: [], {}, open_incidents=broken))

    assert registry.get_sample_value("niemphong_incidents_open") is None
