"""``niemphong scan --manifest``: seal every scan of a handover list into its batch.

The list names each document and its scan. For each row the command counts
the scan's pages, compares them with the list, sends the scan with the row's
classification facts (protection stamp, extension, declassification, basis)
so that the daemon decides as for a single scan, writes the envelope to
OUT-DIR/FILE.npe, and reports the row; a bad row is reported and the batch
goes on with the rest. A document the rules find no longer secret gets no
envelope, and the batch records that decision. The batch on the daemon records which
documents are sealed, so running the command again after an interruption
skips them: the daemon refuses a second seal of a batch document, and an
envelope is written only once its seal is complete.

OUT-DIR/.niemphong-batch.json remembers the batch, so that a rerun needs no
``--batch``. Without either, the command opens a new batch from the list and
stops until an approver permits it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from niemphong.clients.atomic import atomic_output, check_output_path
from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext, open_envelope_file, open_input_file
from niemphong.clients.envelope_commands import (
    NotSealedResponse,
    confirm_written_seal,
    read_inspect_request,
    seal_to_file,
)
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.filenames import find_normalized, find_normalized_path
from niemphong.clients.hygiene import verify_and_remove
from niemphong.clients.i18n import Lang, translate
from niemphong.clients.manifest import Manifest, ManifestRow, describe_problem, read_manifest
from niemphong.clients.pages import PageCountError, count_pages
from niemphong.clients.protocol import build_seal_metadata
from niemphong.clients.render import level_label
from niemphong.clients.policy_render import explanation
from niemphong.v1 import archive_pb2 as apb
from niemphong.v1 import archive_pb2_grpc as apb_grpc
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

STATE_FILE = ".niemphong-batch.json"
ENVELOPE_SUFFIX = ".npe"

SEALED, ALREADY_SEALED, NOT_SECRET, REFUSED, FAILED = "sealed", "already_sealed", "not_secret", "refused", "failed"
_STATUSES = (SEALED, ALREADY_SEALED, NOT_SECRET, REFUSED, FAILED)

_BATCH_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class RowResult:
    """What happened to one row of the list."""

    line: int
    number: int
    doc_number: str
    file: str
    status: str
    exit_code: int
    message: str
    artefact_id: str = ""
    record_id: str = ""
    pages_listed: int = 0
    pages_counted: int = 0
    envelope: str = ""

    @property
    def pages_differ(self) -> bool:
        return self.status in (SEALED, ALREADY_SEALED, NOT_SECRET) and self.pages_counted != self.pages_listed

    def to_json(self) -> dict[str, object]:
        return {
            "line": self.line,
            "number": self.number,
            "doc_number": self.doc_number,
            "file": self.file or None,
            "status": self.status,
            "exit_code": self.exit_code,
            "artefact_id": self.artefact_id or None,
            "record_id": self.record_id or None,
            "pages_listed": self.pages_listed,
            "pages_counted": self.pages_counted,
            "pages_differ": self.pages_differ,
            "envelope": self.envelope or None,
            "message": self.message,
        }


class ProgressBar:
    """A one-line progress bar on a terminal; silent when the stream is not a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.enabled = getattr(stream, "isatty", lambda: False)()
        self._shown = False

    @staticmethod
    def line(done: int, total: int, label: str, width: int = WIDTH) -> str:
        """Return the bar's text for ``done`` of ``total`` rows."""
        filled = width * done // max(total, 1)
        return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}"

    def show(self, done: int, label: str) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K" + self.line(done, self.total, label)[:200])
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


# Batch resolution -----------------------------------------------------------------


def batch_documents(manifest: Manifest) -> list[apb.BatchDocument]:
    """Return the batch list for the valid rows of ``manifest``.

    The level is the list's "Độ mật" column as stamped; the classification
    rules decide at each seal whether the document is still secret.
    """
    rows = manifest.valid_rows
    return [
        apb.BatchDocument(
            number=row.number or position,
            doc_number=row.doc_number,
            issued_on=row.document.issued_on if row.document is not None else "",
            sheets=row.sheets,
            pages=row.pages,
            level=row.level,  # type: ignore[arg-type]
            title=row.title,
            basis=row.basis,
            protected_until=row.protected_until.isoformat() if row.protected_until else "",
            source_name=row.file,
        )
        for position, row in enumerate(rows, start=1)
    ]


