"""The batch, print, copies and incident commands, on niemphongd's archive services."""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from niemphong.clients.atomic import atomic_output, check_output_path
from niemphong.clients.batch_scan import open_batch
from niemphong.clients.connection import CHUNK_BYTES, UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext, open_input_file
from niemphong.clients.envelope_commands import read_inspect_request
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.interrupts import deferred_interrupts
from niemphong.clients.i18n import Lang, format_count, format_timestamp, translate
from niemphong.clients.manifest import describe_problem, read_manifest
from niemphong.clients.protocol import level_name, normalize_text
from niemphong.clients.render import level_label, printable
from niemphong.v1 import archive_pb2 as apb
from niemphong.v1 import archive_pb2_grpc as apb_grpc
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")

_BATCH_STATES = {
    apb.BATCH_STATE_AWAITING_APPROVAL: "awaiting_approval",
    apb.BATCH_STATE_OUT: "out",
    apb.BATCH_STATE_CLOSED: "closed",
}
_OUTCOMES = {
    apb.DOCUMENT_OUTCOME_SEALED: "sealed",
    apb.DOCUMENT_OUTCOME_PAGES_DIFFER: "pages_differ",
    apb.DOCUMENT_OUTCOME_NOT_SEALED: "not_sealed",
    apb.DOCUMENT_OUTCOME_NEVER_DIGITIZED: "never_digitized",
    apb.DOCUMENT_OUTCOME_NOT_SECRET: "not_secret",
    apb.DOCUMENT_OUTCOME_UNCONFIRMED: "unconfirmed",
}


def parse_hex_id(text: str) -> str:
    """Return a batch, incident or artefact id in lowercase. Raises ValueError unless it is 32 hex digits."""
    value = text.strip().lower()
    if not _HEX_ID.match(value):
        raise ValueError(f"invalid id {text!r}")
    return value


# Batches --------------------------------------------------------------------------


def batch_json(batch: apb.Batch) -> dict[str, object]:
    """Return the JSON object for a batch: its parties, documents and reconciliation."""
    summary = batch.reconciliation
    return {
        "batch_id": batch.batch_id,
        "state": _BATCH_STATES.get(batch.state, "unspecified"),
        "taken_out_by": batch.taken_out_by,
        "handed_over_by": batch.handed_over_by,
        "note": batch.note or None,
        "opened_at_unix": batch.opened_at,
        "approved_by": batch.approved_by or None,
        "approved_name": batch.approved_name or None,
        "approved_title": batch.approved_title or None,
        "approved_at_unix": batch.approved_at or None,
        "closed_by": batch.closed_by or None,
        "closed_at_unix": batch.closed_at or None,
        "close_note": batch.close_note or None,
        "documents": [
            {
                "number": status.document.number,
                "doc_number": status.document.doc_number,
                "issued_on": status.document.issued_on,
                "sheets": status.document.sheets,
                "pages": status.document.pages,
                "level": level_name(status.document.level),
                "basis": status.document.basis or None,
                "protected_until": status.document.protected_until or None,
                "source_name": status.document.source_name or None,
                "artefact_id": status.artefact_id or None,
                "record_id": status.record_id or None,
                "pages_scanned": status.pages_scanned if status.artefact_id or status.record_id else None,
                "outcome": _OUTCOMES.get(status.outcome, "unspecified"),
                "returned": status.returned,
                "damaged": status.damaged,
            }
            for status in batch.documents
        ],
        "reconciliation": {
            "documents_out": summary.documents_out,
            "documents_back": summary.documents_back,
            "pages_out": summary.pages_out,
            "pages_back": summary.pages_back,
            "documents_sealed": summary.documents_sealed,
            "pages_scanned": summary.pages_scanned,
            "documents_flagged": summary.documents_flagged,
            "documents_not_secret": summary.documents_not_secret,
            "documents_unconfirmed": summary.documents_unconfirmed,
        },
    }


