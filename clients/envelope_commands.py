"""The scan, inspect and view commands, on niemphongd's EnvelopeService."""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from niemphong.clients.atomic import atomic_output, check_output_path
from niemphong.clients.connection import CHUNK_BYTES, UNARY_TIMEOUT_SECONDS
from niemphong.clients.context import CommandContext, open_input_file
from niemphong.clients.errors import CatalogText, ClientError, ExitCode, rpc_errors_as_client_errors
from niemphong.clients.i18n import format_bytes, format_count, format_date, today_in_vietnam
from niemphong.clients.spool_commands import run_scan_spool, run_view_spool
from niemphong.clients.protocol import (
    EmptyFieldError,
    PROTECTION_YEARS,
    build_inspect_request,
    build_seal_metadata,
    iter_open_requests,
    iter_seal_requests,
    protection_end,
)
from niemphong.clients.render import (
    inspect_json,
    level_label,
    open_summary_json,
    render_inspect,
    seal_summary_json,
)
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


def empty_field_error(exc: EmptyFieldError) -> ClientError:
    """Return the usage error for a required text argument left empty."""
    return ClientError(ExitCode.USAGE, "arg.empty", field=CatalogText(f"field.{exc.field}"))


def _warn_about_level(args: argparse.Namespace, context: CommandContext) -> None:
    console = context.console
    if args.level == pb.LEVEL_TUYET_MAT:
        # The daemon is the authority and rejects the request with a reason;
        # sending it lets the daemon record the attempt.
        console.warn("scan.tuyet_mat_warning")
        return

    end = protection_end(args.level, args.issued)
    if end is not None and end < today_in_vietnam():
        console.warn(
            "scan.protection_expired",
            level=level_label(args.level, console.lang),
            issued=format_date(args.issued, console.lang),
            years=PROTECTION_YEARS[args.level],
        )


def _receive_envelope(responses: Iterable[pb.SealResponse], handle: BinaryIO) -> tuple[pb.SealSummary, str, int]:
    digest = hashlib.sha256()
    written = 0
    summary: pb.SealSummary | None = None

    for response in responses:
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


def run_scan(args: argparse.Namespace, context: CommandContext) -> int:
    """Seal a scanned file into an envelope written atomically to ``--out``."""
    console = context.console
    source = Path(args.file)
    out = Path(args.out)
    try:
        metadata = build_seal_metadata(args.level, args.doc_number, args.issued, args.title or "", source.name)
    except EmptyFieldError as exc:
        raise empty_field_error(exc) from exc
    if getattr(args, "spool", None):
        _warn_about_level(args, context)
        return run_scan_spool(args, context, metadata)

    check_output_path(out, force=args.force, inputs=[source])
    source_file, source_bytes = open_input_file(source)
    _warn_about_level(args, context)

    channel, server = context.connect(args)
    with channel, source_file:
        stub = pb_grpc.EnvelopeServiceStub(channel)
        try:
            with atomic_output(out, force=args.force) as handle, rpc_errors_as_client_errors(server.display):
                responses = stub.Seal(iter_seal_requests(metadata, source_file, CHUNK_BYTES))
                try:
                    summary, sha256, written = _receive_envelope(responses, handle)
                finally:
                    # Stops the request stream too when the response loop ends early.
                    responses.cancel()
                if summary.envelope_sha256.lower() != sha256:
                    raise ClientError(ExitCode.INTEGRITY_FAILURE, "error.sha256_mismatch")
                if summary.envelope_bytes != written:
                    raise ClientError(
                        ExitCode.INTEGRITY_FAILURE,
                        "error.size_mismatch",
                        received=written,
                        reported=summary.envelope_bytes,
                    )
        except ClientError as exc:
            if exc.reason == "LEVEL_NEVER_DIGITIZED":
                exc.add_hint("scan.tuyet_mat_file_hint", path=str(source))
            raise

    log.info(
        "sealed artefact_id=%s level=%s plaintext_bytes=%d envelope_bytes=%d source_bytes=%d",
        summary.artefact_id,
        summary.level,
        summary.plaintext_bytes,
        summary.envelope_bytes,
        source_bytes,
    )
    console.say(
        "scan.done",
        source=source.name,
        level=level_label(summary.level or args.level, console.lang),
        doc_number=metadata.document.doc_number,
        plaintext=format_bytes(summary.plaintext_bytes, console.lang),
        envelope=format_bytes(summary.envelope_bytes, console.lang),
        out=str(out),
    )
    if args.json:
        console.json(seal_summary_json(summary, out, source))
    else:
        console.data(summary.artefact_id)
    return ExitCode.OK