def open_batch(
    stub: apb_grpc.HandoverServiceStub, manifest: Manifest, handed_over_by: str, note: str, server: str
) -> apb.Batch:
    """Open a batch on the daemon with the valid rows of ``manifest``."""
    if not handed_over_by.strip():
        raise ClientError(ExitCode.USAGE, "batch.need_handed_over_by")
    if not manifest.valid_rows:
        raise ClientError(ExitCode.USAGE, "batch.no_valid_rows")
    request = apb.OpenBatchRequest(handed_over_by=handed_over_by.strip(), note=note.strip(), documents=batch_documents(manifest))
    with rpc_errors_as_client_errors(server):
        return stub.OpenBatch(request, timeout=UNARY_TIMEOUT_SECONDS)


def _read_state(out_dir: Path) -> str | None:
    path = out_dir / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClientError(ExitCode.USAGE, "batch.state_unreadable", path=str(path)) from exc
    batch_id = data.get("batch_id") if isinstance(data, dict) else None
    if not isinstance(batch_id, str) or not _BATCH_ID.match(batch_id):
        raise ClientError(ExitCode.USAGE, "batch.state_unreadable", path=str(out_dir / STATE_FILE))
    return batch_id


def _write_state(out_dir: Path, batch_id: str, manifest_path: Path) -> None:
    state = {"batch_id": batch_id, "manifest": str(manifest_path.resolve())}
    with atomic_output(out_dir / STATE_FILE, force=True) as handle:
        handle.write(json.dumps(state, ensure_ascii=False, indent=2).encode() + b"\n")


def resolve_batch(
    args: argparse.Namespace, out_dir: Path, manifest: Manifest, stub: apb_grpc.HandoverServiceStub,
    context: CommandContext, server: str,
) -> apb.Batch:
    """Return the batch to seal into: ``--batch``, the one remembered in OUT-DIR, or a new one."""
    remembered = _read_state(out_dir)
    batch_id = args.batch or remembered
    if args.batch and remembered and args.batch != remembered:
        raise ClientError(ExitCode.USAGE, "batch.out_dir_other_batch", path=str(out_dir), batch_id=remembered)

    if batch_id is None:
        batch = open_batch(stub, manifest, args.handed_over_by or "", args.note or "", server)
        _write_state(out_dir, batch.batch_id, Path(args.manifest))
        context.console.say("batch.opened", batch_id=batch.batch_id, count=len(batch.documents))
        context.console.data(batch.batch_id)
        return batch

    with rpc_errors_as_client_errors(server):
        batch = stub.GetBatch(apb.GetBatchRequest(batch_id=batch_id), timeout=UNARY_TIMEOUT_SECONDS)
    if remembered is None:
        _write_state(out_dir, batch.batch_id, Path(args.manifest))
    return batch


# Rows -------------------------------------------------------------------------------