def render_batch(batch: apb.Batch, lang: Lang) -> str:
    """Return the human summary of a batch: one line per document, then the reconciliation."""
    state = _BATCH_STATES.get(batch.state, "unspecified")
    lines = [translate(lang, "batch.show_header", batch_id=batch.batch_id, state=translate(lang, f"batch.state.{state}"))]
    for status in batch.documents:
        document = status.document
        outcome = _OUTCOMES.get(status.outcome, "unspecified")
        scanned = str(status.pages_scanned) if status.artefact_id or status.record_id else "-"
        lines.append(translate(
            lang, "batch.show_line", number=document.number, doc_number=printable(document.doc_number),
            level=level_label(document.level, lang), pages=document.pages, scanned=scanned,
            outcome=translate(lang, f"batch.outcome.{outcome}"),
        ))
    summary = batch.reconciliation
    lines.append(translate(
        lang, "batch.show_total", out=summary.documents_out, back=summary.documents_back,
        pages_out=summary.pages_out, pages_back=summary.pages_back, sealed=summary.documents_sealed,
        scanned=summary.pages_scanned, flagged=summary.documents_flagged, not_secret=summary.documents_not_secret,
    ))
    if summary.documents_unconfirmed:
        lines.append(translate(lang, "batch.show_unconfirmed", count=summary.documents_unconfirmed))
    return "\n".join(lines)


def run_batch_open(args: argparse.Namespace, context: CommandContext) -> int:
    """Open a batch from a handover list; print its id."""
    console = context.console
    manifest = read_manifest(Path(args.manifest), batch=True)
    for row in manifest.invalid_rows:
        assert row.problem is not None
        console.warn("manifest.row_error", line=row.line, message=describe_problem(row.problem, console.lang))

    channel, server = context.connect(args)
    with channel:
        batch = open_batch(apb_grpc.HandoverServiceStub(channel), manifest, args.handed_over_by, args.note or "", server.display)

    console.say("batch.opened", batch_id=batch.batch_id, count=len(batch.documents))
    if args.json:
        console.json(batch_json(batch))
    else:
        console.data(batch.batch_id)
    return ExitCode.OK


def _batch_call(args: argparse.Namespace, context: CommandContext, method: str, request: object) -> apb.Batch:
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        stub = apb_grpc.HandoverServiceStub(channel)
        return getattr(stub, method)(request, timeout=UNARY_TIMEOUT_SECONDS)  # type: ignore[no-any-return]


def run_batch_approve(args: argparse.Namespace, context: CommandContext) -> int:
    """Permit a batch's documents to leave storage."""
    batch = _batch_call(args, context, "ApproveBatch", apb.ApproveBatchRequest(batch_id=args.batch_id))
    context.console.say("batch.approved", batch_id=batch.batch_id, count=len(batch.documents))
    if args.json:
        context.console.json(batch_json(batch))
    return ExitCode.OK


def run_batch_close(args: argparse.Namespace, context: CommandContext) -> int:
    """Record the documents' return and print the reconciliation."""
    request = apb.CloseBatchRequest(
        batch_id=args.batch_id,
        not_returned=[normalize_text(value) for value in args.missing or []],
        damaged=[normalize_text(value) for value in args.damaged or []],
        note=normalize_text(args.note or ""),
    )
    batch = _batch_call(args, context, "CloseBatch", request)
    console = context.console
    console.say("batch.closed", batch_id=batch.batch_id, flagged=batch.reconciliation.documents_flagged)
    if args.json:
        console.json(batch_json(batch))
    else:
        console.data(render_batch(batch, console.lang))
    return ExitCode.OK


def run_batch_show(args: argparse.Namespace, context: CommandContext) -> int:
    """Print a batch's documents and reconciliation."""
    batch = _batch_call(args, context, "GetBatch", apb.GetBatchRequest(batch_id=args.batch_id))
    if args.json:
        context.console.json(batch_json(batch))
    else:
        context.console.data(render_batch(batch, context.console.lang))
    return ExitCode.OK


def run_batch_minutes(args: argparse.Namespace, context: CommandContext) -> int:
    """Write the handover minutes PDF to ``--out``; with ``--json`` also print the batch as JSON."""
    out = Path(args.out)
    check_output_path(out, force=args.force, inputs=[])

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        stub = apb_grpc.HandoverServiceStub(channel)
        batch = stub.GetBatch(apb.GetBatchRequest(batch_id=args.batch_id), timeout=UNARY_TIMEOUT_SECONDS)
        with atomic_output(out, force=args.force) as handle:
            written = 0
            for message in stub.GetMinutes(apb.GetMinutesRequest(batch_id=args.batch_id), timeout=UNARY_TIMEOUT_SECONDS * 4):
                handle.write(message.chunk)
                written += len(message.chunk)

    size = format_count(written, context.console.lang)
    context.console.say("batch.minutes_written", batch_id=batch.batch_id, out=str(out), size=size)
    if args.json:
        context.console.json(batch_json(batch))
    return ExitCode.OK