def read_inspect_request(envelope: Path) -> tuple[pb.InspectRequest, int]:
    """Build the Inspect request for an envelope file and return it with the file size."""
    envelope_file, envelope_bytes = open_input_file(envelope)
    with envelope_file:
        return build_inspect_request(envelope_file, envelope_bytes), envelope_bytes


def run_inspect(args: argparse.Namespace, context: CommandContext) -> int:
    """Print the unverified header facts of an envelope."""
    request, envelope_bytes = read_inspect_request(Path(args.envelope))

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        response = pb_grpc.EnvelopeServiceStub(channel).Inspect(request, timeout=UNARY_TIMEOUT_SECONDS)

    if args.json:
        context.console.json(inspect_json(response, envelope_bytes))
    else:
        context.console.data(render_inspect(response, envelope_bytes, context.console.lang))
    return ExitCode.OK


def _receive_plaintext(responses: Iterable[pb.OpenResponse], handle: BinaryIO) -> tuple[pb.OpenSummary, int]:
    written = 0
    summary: pb.OpenSummary | None = None

    for response in responses:
        kind = response.WhichOneof("payload")
        if kind == "chunk" and summary is None:
            handle.write(response.chunk)
            written += len(response.chunk)
        elif kind == "summary" and summary is None:
            summary = response.summary
        else:
            raise ClientError(ExitCode.FAILURE, "error.bad_stream")

    if summary is None:
        raise ClientError(ExitCode.FAILURE, "error.bad_stream")
    return summary, written


def run_view(args: argparse.Namespace, context: CommandContext) -> int:
    """Open an envelope and write its plaintext atomically to ``--out``.

    On DATA_LOSS the daemon has stopped before the failing segment, but the
    plaintext received so far is discarded with the temporary file as well.
    """
    console = context.console
    if getattr(args, "spool", None):
        return run_view_spool(args, context)
    envelope = Path(args.envelope)
    out = Path(args.out)
    check_output_path(out, force=args.force, inputs=[envelope])
    envelope_file, envelope_bytes = open_input_file(envelope)

    channel, server = context.connect(args)
    with channel, envelope_file:
        stub = pb_grpc.EnvelopeServiceStub(channel)
        with atomic_output(out, force=args.force) as handle, rpc_errors_as_client_errors(server.display):
            responses = stub.Open(iter_open_requests(args.request or "", envelope_file, CHUNK_BYTES))
            try:
                summary, written = _receive_plaintext(responses, handle)
            finally:
                responses.cancel()
            if summary.plaintext_bytes != written:
                raise ClientError(
                    ExitCode.INTEGRITY_FAILURE,
                    "error.size_mismatch",
                    received=written,
                    reported=summary.plaintext_bytes,
                )

    log.info(
        "opened artefact_id=%s envelope_bytes=%d plaintext_bytes=%d opens_remaining=%d",
        summary.artefact_id,
        envelope_bytes,
        written,
        summary.opens_remaining,
    )
    console.say(
        "view.done",
        size=format_bytes(written, console.lang),
        out=str(out),
        opens=format_count(summary.opens_remaining, console.lang),
    )
    console.say("view.reminder")
    if args.json:
        console.json(open_summary_json(summary, out))
    return ExitCode.OK