class BatchScan:
    """Seal the rows of one list into one batch."""

    def __init__(
        self, args: argparse.Namespace, context: CommandContext, batch: apb.Batch,
        envelopes: pb_grpc.EnvelopeServiceStub, server: str,
    ) -> None:
        self.args = args
        self.console = context.console
        self.lang: Lang = context.console.lang
        self.batch = batch
        self.envelopes = envelopes
        self.server = server
        self.scans = find_normalized_path(Path(args.dir))
        self.out_dir = Path(args.out_dir)
        self.listed = {status.document.doc_number: status for status in batch.documents}

    def result(self, row: ManifestRow, status: str, exit_code: int, message_id: str, **params: object) -> RowResult:
        return RowResult(
            line=row.line, number=row.number, doc_number=row.doc_number, file=row.file, status=status,
            exit_code=exit_code, message=translate(self.lang, message_id, **params), pages_listed=row.pages,
        )

    def failure(self, row: ManifestRow, error: ClientError) -> RowResult:
        status = REFUSED if error.exit_code == ExitCode.REFUSED_BY_POLICY else FAILED
        return RowResult(
            line=row.line, number=row.number, doc_number=row.doc_number, file=row.file, status=status,
            exit_code=int(error.exit_code), message=error.localize(self.lang), pages_listed=row.pages,
        )

    def scan_row(self, row: ManifestRow) -> RowResult:
        try:
            return self._scan_row(row)
        except ClientError as error:
            log.debug("row %d (%s) failed: %s reason=%s", row.line, row.doc_number, error.message_id, error.reason)
            return self.failure(row, error)

    def _scan_row(self, row: ManifestRow) -> RowResult:
        listed = self.listed.get(row.doc_number)
        if listed is None:
            return self.result(row, FAILED, ExitCode.REFUSED_BY_POLICY, "batch.row_not_in_batch", batch_id=self.batch.batch_id)
        if not row.file:
            return self._send_without_scan(row)

        # Lists are NFC, but scans copied from macOS or some scanners keep NFD names.
        source = find_normalized(self.scans, row.file)
        envelope = self.out_dir / (row.file + ENVELOPE_SUFFIX)
        if listed.record_id:
            result = self.result(row, NOT_SECRET, ExitCode.REFUSED_BY_POLICY, "batch.row_already_not_secret",
                                 record_id=listed.record_id)
            result.record_id, result.pages_counted = listed.record_id, listed.pages_scanned
            return result
        replaced = ""
        if listed.artefact_id and listed.outcome == apb.DOCUMENT_OUTCOME_UNCONFIRMED:
            if envelope.exists() or envelope.is_symlink():
                return self._confirm_resumed(row, listed, envelope)
            # The envelope was never kept: sealing again makes the daemon
            # abandon the unconfirmed artefact.
            replaced = listed.artefact_id
        elif listed.artefact_id:
            return self._check_resumed(row, listed, envelope)

        source_file, _ = open_input_file(source)
        with source_file:
            try:
                pages = count_pages(source)
            except PageCountError as exc:
                message_id = "batch.pages_format" if exc.kind == "format" else "batch.pages_damaged"
                return self.result(row, FAILED, ExitCode.USAGE, message_id, path=str(source))
            check_output_path(envelope, force=False, inputs=[source])
            metadata = self._metadata(row, row.file)
            metadata.page_count = pages
            try:
                summary, source_sha256 = seal_to_file(
                    self.envelopes, metadata, source_file, envelope, force=False, server=self.server,
                )
            except NotSealedResponse as answer:
                return self._not_secret(row, answer.not_sealed, pages)

        result = self.result(row, SEALED, ExitCode.OK, "batch.row_sealed", envelope=str(envelope))
        result.artefact_id, result.pages_counted, result.envelope = summary.artefact_id, pages, str(envelope)
        if result.pages_differ:
            result.message = translate(self.lang, "batch.row_pages_differ", listed=row.pages, counted=pages, envelope=str(envelope))
        if replaced:
            result.message += " " + translate(self.lang, "batch.row_replaced", artefact_id=replaced)
        if self.args.remove_sources:
            verify_and_remove(self.envelopes, envelope, source, source_sha256, self.server, self.console)
        return result

    def _metadata(self, row: ManifestRow, source_name: str) -> pb.SealMetadata:
        assert row.document is not None and row.issued_on is not None  # only valid rows are scanned
        metadata = build_seal_metadata(row.level, row.doc_number, row.issued_on, row.title, source_name)
        metadata.classification.CopyFrom(row.document.classification)
        metadata.batch_id = self.batch.batch_id
        return metadata

    def _not_secret(self, row: ManifestRow, not_sealed: pb.NotSealed, pages: int) -> RowResult:
        # Exit code 3 as for a single scan: no envelope exists, and the clerk
        # has a next step (the "Giải mật" stamp where the decision asks for it).
        log.info("row %d (%s) not sealed: record_id=%s code=%s", row.line, row.doc_number, not_sealed.record_id,
                 not_sealed.decision.code)
        result = self.result(
            row, NOT_SECRET, ExitCode.REFUSED_BY_POLICY, "batch.row_not_secret", record_id=not_sealed.record_id,
            explanation=explanation(not_sealed.decision, self.lang),
        )
        result.record_id, result.pages_counted = not_sealed.record_id, pages
        return result

    def _send_without_scan(self, row: ManifestRow) -> RowResult:
        # Only a Tuyệt mật row may lack a scan (the list reader rejects any
        # other). The daemon still decides, so that the refusal is recorded.
        metadata = self._metadata(row, "")
        placeholder = self.out_dir / f".niemphong-refused-{row.line}{ENVELOPE_SUFFIX}"
        with open(os.devnull, "rb") as empty:
            seal_to_file(self.envelopes, metadata, empty, placeholder, force=True, server=self.server)
        # Reaching here means the daemon sealed a Tuyệt mật document, which it never does.
        placeholder.unlink(missing_ok=True)
        raise AssertionError("niemphongd sealed a Tuyệt mật document")

    def _confirm_resumed(self, row: ManifestRow, listed: apb.BatchDocumentStatus, envelope: Path) -> RowResult:
        """Confirm the envelope of an unconfirmed seal, left in OUT-DIR by a run that stopped before confirming it."""
        request, _ = read_inspect_request(envelope)
        with rpc_errors_as_client_errors(self.server):
            inspected = self.envelopes.Inspect(request, timeout=UNARY_TIMEOUT_SECONDS)
        if inspected.artefact_id != listed.artefact_id or not inspected.registered:
            return self.result(
                row, REFUSED, ExitCode.REFUSED_BY_POLICY, "batch.row_envelope_other",
                artefact_id=listed.artefact_id, envelope=str(envelope),
            )

        confirm_written_seal(self.envelopes, listed.artefact_id, _file_sha256(envelope), envelope, self.server)
        result = self.result(row, ALREADY_SEALED, ExitCode.OK, "batch.row_confirmed", envelope=str(envelope))
        result.artefact_id, result.pages_counted, result.envelope = (
            listed.artefact_id, listed.pages_scanned, str(envelope),
        )
        return result

    def _check_resumed(self, row: ManifestRow, listed: apb.BatchDocumentStatus, envelope: Path) -> RowResult:
        if envelope.is_file():
            request, _ = read_inspect_request(envelope)
            with rpc_errors_as_client_errors(self.server):
                inspected = self.envelopes.Inspect(request, timeout=UNARY_TIMEOUT_SECONDS)
            if inspected.artefact_id == listed.artefact_id:
                result = self.result(row, ALREADY_SEALED, ExitCode.OK, "batch.row_already_sealed", envelope=str(envelope))
                result.artefact_id, result.pages_counted, result.envelope = (
                    listed.artefact_id, listed.pages_scanned, str(envelope),
                )
                return result
        return self.result(
            row, REFUSED, ExitCode.REFUSED_BY_POLICY, "batch.row_envelope_missing",
            artefact_id=listed.artefact_id, envelope=str(envelope),
        )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    handle, _ = open_envelope_file(path)
    with handle:
        handle.seek(0)
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _row_error_results(manifest: Manifest, lang: Lang) -> list[RowResult]:
    results = []
    for row in manifest.invalid_rows:
        assert row.problem is not None
        message = translate(lang, "manifest.row_error", line=row.line, message=describe_problem(row.problem, lang))
        results.append(RowResult(
            line=row.line, number=row.number, doc_number=row.doc_number, file="", status=FAILED,
            exit_code=ExitCode.USAGE, message=message,
        ))
    return results