# Printed copies ---------------------------------------------------------------------


def _print_requests(request_id: str, envelope: BinaryIO) -> Iterable[apb.PrintRequest]:
    yield apb.PrintRequest(start=apb.PrintStart(request_id=request_id))
    while chunk := envelope.read(CHUNK_BYTES):
        yield apb.PrintRequest(chunk=chunk)


def _receive_copy(
    responses: Iterable[apb.PrintResponse], handle: BinaryIO, check_interrupt: Callable[[], None]
) -> tuple[apb.PrintSummary, str, int]:
    digest = hashlib.sha256()
    written = 0
    summary: apb.PrintSummary | None = None
    for response in responses:
        check_interrupt()
        kind = response.WhichOneof("payload")
        if kind == "chunk" and summary is None:
            handle.write(response.chunk)
            digest.update(response.chunk)
            written += len(response.chunk)
        elif kind == "summary" and summary is None:
            summary = response.summary
        else:
            raise ClientError(ExitCode.FAILURE, "error.bad_stream")
    if summary is None:
        raise ClientError(ExitCode.FAILURE, "error.bad_stream")
    return summary, digest.hexdigest(), written


def run_print(args: argparse.Namespace, context: CommandContext) -> int:
    """Print a stamped copy of an envelope's document into ``--out`` (PDF).

    The daemon decrypts and stamps the document; the client only writes the
    stamped PDF, through a temporary file that is removed on any failure.
    """
    console = context.console
    envelope = Path(args.envelope)
    out = Path(args.out)
    check_output_path(out, force=args.force, inputs=[envelope])
    envelope_file, _ = open_input_file(envelope)

    channel, server = context.connect(args)
    with channel, envelope_file:
        stub = apb_grpc.CopyServiceStub(channel)
        with atomic_output(out, force=args.force) as handle, rpc_errors_as_client_errors(server.display):
            with deferred_interrupts() as interrupts:
                responses = stub.Print(_print_requests(args.request or "", envelope_file))
                try:
                    summary, sha256, written = _receive_copy(responses, handle, interrupts.check)
                finally:
                    responses.cancel()
            if summary.pdf_sha256 != sha256 or summary.pdf_bytes != written:
                raise ClientError(ExitCode.INTEGRITY_FAILURE, "error.sha256_mismatch")

    log.info("printed artefact_id=%s copy_number=%d pages=%d", summary.artefact_id, summary.copy_number, summary.pages)
    console.say(
        "print.done", copy_number=summary.copy_number, pages=summary.pages, out=str(out),
        authorized=printable(summary.authorized_name or summary.authorized_by), remaining=summary.copies_remaining,
    )
    console.say("print.reminder")
    if args.json:
        console.json({
            "artefact_id": summary.artefact_id,
            "copy_number": summary.copy_number,
            "pages": summary.pages,
            "authorized_by": summary.authorized_by,
            "authorized_name": summary.authorized_name or None,
            "authorized_title": summary.authorized_title or None,
            "printed_on": summary.printed_on,
            "copies_remaining": summary.copies_remaining,
            "pdf_bytes": summary.pdf_bytes,
            "pdf_sha256": summary.pdf_sha256,
            "out": str(out),
        })
    else:
        console.data(str(summary.copy_number))
    return ExitCode.OK


