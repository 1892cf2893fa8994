"""Handover batches: documents out of storage for scanning, and back.

Taking state-secret documents out of storage needs the permission of the
head of the agency or an authorized deputy, and each handover compares the
number of documents and the pages of each against a list giving document
number, sheets, pages and level (UBND tỉnh Đắk Lắk, công văn hướng dẫn số
hóa tài liệu BMNN, tháng 5/2025, applying the Law on Protection of State
Secrets No. 29/2018/QH14).

A batch is opened by the scanner who takes the documents out, permitted by
an approver other than that scanner, and closed when the documents come
back. Every seal that names the batch is tied to one listed document, at most
once. Closing records which documents did not come back or came back
damaged; the reconciliation compares the list with what was sealed and what
was returned.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import Identity
from niemphong.daemon.levels import Level
from niemphong.daemon.store import StateStore, StateTransaction
from niemphong.daemon.store_archive import BatchDocumentRecord, BatchRecord

log = logging.getLogger(__name__)

AWAITING_APPROVAL, OUT, CLOSED = "awaiting_approval", "out", "closed"
MAX_BATCH_DOCUMENTS = 1000

# Per-document outcomes, in the order the minutes explain them. NOT_SECRET is
# a document scanned but not sealed because the classification rules found
# its protection over (expired, declassified). UNCONFIRMED is a document
# sealed whose envelope the client has not confirmed writing, so no digital
# copy is known to exist.
SEALED, PAGES_DIFFER, NOT_SEALED, NEVER_DIGITIZED, NOT_SECRET, UNCONFIRMED = (
    "sealed", "pages_differ", "not_sealed", "never_digitized", "not_secret", "unconfirmed"
)


@dataclass(frozen=True)
class Reconciliation:
    documents_out: int
    documents_back: int
    pages_out: int
    pages_back: int
    documents_sealed: int
    pages_scanned: int
    documents_flagged: int
    documents_not_secret: int
    documents_unconfirmed: int


@dataclass(frozen=True)
class BatchView:
    """A batch with its documents, in list order."""

    batch: BatchRecord
    documents: list[BatchDocumentRecord]

    @property
    def closed(self) -> bool:
        return self.batch.state == CLOSED

    def reconcile(self) -> Reconciliation:
        returned = [doc for doc in self.documents if doc.returned] if self.closed else []
        sealed = [doc for doc in self.documents if doc.artefact_id is not None and not doc.unconfirmed]
        return Reconciliation(
            documents_out=len(self.documents),
            documents_back=len(returned),
            pages_out=sum(doc.pages for doc in self.documents),
            pages_back=sum(doc.pages for doc in returned),
            documents_sealed=len(sealed),
            pages_scanned=sum(doc.pages_scanned for doc in sealed),
            documents_flagged=sum(1 for doc in self.documents if self.flagged(doc)),
            documents_not_secret=sum(1 for doc in self.documents if doc.record_id is not None),
            documents_unconfirmed=sum(1 for doc in self.documents if doc.unconfirmed),
        )

    def flagged(self, document: BatchDocumentRecord) -> bool:
        """Whether the minutes must call out ``document``: missing, unconfirmed, different or damaged."""
        if outcome(document) in (PAGES_DIFFER, NOT_SEALED, UNCONFIRMED):
            return True
        return self.closed and (not document.returned or document.damaged)


def outcome(document: BatchDocumentRecord) -> str:
    """Return what became of one listed document: one of the outcome constants above."""
    if document.level == Level.TUYET_MAT:
        return NEVER_DIGITIZED
    if document.artefact_id is None and document.record_id is None:
        return NOT_SEALED
    if document.unconfirmed:
        return UNCONFIRMED
    if document.pages_scanned != document.pages:
        return PAGES_DIFFER
    return SEALED if document.artefact_id is not None else NOT_SECRET


# Runs inside the transaction that changes a batch; when it raises, the change rolls back.
BeforeCommit = Callable[[BatchView], None]


class Handover:
    """Apply the handover rules against a state store.

    ``open_batch``, ``approve`` and ``close`` take a ``before_commit`` hook,
    which the API uses to make its audit record durable before the change is.

    Args:
        store: where batches and their documents are kept.
        clock: seconds since the epoch; tests pass their own.
    """

    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def open_batch(
        self, scanner: Identity, handed_over_by: str, note: str, documents: Sequence[BatchDocumentRecord],
        before_commit: BeforeCommit | None = None,
    ) -> BatchView:
        """Record a new batch awaiting permission; ``documents`` carry an empty batch id, which is filled in."""
        now = int(self.clock())
        batch = BatchRecord(
            batch_id=uuid.uuid4().hex,
            state=AWAITING_APPROVAL,
            taken_out_by=scanner.name,
            handed_over_by=handed_over_by,
            note=note,
            opened_at=now,
        )
        rows = [_with_batch(document, batch.batch_id) for document in documents]

        view = BatchView(batch, rows)
        with self.store.transaction() as tx:
            tx.insert_batch(batch)
            for row in rows:
                tx.insert_batch_document(row)
            if before_commit is not None:
                before_commit(view)

        log.info(
            "batch %s opened by %s: %d documents, %d pages, handed over by %s",
            batch.batch_id, scanner.name, len(rows), sum(row.pages for row in rows), handed_over_by,
        )
        return view

    def approve(self, approver: Identity, batch_id: str, before_commit: BeforeCommit | None = None) -> BatchView:
        now = int(self.clock())

        with self.store.transaction() as tx:
            batch = _load(tx, batch_id)
            if batch.taken_out_by == approver.name:
                raise ServiceError("SELF_APPROVAL", "nobody may permit their own batch")
            if batch.state != AWAITING_APPROVAL:
                raise _state_conflict(batch, "approve")
            batch = _replace(
                batch, state=OUT, approved_by=approver.name, approved_name=approver.full_name,
                approved_title=approver.title, approved_at=now,
            )
            tx.update_batch(batch)
            view = BatchView(batch, tx.list_batch_documents(batch_id))
            if before_commit is not None:
                before_commit(view)

        log.info("batch %s permitted by %s", batch_id, approver.name)
        return view

    def close(
        self, caller: Identity, batch_id: str, not_returned: Sequence[str], damaged: Sequence[str], note: str,
        before_commit: BeforeCommit | None = None,
    ) -> BatchView:
        now = int(self.clock())

        with self.store.transaction() as tx:
            batch = _load(tx, batch_id)
            if batch.state != OUT:
                raise _state_conflict(batch, "close")
            documents = tx.list_batch_documents(batch_id)
            unconfirmed = [document.doc_number for document in documents if document.unconfirmed]
            if unconfirmed:
                # Closing would send the paper back to storage while no
                # envelope of these documents is known to exist.
                raise ServiceError(
                    "BATCH_UNCONFIRMED",
                    f"batch {batch_id} has documents sealed without a confirmed envelope: {', '.join(unconfirmed)}",
                    {"doc_numbers": ", ".join(unconfirmed), "count": str(len(unconfirmed))},
                )
            listed = {document.doc_number for document in documents}
            for doc_number in (*not_returned, *damaged):
                if doc_number not in listed:
                    raise ServiceError(
                        "NOT_IN_BATCH", f"document {doc_number} is not on the list of batch {batch_id}",
                        {"doc_number": doc_number},
                    )
            for document in documents:
                returned = document.doc_number not in not_returned
                tx.record_return(batch_id, document.doc_number, returned, document.doc_number in damaged)
            batch = _replace(batch, state=CLOSED, closed_by=caller.name, closed_at=now, close_note=note)
            tx.update_batch(batch)
            view = BatchView(batch, tx.list_batch_documents(batch_id))
            if before_commit is not None:
                before_commit(view)

        summary = view.reconcile()
        log_call = log.warning if summary.documents_flagged else log.info
        log_call(
            "batch %s closed by %s: %d of %d documents back, %d sealed, %d flagged",
            batch_id, caller.name, summary.documents_back, summary.documents_out,
            summary.documents_sealed, summary.documents_flagged,
        )
        return view

    def get(self, batch_id: str) -> BatchView:
        with self.store.transaction() as tx:
            batch = _load(tx, batch_id)
            return BatchView(batch, tx.list_batch_documents(batch_id))


def check_batch_seal(
    tx: StateTransaction, batch_id: str, doc_number: str, level: Level | None, issued_on: str
) -> BatchDocumentRecord:
    """Return the listed document a seal is for, or raise why the batch does not allow it.

    ``level`` is the level the scanner stated, which must be the listed one;
    None (a level left to a standing decision) never matches a listed level.
    A document sealed before whose envelope was never confirmed written may
    be sealed again: the new artefact replaces the unconfirmed one (see
    ``record_batch_seal``). A confirmed one raises ALREADY_SEALED.
    """
    batch = _load(tx, batch_id)
    if batch.state == AWAITING_APPROVAL:
        raise ServiceError("BATCH_NOT_APPROVED", f"batch {batch_id} has no permission to leave storage yet")
    if batch.state != OUT:
        raise _state_conflict(batch, "seal into")

    document = tx.get_batch_document(batch_id, doc_number)
    if document is None:
        raise ServiceError(
            "NOT_IN_BATCH", f"document {doc_number} is not on the list of batch {batch_id}", {"doc_number": doc_number}
        )
    stated = int(level) if level is not None else None
    for field, listed, given in (("level", document.level, stated), ("issued_on", document.issued_on, issued_on)):
        if listed != given:
            raise ServiceError(
                "NOT_IN_BATCH", f"document {doc_number}: {field} differs from the batch list",
                {"doc_number": doc_number, "field": field},
            )
    if document.record_id is not None or (document.artefact_id is not None and not document.unconfirmed):
        raise _already_sealed(document)
    return document


def record_batch_seal(
    tx: StateTransaction, batch_id: str, doc_number: str, artefact_id: str, page_count: int, sealed_at: int,
    replaces: str | None = None,
) -> None:
    """Tie a newly registered artefact to its batch document, in the registering transaction.

    ``replaces`` is the unconfirmed artefact the document held when the seal
    began; the caller abandons it in the same transaction. Raises
    ALREADY_SEALED when the document changed since (confirmed, or sealed by
    another call).
    """
    if not tx.record_batch_seal(batch_id, doc_number, artefact_id, page_count, sealed_at, replaces):
        document = tx.get_batch_document(batch_id, doc_number)
        assert document is not None  # check_batch_seal found it in the same batch
        raise _already_sealed(document)


def record_batch_not_secret(
    tx: StateTransaction, batch_id: str, doc_number: str, record_id: str, page_count: int, decided_at: int
) -> None:
    """Tie a not-secret classification record to its batch document, in the recording transaction."""
    if not tx.record_batch_not_secret(batch_id, doc_number, record_id, page_count, decided_at):
        document = tx.get_batch_document(batch_id, doc_number)
        assert document is not None  # check_batch_seal found it in the same batch
        raise _already_sealed(document)


def _already_sealed(document: BatchDocumentRecord) -> ServiceError:
    return ServiceError(
        "ALREADY_SEALED",
        f"document {document.doc_number} of batch {document.batch_id} was sealed or declined as not secret already",
        {"doc_number": document.doc_number, "artefact_id": document.artefact_id or "", "record_id": document.record_id or ""},
    )


def _load(tx: StateTransaction, batch_id: str) -> BatchRecord:
    batch = tx.get_batch(batch_id)
    if batch is None:
        raise ServiceError("BATCH_NOT_FOUND", f"batch {batch_id} not found")
    return batch


def _state_conflict(batch: BatchRecord, action: str) -> ServiceError:
    return ServiceError(
        "BATCH_STATE_CONFLICT", f"cannot {action} batch {batch.batch_id}: it is {batch.state}", {"state": batch.state}
    )


def _replace(batch: BatchRecord, **changes: object) -> BatchRecord:
    values = dict(batch.__dict__)
    values.update(changes)
    return BatchRecord(**values)  # type: ignore[arg-type]


def _with_batch(document: BatchDocumentRecord, batch_id: str) -> BatchDocumentRecord:
    values = dict(document.__dict__)
    values["batch_id"] = batch_id
    return BatchDocumentRecord(**values)  # type: ignore[arg-type]