def _print_report(context: CommandContext, batch_id: str, results: Sequence[RowResult]) -> None:
    console = context.console
    for result in sorted(results, key=lambda item: item.line):
        console.say(
            "batch.report_line",
            number=result.number or "-", doc_number=result.doc_number or "?", exit_code=result.exit_code,
            message=result.message,
        )
    counts = {status: sum(1 for result in results if result.status == status) for status in _STATUSES}
    console.say(
        "batch.report_total", batch_id=batch_id, sealed=counts[SEALED], already=counts[ALREADY_SEALED],
        not_secret=counts[NOT_SECRET], refused=counts[REFUSED], failed=counts[FAILED],
        differ=sum(1 for result in results if result.pages_differ),
    )


def run_batch_scan(args: argparse.Namespace, context: CommandContext) -> int:
    """Seal every scan of a handover list; the exit code is the highest of the rows' exit codes."""
    console = context.console
    manifest = read_manifest(Path(args.manifest), batch=True)
    scans = find_normalized_path(Path(args.dir))
    if not scans.is_dir():
        raise ClientError(ExitCode.USAGE, "usage.out_dir_missing", path=str(scans))
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ClientError(ExitCode.USAGE, "dev.not_folder", path=str(out_dir))
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    channel, server = context.connect(args)
    with channel:
        batch = resolve_batch(args, out_dir, manifest, apb_grpc.HandoverServiceStub(channel), context, server.display)
        if batch.state == apb.BATCH_STATE_AWAITING_APPROVAL:
            raise ClientError(ExitCode.NOT_AUTHORIZED, "batch.awaiting_approval", batch_id=batch.batch_id)
        if batch.state == apb.BATCH_STATE_CLOSED:
            raise ClientError(ExitCode.REFUSED_BY_POLICY, "batch.already_closed", batch_id=batch.batch_id)

        scan = BatchScan(args, context, batch, pb_grpc.EnvelopeServiceStub(channel), server.display)
        results = _row_error_results(manifest, console.lang)
        rows = manifest.valid_rows
        bar = ProgressBar(sys.stderr, len(rows))
        for done, row in enumerate(rows):
            bar.show(done, f"{row.doc_number} {level_label(row.level, console.lang)}")
            result = scan.scan_row(row)
            bar.clear()
            console.say("batch.row_progress", done=done + 1, total=len(rows), doc_number=row.doc_number, message=result.message)
            results.append(result)
        bar.clear()

    _print_report(context, batch.batch_id, results)
    exit_code = max((result.exit_code for result in results), default=ExitCode.OK)
    if args.json:
        console.json({
            "batch_id": batch.batch_id,
            "exit_code": exit_code,
            "rows": [result.to_json() for result in sorted(results, key=lambda item: item.line)],
        })
    return exit_code