def _artefact_id(value: str, context: CommandContext, channel: object, server: str) -> str:
    """Return the artefact id written as 32 hex digits, or read from the envelope file ``value``."""
    try:
        return parse_hex_id(value)
    except ValueError:
        pass
    request, _ = read_inspect_request(Path(value))
    with rpc_errors_as_client_errors(server):
        inspected = pb_grpc.EnvelopeServiceStub(channel).Inspect(request, timeout=UNARY_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    return inspected.artefact_id  # type: ignore[no-any-return]


def run_copies(args: argparse.Namespace, context: CommandContext) -> int:
    """List the copies printed of one artefact."""
    console = context.console
    channel, server = context.connect(args)
    with channel:
        artefact_id = _artefact_id(args.artefact, context, channel, server.display)
        with rpc_errors_as_client_errors(server.display):
            response = apb_grpc.CopyServiceStub(channel).ListCopies(
                apb.ListCopiesRequest(artefact_id=artefact_id), timeout=UNARY_TIMEOUT_SECONDS,
            )

    if args.json:
        console.json([
            {"copy_number": entry.copy_number, "request_id": entry.request_id, "printed_by": entry.printed_by,
             "authorized_by": entry.authorized_by, "printed_at_unix": entry.printed_at, "state": entry.state}
            for entry in response.copies
        ])
        return ExitCode.OK
    if not response.copies:
        console.say("copies.empty")
    for entry in response.copies:
        console.data(translate(
            console.lang, "copies.line", copy_number=entry.copy_number, printed_by=entry.printed_by,
            authorized_by=entry.authorized_by, time=format_timestamp(entry.printed_at, console.lang),
            state=translate(console.lang, f"copies.state.{entry.state}"),
        ))
    return ExitCode.OK


# Incidents --------------------------------------------------------------------------


def incident_json(incident: apb.Incident) -> dict[str, object]:
    return {
        "incident_id": incident.incident_id,
        "state": "open" if incident.state == apb.INCIDENT_STATE_OPEN else "closed",
        "reported_by": incident.reported_by,
        "text": incident.text,
        "artefact_ids": list(incident.artefact_ids),
        "reported_at_unix": incident.reported_at,
        "grants_suspended": incident.grants_suspended,
        "closed_by": incident.closed_by or None,
        "closed_at_unix": incident.closed_at or None,
        "resolution": incident.resolution or None,
        "grants_revoked": incident.grants_revoked,
    }


def run_incident_report(args: argparse.Namespace, context: CommandContext) -> int:
    """Report an incident on the named artefacts; their grants are suspended at once."""
    console = context.console
    text = normalize_text(args.text)
    if not text:
        raise ClientError(ExitCode.USAGE, "incident.empty_text")

    channel, server = context.connect(args)
    with channel:
        artefact_ids = [_artefact_id(value, context, channel, server.display) for value in args.artefact]
        with rpc_errors_as_client_errors(server.display):
            incident = apb_grpc.IncidentServiceStub(channel).ReportIncident(
                apb.ReportIncidentRequest(artefact_ids=artefact_ids, text=text), timeout=UNARY_TIMEOUT_SECONDS,
            )

    console.say(
        "incident.reported", incident_id=incident.incident_id, count=len(incident.artefact_ids),
        grants=incident.grants_suspended,
    )
    if args.json:
        console.json(incident_json(incident))
    else:
        console.data(incident.incident_id)
    return ExitCode.OK


def run_incident_close(args: argparse.Namespace, context: CommandContext) -> int:
    """Close an incident, lifting the suspension or revoking the grants."""
    console = context.console
    resolution = normalize_text(args.resolution)
    if not resolution:
        raise ClientError(ExitCode.USAGE, "incident.empty_resolution")

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        incident = apb_grpc.IncidentServiceStub(channel).CloseIncident(
            apb.CloseIncidentRequest(incident_id=args.incident_id, resolution=resolution, revoke_grants=args.revoke_grants),
            timeout=UNARY_TIMEOUT_SECONDS,
        )

    console.say("incident.closed_revoked" if incident.grants_revoked else "incident.closed_lifted", incident_id=incident.incident_id)
    if args.json:
        console.json(incident_json(incident))
    return ExitCode.OK


def run_incident_list(args: argparse.Namespace, context: CommandContext) -> int:
    """List incidents, open ones first."""
    console = context.console
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        response = apb_grpc.IncidentServiceStub(channel).ListIncidents(
            apb.ListIncidentsRequest(), timeout=UNARY_TIMEOUT_SECONDS,
        )

    if args.json:
        console.json([incident_json(incident) for incident in response.incidents])
        return ExitCode.OK
    if not response.incidents:
        console.say("incident.none")
    for incident in response.incidents:
        state = "open" if incident.state == apb.INCIDENT_STATE_OPEN else "closed"
        console.data(translate(
            console.lang, "incident.line", incident_id=incident.incident_id,
            state=translate(console.lang, f"incident.state.{state}"), reported_by=incident.reported_by,
            time=format_timestamp(incident.reported_at, console.lang), count=len(incident.artefact_ids),
            text=printable(" ".join(incident.text.split())),
        ))
    return ExitCode.OK
