"""HandoverService: open, permit, close and show handover batches, and render their minutes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from niemphong.daemon import validation
from niemphong.daemon.errors import ServiceError, abort
from niemphong.daemon.handover import (
    AWAITING_APPROVAL,
    CLOSED,
    MAX_BATCH_DOCUMENTS,
    NEVER_DIGITIZED,
    NOT_SEALED,
    NOT_SECRET,
    OUT,
    PAGES_DIFFER,
    SEALED,
    UNCONFIRMED,
    BatchView,
    Handover,
    outcome,
)
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.identity import CallContext
from niemphong.daemon.levels import Level
from niemphong.daemon.minutes_pdf import render_minutes
from niemphong.daemon.pdf_fonts import FontUnavailable
from niemphong.daemon.store_archive import BatchDocumentRecord
from niemphong.v1 import archive_pb2 as apb
from niemphong.v1 import archive_pb2_grpc as apb_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")

_STATES = {
    AWAITING_APPROVAL: apb.BATCH_STATE_AWAITING_APPROVAL,
    OUT: apb.BATCH_STATE_OUT,
    CLOSED: apb.BATCH_STATE_CLOSED,
}
_OUTCOMES = {
    SEALED: apb.DOCUMENT_OUTCOME_SEALED,
    PAGES_DIFFER: apb.DOCUMENT_OUTCOME_PAGES_DIFFER,
    NOT_SEALED: apb.DOCUMENT_OUTCOME_NOT_SEALED,
    NEVER_DIGITIZED: apb.DOCUMENT_OUTCOME_NEVER_DIGITIZED,
    NOT_SECRET: apb.DOCUMENT_OUTCOME_NOT_SECRET,
    UNCONFIRMED: apb.DOCUMENT_OUTCOME_UNCONFIRMED,
}


def batch_to_proto(view: BatchView) -> apb.Batch:
    batch = view.batch
    summary = view.reconcile()
    return apb.Batch(
        batch_id=batch.batch_id,
        state=_STATES[batch.state],
        taken_out_by=batch.taken_out_by,
        handed_over_by=batch.handed_over_by,
        note=batch.note,
        opened_at=batch.opened_at,
        approved_by=batch.approved_by or "",
        approved_name=batch.approved_name,
        approved_title=batch.approved_title,
        approved_at=batch.approved_at or 0,
        closed_by=batch.closed_by or "",
        closed_at=batch.closed_at or 0,
        close_note=batch.close_note or "",
        documents=[
            apb.BatchDocumentStatus(
                document=apb.BatchDocument(
                    number=document.number,
                    doc_number=document.doc_number,
                    issued_on=document.issued_on,
                    sheets=document.sheets,
                    pages=document.pages,
                    level=document.level,  # type: ignore[arg-type]
                    title=document.title,
                    basis=document.basis,
                    protected_until=document.protected_until,
                    source_name=document.source_name,
                ),
                artefact_id=document.artefact_id or "",
                pages_scanned=document.pages_scanned,
                sealed_at=document.sealed_at or 0,
                outcome=_OUTCOMES[outcome(document)],
                returned=document.returned,
                damaged=document.damaged,
                record_id=document.record_id or "",
            )
            for document in view.documents
        ],
        reconciliation=apb.Reconciliation(**summary.__dict__),
    )


def _check_document(index: int, document: apb.BatchDocument) -> BatchDocumentRecord:
    level = Level.from_proto(document.level)
    if level is None:
        raise ServiceError("LEVEL_MISSING", f"document {index} has no level or an unknown one", {"row": str(index)})
    protected_until = document.protected_until
    if protected_until:
        protected_until = validation.iso_date("protected_until", protected_until)
    return BatchDocumentRecord(
        batch_id="",
        doc_number=validation.text("doc_number", document.doc_number, validation.MAX_DOC_NUMBER),
        number=document.number or index,
        issued_on=validation.iso_date("issued_on", document.issued_on),
        sheets=validation.bounded("sheets", document.sheets, validation.MAX_PAGES),
        pages=validation.bounded("pages", document.pages, validation.MAX_PAGES),
        level=int(level),
        title=validation.text("title", document.title, validation.MAX_TITLE, required=False),
        basis=validation.text("basis", document.basis, validation.MAX_TITLE, required=False),
        protected_until=protected_until,
        source_name=validation.source_name(document.source_name),
    )


def _doc_numbers(field: str, values: Iterator[str] | list[str]) -> list[str]:
    return [validation.text(field, value, validation.MAX_DOC_NUMBER) for value in values]


class HandoverServicer(apb_grpc.HandoverServiceServicer):
    def __init__(
        self, handover: Handover, audit: AuditTrail, chunk_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.handover = handover
        self.audit = audit
        self.chunk_bytes = chunk_bytes
        self.clock = clock

    def _record(self, context: CallContext) -> Callable[[BatchView], None]:
        def record(view: BatchView) -> None:
            # Fail closed: without a durable audit record the change rolls back.
            context.facts.update(batch_id=view.batch.batch_id, documents=len(view.documents))
            self.audit.record_decision(context)

        return record

    def _run(self, context: CallContext, operation: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except ServiceError as error:
            context.facts["reason"] = error.reason
            log.warning(
                "request %s %s by %s refused: %s (%s)",
                context.request_id, operation, context.identity.name, error.reason, error.message,
            )
            abort(context, error)
            raise AssertionError("unreachable") from None

    def OpenBatch(self, request: apb.OpenBatchRequest, context: CallContext) -> apb.Batch:
        def action() -> apb.Batch:
            handed_over_by = validation.text("handed_over_by", request.handed_over_by, validation.MAX_PERSON)
            note = validation.text("note", request.note, validation.MAX_REASON, required=False)
            if not 1 <= len(request.documents) <= MAX_BATCH_DOCUMENTS:
                raise ServiceError(
                    "INVALID_FIELD", f"a batch lists 1 to {MAX_BATCH_DOCUMENTS} documents",
                    {"field": "documents", "max": str(MAX_BATCH_DOCUMENTS)},
                )
            documents = [_check_document(index, document) for index, document in enumerate(request.documents, 1)]
            seen: set[str] = set()
            for document in documents:
                if document.doc_number in seen:
                    raise ServiceError(
                        "INVALID_FIELD", f"document {document.doc_number} is listed twice",
                        {"field": "doc_number", "doc_number": document.doc_number},
                    )
                seen.add(document.doc_number)

            view = self.handover.open_batch(context.identity, handed_over_by, note, documents, self._record(context))
            return batch_to_proto(view)

        return self._run(context, "open batch", action)

    def ApproveBatch(self, request: apb.ApproveBatchRequest, context: CallContext) -> apb.Batch:
        def action() -> apb.Batch:
            batch_id = validation.hex_id("batch_id", request.batch_id)
            context.facts["batch_id"] = batch_id
            return batch_to_proto(self.handover.approve(context.identity, batch_id, self._record(context)))

        return self._run(context, "approve batch", action)

    def CloseBatch(self, request: apb.CloseBatchRequest, context: CallContext) -> apb.Batch:
        def action() -> apb.Batch:
            batch_id = validation.hex_id("batch_id", request.batch_id)
            context.facts["batch_id"] = batch_id
            not_returned = _doc_numbers("not_returned", list(request.not_returned))
            damaged = _doc_numbers("damaged", list(request.damaged))
            note = validation.text("note", request.note, validation.MAX_REASON, required=False)
            record = self._record(context)

            def record_close(closing: BatchView) -> None:
                context.facts["documents_flagged"] = closing.reconcile().documents_flagged
                record(closing)

            view = self.handover.close(context.identity, batch_id, not_returned, damaged, note, record_close)
            return batch_to_proto(view)

        return self._run(context, "close batch", action)

    def GetBatch(self, request: apb.GetBatchRequest, context: CallContext) -> apb.Batch:
        def action() -> apb.Batch:
            batch_id = validation.hex_id("batch_id", request.batch_id)
            context.facts["batch_id"] = batch_id
            return batch_to_proto(self.handover.get(batch_id))

        return self._run(context, "show batch", action)

    def _stamp_required(self, view: BatchView) -> frozenset[str]:
        """Return the record ids of the batch's not-secret documents whose decision requires the "Giải mật" stamp."""
        records = [document.record_id for document in view.documents if document.record_id is not None]
        with self.handover.store.transaction() as tx:
            decisions = [tx.get_classification_record(record_id) for record_id in records]
        return frozenset(record.record_id for record in decisions if record is not None and record.stamp_required)

    def GetMinutes(self, request: apb.GetMinutesRequest, context: CallContext) -> Iterator[apb.MinutesChunk]:
        def action() -> bytes:
            batch_id = validation.hex_id("batch_id", request.batch_id)
            context.facts["batch_id"] = batch_id
            view = self.handover.get(batch_id)
            stamped = self._stamp_required(view)
            try:
                return render_minutes(view, int(self.clock()), stamp_required=stamped)
            except FontUnavailable as exc:
                log.error("request %s cannot render minutes: %s", context.request_id, exc)
                raise ServiceError("RENDERER_UNAVAILABLE", "the PDF font is not installed on the daemon host") from exc

        pdf = self._run(context, "render minutes", action)
        context.facts["pdf_bytes"] = len(pdf)
        for start in range(0, len(pdf), self.chunk_bytes):
            yield apb.MinutesChunk(chunk=pdf[start:start + self.chunk_bytes])
