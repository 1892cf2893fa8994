"""CopyService: print stamped copies and list the copies of a document.

The daemon, not the client, decrypts the scan and stamps it, so plaintext
never reaches the client as an unstamped file: the client receives only the
stamped PDF.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterator

from niemphong.daemon import envelope, validation
from niemphong.daemon.access import AccessControl
from niemphong.daemon.copies import ISSUED, SPOILED, Copies
from niemphong.daemon.copy_pdf import CopyStamp, SourceDocument, UnprintableDocument
from niemphong.daemon.errors import ServiceError, TokenUnavailable, abort
from niemphong.daemon.identity import CallContext
from niemphong.daemon.pdf_fonts import FontUnavailable
from niemphong.daemon.services.envelope_reading import iter_plaintext, open_envelope, read_registered_header
from niemphong.daemon.services.envelope_service import EnvelopeServicer
from niemphong.daemon.store import ArtefactRecord, GrantRecord
from niemphong.daemon.store_archive import CopyRecord
from niemphong.v1 import archive_pb2 as apb
from niemphong.v1 import archive_pb2_grpc as apb_grpc

log = logging.getLogger(__name__)

# The whole scan is held in memory while it is stamped.
# NOTE: 256 MiB is a guess at the largest scan an agency prints; a larger
# document is rejected as unprintable rather than risking the daemon's memory.
MAX_PRINT_BYTES = 256 * 1024 * 1024

VIETNAM = dt.timezone(dt.timedelta(hours=7))


class CopyServicer(apb_grpc.CopyServiceServicer):
    def __init__(
        self, envelopes: EnvelopeServicer, access: AccessControl, copies: Copies, clock: Callable[[], float] = time.time
    ) -> None:
        self.envelopes = envelopes
        self.access = access
        self.copies = copies
        self.clock = clock

    def Print(self, request_iterator: Iterator[apb.PrintRequest], context: CallContext) -> Iterator[apb.PrintResponse]:
        try:
            yield from self._print(request_iterator, context)
        except ServiceError as error:
            context.facts["reason"] = error.reason
            log.warning(
                "request %s print by %s refused: %s (%s)",
                context.request_id, context.identity.name, error.reason, error.message,
            )
            abort(context, error)
        except TokenUnavailable as exc:
            log.error("request %s print failed: %s", context.request_id, exc)
            abort(context, ServiceError("TOKEN_UNAVAILABLE", "the token is unavailable"))

    def _print(self, request_iterator: Iterator[apb.PrintRequest], context: CallContext) -> Iterator[apb.PrintResponse]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "start":
            raise ServiceError("PROTOCOL_VIOLATION", "the first Print message must be PrintStart")
        request_id = validation.hex_id("request_id", first.start.request_id) if first.start.request_id else None
        chunks = self.envelopes._chunks(request_iterator)  # type: ignore[arg-type]  # same oneof as OpenRequest

        header, rest, artefact = read_registered_header(self.envelopes, chunks, context)
        viewer = context.identity
        # Refuse before any token call when no grant allows a copy.
        self.copies.find_print_grant(viewer, artefact.artefact_id, request_id)

        source = self._decrypt(header, artefact, rest, chunks, context)

        def record_copy(copy: CopyRecord, grant: GrantRecord) -> None:
            # Runs inside the transaction that numbers the copy: without a
            # durable audit record no copy is counted and no PDF leaves.
            context.facts.update(
                copy_number=copy.copy_number, pages=source.pages, access_request_id=grant.request_id,
                copies_made=grant.copies_made, copies_allowed=grant.copies_allowed,
            )
            self.envelopes.audit.record_decision(context)

        copy, grant = self.copies.assign(viewer, artefact.artefact_id, request_id, record_copy)
        printed_on = dt.datetime.fromtimestamp(copy.printed_at, VIETNAM).date()
        stamp = CopyStamp(
            copy_number=copy.copy_number,
            authorized_name=grant.authorized_name or grant.authorized_by,
            authorized_title=grant.authorized_title,
            printed_on=printed_on,
            doc_number=artefact.doc_number,
        )

        try:
            try:
                pdf = source.render(stamp)
            except FontUnavailable as exc:
                log.error("request %s cannot stamp copies: %s", context.request_id, exc)
                raise ServiceError("RENDERER_UNAVAILABLE", "the PDF font is not installed on the daemon host") from exc
            chunk_bytes = self.envelopes.config.chunk_bytes
            for start in range(0, len(pdf), chunk_bytes):
                yield apb.PrintResponse(chunk=pdf[start:start + chunk_bytes])
            self.copies.finish(copy, ISSUED)
        except BaseException:
            self.copies.finish(copy, SPOILED)
            raise

        context.facts["pdf_bytes"] = len(pdf)
        log.info(
            "request %s printed copy %d of artefact %s for %s: %d pages, %d PDF bytes",
            context.request_id, copy.copy_number, artefact.artefact_id, viewer.name, source.pages, len(pdf),
        )
        yield apb.PrintResponse(summary=apb.PrintSummary(
            artefact_id=artefact.artefact_id,
            copy_number=copy.copy_number,
            pages=source.pages,
            authorized_by=grant.authorized_by,
            authorized_name=grant.authorized_name,
            authorized_title=grant.authorized_title,
            printed_on=printed_on.isoformat(),
            copies_remaining=grant.copies_allowed - grant.copies_made,
            pdf_bytes=len(pdf),
            pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        ))

    def _decrypt(
        self, header: envelope.Header, artefact: ArtefactRecord, rest: bytes, chunks: Iterator[bytes], context: CallContext,
    ) -> SourceDocument:
        opener = open_envelope(self.envelopes, header, artefact, context)
        plaintext = bytearray()
        for plain in iter_plaintext(opener, rest, chunks):
            plaintext += plain
            if len(plaintext) > MAX_PRINT_BYTES:
                raise ServiceError(
                    "UNPRINTABLE_DOCUMENT", f"the document exceeds the {MAX_PRINT_BYTES} bytes that can be printed",
                    {"max": str(MAX_PRINT_BYTES)},
                )
        context.facts["plaintext_bytes"] = len(plaintext)
        try:
            return SourceDocument.parse(bytes(plaintext))
        except UnprintableDocument as exc:
            raise ServiceError("UNPRINTABLE_DOCUMENT", str(exc)) from exc

    def ListCopies(self, request: apb.ListCopiesRequest, context: CallContext) -> apb.ListCopiesResponse:
        try:
            artefact_id = validation.hex_id("artefact_id", request.artefact_id)
            context.facts["artefact_id"] = artefact_id
            records = self.copies.list(artefact_id)
        except ServiceError as error:
            context.facts["reason"] = error.reason
            abort(context, error)
            raise AssertionError("unreachable") from None
        return apb.ListCopiesResponse(copies=[
            apb.CopyEntry(
                copy_number=record.copy_number,
                request_id=record.request_id,
                printed_by=record.printed_by,
                authorized_by=record.authorized_by,
                printed_at=record.printed_at,
                state=record.state,
            )
            for record in records
        ])
