"""The audit verify, export and show commands, on niemphongd's AuditService (auditor role)."""

from __future__ import annotations

import argparse
import io
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from niemphong.clients.atomic import atomic_output, check_output_path
from niemphong.clients.connection import UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext
from niemphong.clients.envelope_commands import read_inspect_request
from niemphong.clients.errors import ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.audit_render import (
    record_json,
    render_history,
    render_verify,
    verify_json,
    write_csv,
    write_jsonl,
)
from niemphong.clients.i18n import format_count
from niemphong.v1 import audit_pb2, audit_pb2_grpc
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# Verification reads and hashes the whole log on the daemon; a log of a
# million records takes tens of seconds, so the bound is generous.
VERIFY_TIMEOUT_SECONDS = 600.0
EXPORT_TIMEOUT_SECONDS = 600.0

_ARTEFACT_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def run_audit_verify(args: argparse.Namespace, context: CommandContext) -> int:
    """Check the whole audit log on the daemon; exit 5 when it was altered."""
    console = context.console
    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        report = audit_pb2_grpc.AuditServiceStub(channel).Verify(
            audit_pb2.VerifyAuditRequest(), timeout=VERIFY_TIMEOUT_SECONDS
        )

    log.info("audit verify intact=%s entries=%d", report.intact, report.entries)
    if args.json:
        console.json(verify_json(report))
    else:
        console.data(render_verify(report, console.lang))
    return ExitCode.OK if report.intact else ExitCode.INTEGRITY_FAILURE


def run_audit_export(args: argparse.Namespace, context: CommandContext) -> int:
    """Write the records of a time range as CSV (Vietnamese columns) or JSON Lines."""
    console = context.console
    since = args.since
    until = args.until
    if since is not None and until is not None and since >= until:
        raise ClientError(ExitCode.USAGE, "audit.since_after_until")
    request = audit_pb2.ExportAuditRequest(
        since=int(since.timestamp()) if since else 0,
        until=int(until.timestamp()) if until else 0,
    )
    out = Path(args.out) if args.out else None
    if out is not None:
        check_output_path(out, force=args.force, inputs=[])

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        records = audit_pb2_grpc.AuditServiceStub(channel).Export(request, timeout=EXPORT_TIMEOUT_SECONDS)
        if out is None:
            count = _write(records, args.format, sys.stdout)
        else:
            with atomic_output(out, force=args.force) as handle:
                # A byte order mark lets spreadsheet programs read the CSV file as UTF-8.
                encoding = "utf-8-sig" if args.format == "csv" else "utf-8"
                text = io.TextIOWrapper(handle, encoding=encoding, newline="")
                count = _write(records, args.format, text)
                text.flush()
                text.detach()

    log.info("exported %d audit records as %s", count, args.format)
    if out is None:
        # The records are on stdout, so the summary stays on stderr even with --json.
        console.say("audit.exported_stdout", count=format_count(count, console.lang))
    elif args.json:
        console.json({"records": count, "out": str(out), "format": args.format})
    else:
        console.say("audit.exported_file", count=format_count(count, console.lang), out=str(out))
    return ExitCode.OK


def _write(records: Iterator[audit_pb2.AuditRecord], file_format: str, out: io.TextIOBase) -> int:
    if file_format == "csv":
        return write_csv(records, out)
    return write_jsonl(records, out)


def run_audit_show(args: argparse.Namespace, context: CommandContext) -> int:
    """Print the history of one artefact, named by its id or by an envelope file."""
    console = context.console
    target = args.artefact
    envelope = None
    if not _ARTEFACT_ID.match(target):
        envelope, _ = read_inspect_request(Path(target))

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        if envelope is None:
            artefact_id = target.lower()
        else:
            inspected = pb_grpc.EnvelopeServiceStub(channel).Inspect(envelope, timeout=UNARY_TIMEOUT_SECONDS)
            artefact_id = inspected.artefact_id
        records = list(audit_pb2_grpc.AuditServiceStub(channel).ArtefactHistory(
            audit_pb2.ArtefactHistoryRequest(artefact_id=artefact_id), timeout=EXPORT_TIMEOUT_SECONDS
        ))

    if args.json:
        console.json({"artefact_id": artefact_id, "records": [record_json(record) for record in records]})
    elif not records:
        console.say("audit.history_empty", artefact_id=artefact_id)
    else:
        console.data(render_history(records, console.lang))
    return ExitCode.OK
