"""The scan, inspect and view commands, on niemphongd's EnvelopeService."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import grpc

from niemphong.clients.atomic import atomic_output, check_output_path
from niemphong.clients.classification_args import OptionMissing, classification_from_args, has_classification_facts
from niemphong.clients.connection import CHUNK_BYTES, UNARY_TIMEOUT_SECONDS
from niemphong.clients.connection import identity_common_name
from niemphong.clients.context import CommandContext, open_envelope_file, open_input_file
from niemphong.clients.errors import (
    CatalogText,
    error_from_rpc,
    read_error_info,
    ClientError,
    ExitCode,
    LocalizedText,
    SystemErrorText,
    TransferProgress,
    rpc_errors_as_client_errors,
    track_requests,
)
from niemphong.clients.grant_status import explain_not_approved, find_artefact_id
from niemphong.clients.hygiene import verify_and_remove
from niemphong.clients.interrupts import deferred_interrupts
from niemphong.clients.i18n import format_bytes, format_count, format_date, today_in_vietnam
from niemphong.clients.spool_commands import run_view_spool, seal_in_spool
from niemphong.clients.protocol import (
    EmptyFieldError,
    PROTECTION_YEARS,
    build_inspect_request,
    build_seal_metadata,
    iter_open_requests,
    iter_seal_requests,
    protection_end,
)
from niemphong.clients.policy_render import decision_json, explanation
from niemphong.clients.render import (
    inspect_json,
    level_label,
    open_summary_json,
    printable,
    render_inspect,
    seal_summary_json,
)
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


def empty_field_error(exc: EmptyFieldError) -> ClientError:
    """Return the usage error for a required text argument left empty."""
    return ClientError(ExitCode.USAGE, "arg.empty", field=CatalogText(f"field.{exc.field}"))


class NotSealedResponse(Exception):
    """niemphongd declined to seal the document as not secret; carries its answer."""

    def __init__(self, not_sealed: pb.NotSealed) -> None:
        super().__init__(not_sealed.record_id)
        self.not_sealed = not_sealed


def _warn_about_level(args: argparse.Namespace, context: CommandContext) -> None:
    console = context.console
    if args.level is None or has_classification_facts(args):
        # The daemon decides from the facts given; a warning from the level alone could be wrong.
        return
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


# The daemon's rule for text fields (docs/api.md): control, format,
# surrogate, private-use and unassigned characters, and line and paragraph
# separators, are rejected.
_REJECTED_TEXT_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def source_name_of(path: Path) -> str:
    """Return the file name to record as source_name.

    Bytes that are not UTF-8, as in file names from legacy TCVN3 or VNI
    systems, become U+FFFD, because the API's strings must be valid UTF-8.
    """
    return os.fsencode(path.name).decode("utf-8", errors="replace")


def _escape_rejected(text: str) -> str:
    return "".join(
        f"\\u{ord(char):04X}" if unicodedata.category(char) in _REJECTED_TEXT_CATEGORIES else char for char in text
    )


def _describe_character(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}" if name else f"U+{ord(char):04X}"


def source_name_error(value: str) -> ClientError:
    """Return the usage error for a source_name that niemphongd rejected as INVALID_FIELD."""
    rejected = sorted({char for char in value if unicodedata.category(char) in _REJECTED_TEXT_CATEGORIES})
    shown = _escape_rejected(value)
    if rejected:
        characters = ", ".join(_describe_character(char) for char in rejected)
        return ClientError(
            ExitCode.USAGE, "scan.source_name_characters", reason="INVALID_FIELD", value=shown, characters=characters
        )
    return ClientError(ExitCode.USAGE, "scan.source_name_invalid", reason="INVALID_FIELD", value=shown)


def _is_source_name_error(error: ClientError) -> bool:
    return error.reason == "INVALID_FIELD" and error.params.get("field") == CatalogText("field.source_name")


class _ReceivedSeal:
    """The summary of a Seal stream, kept as soon as it arrives, even when writing the envelope failed."""

    summary: pb.SealSummary | None = None


def _receive_envelope(
    responses: Iterable[pb.SealResponse],
    handle: BinaryIO,
    progress: TransferProgress,
    check_interrupt: Callable[[], None] = lambda: None,
    received: _ReceivedSeal | None = None,
) -> tuple[pb.SealSummary, str, int]:
    received = received if received is not None else _ReceivedSeal()
    digest = hashlib.sha256()
    written = 0
    write_error: OSError | None = None

    for response in responses:
        check_interrupt()
        progress.started = True
        kind = response.WhichOneof("payload")
        if kind == "chunk" and received.summary is None:
            progress.chunks_received += 1
            if write_error is None:
                try:
                    handle.write(response.chunk)
                except OSError as exc:
                    # Read the stream to its end without writing, so that the
                    # summary names the artefact the daemon registers, and
                    # the caller can report it as not kept.
                    write_error = exc
            digest.update(response.chunk)
            written += len(response.chunk)
        elif kind == "summary" and received.summary is None:
            received.summary = response.summary
        elif kind == "not_sealed" and received.summary is None and written == 0:
            raise NotSealedResponse(response.not_sealed)
        else:
            raise ClientError(ExitCode.FAILURE, "error.bad_stream")

    if write_error is not None:
        raise write_error
    if received.summary is None:
        raise ClientError(ExitCode.FAILURE, "error.bad_stream")
    return received.summary, digest.hexdigest(), written


class _HashingReader:
    """A binary file wrapper that hashes what is read through it."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        return data


# A regular file of at most this many bytes is sealed in one SealSmall call,
# which costs the daemon and the client far less than a Seal stream: gRPC
# Python runs a request-reader thread for every streaming call. It is the
# daemon's default chunk bound; a daemon configured with a smaller bound
# refuses the document as too long, and the file is then streamed.
SMALL_DOCUMENT_BYTES = CHUNK_BYTES


def _small_document_size(source_file: BinaryIO) -> int | None:
    """Return the size of ``source_file`` when it is a regular file small enough for SealSmall."""
    try:
        info = os.fstat(source_file.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    if stat.S_ISREG(info.st_mode) and info.st_size <= SMALL_DOCUMENT_BYTES:
        return info.st_size
    return None


class _TooLongForSealSmall(Exception):
    """The daemon's chunk bound is below the document's size; the document must be streamed."""


def _seal_small_to_file(
    stub: pb_grpc.EnvelopeServiceStub,
    metadata: pb.SealMetadata,
    document: bytes,
    out: Path,
    *,
    force: bool,
    server: str,
) -> pb.SealSummary:
    """Seal ``document`` in one SealSmall call into ``out``, which appears whole or not at all.

    As for a Seal stream, the seal is confirmed once the envelope is written,
    and abandoned when the envelope cannot be kept.
    """
    received = _ReceivedSeal()
    try:
        with atomic_output(out, force=force) as handle:
            try:
                with deferred_interrupts():
                    response = stub.SealSmall(
                        pb.SealSmallRequest(metadata=metadata, document=document), timeout=UNARY_TIMEOUT_SECONDS,
                    )
            except grpc.RpcError as exc:
                info = read_error_info(exc)  # type: ignore[arg-type]
                if info is not None and info.reason == "FIELD_TOO_LONG" and info.metadata.get("field") == "document":
                    raise _TooLongForSealSmall() from exc
                raise error_from_rpc(exc, server) from exc
            kind = response.WhichOneof("result")
            if kind == "not_sealed":
                raise NotSealedResponse(response.not_sealed)
            if kind != "sealed":
                raise ClientError(ExitCode.FAILURE, "error.bad_stream")
            envelope, summary = response.sealed.envelope, response.sealed.summary
            received.summary = summary
            envelope_sha256 = hashlib.sha256(envelope).hexdigest()
            if summary.envelope_sha256.lower() != envelope_sha256:
                raise ClientError(ExitCode.INTEGRITY_FAILURE, "error.sha256_mismatch")
            if summary.envelope_bytes != len(envelope):
                raise ClientError(
                    ExitCode.INTEGRITY_FAILURE, "error.size_mismatch", received=len(envelope),
                    reported=summary.envelope_bytes,
                )
            handle.write(envelope)
    except ClientError as error:
        if received.summary is not None:
            abandon_unkept_seal(stub, received.summary.artefact_id, error, server)
        raise

    confirm_written_seal(stub, summary.artefact_id, envelope_sha256, out, server)
    return summary


def seal_to_file(
    stub: pb_grpc.EnvelopeServiceStub,
    metadata: pb.SealMetadata,
    source_file: BinaryIO,
    out: Path,
    *,
    force: bool,
    server: str,
) -> tuple[pb.SealSummary, str]:
    """Seal ``source_file`` into ``out``, which appears whole or not at all.

    A small regular file goes in one SealSmall call, anything else in a Seal
    stream. Returns the daemon's summary and the SHA-256 of the bytes sent.
    Raises ClientError when the daemon refuses or the envelope received does
    not match the summary, and NotSealedResponse when the classification
    rules found the document not secret (nothing is written then). Ctrl+C
    during the stream is deferred to the next response, so that the call is
    cancelled cleanly and the partial output removed.
    """
    if _small_document_size(source_file) is not None:
        document = source_file.read(SMALL_DOCUMENT_BYTES + 1)
        if len(document) <= SMALL_DOCUMENT_BYTES:
            try:
                summary = _seal_small_to_file(stub, metadata, document, out, force=force, server=server)
                return summary, hashlib.sha256(document).hexdigest()
            except _TooLongForSealSmall:
                log.debug("the daemon's chunk bound is below %d bytes; streaming the document", len(document))
        # The file grew after it was measured, or the daemon wants it streamed.
        source_file.seek(0)
    reader = _HashingReader(source_file)
    progress = TransferProgress()
    received = _ReceivedSeal()
    try:
        with atomic_output(out, force=force) as handle, rpc_errors_as_client_errors(server, progress):
            with deferred_interrupts() as interrupts:
                requests = track_requests(iter_seal_requests(metadata, reader, CHUNK_BYTES), progress)  # type: ignore[arg-type]
                responses = stub.Seal(requests)
                try:
                    summary, sha256, written = _receive_envelope(
                        responses, handle, progress, interrupts.check, received,
                    )
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
    except ClientError as error:
        if received.summary is not None:
            abandon_unkept_seal(stub, received.summary.artefact_id, error, server)
        raise

    confirm_written_seal(stub, summary.artefact_id, sha256, out, server)
    return summary, reader.digest.hexdigest()


def confirm_written_seal(
    stub: pb_grpc.EnvelopeServiceStub, artefact_id: str, envelope_sha256: str, out: Path, server: str,
) -> None:
    """Tell niemphongd that the envelope of ``artefact_id`` is durably written at ``out``.

    Raises ClientError when niemphongd does not record it; the envelope stays
    on disk, and the artefact stays unconfirmed until a batch rerun confirms it.
    """
    try:
        with rpc_errors_as_client_errors(server):
            stub.ConfirmSeal(
                pb.ConfirmSealRequest(artefact_id=artefact_id, envelope_sha256=envelope_sha256),
                timeout=UNARY_TIMEOUT_SECONDS,
            )
    except ClientError as error:
        error.add_hint("scan.confirm_failed", path=str(out), artefact_id=artefact_id)
        raise


def abandon_unkept_seal(stub: pb_grpc.EnvelopeServiceStub, artefact_id: str, error: ClientError, server: str) -> None:
    """Report to niemphongd that the envelope of ``artefact_id`` was not kept, and add what that means to ``error``."""
    cause = error.params.get("error")
    # The audit trail keeps the system's own (English) text of an OS error.
    if isinstance(cause, SystemErrorText):
        cause = cause.text
    request = pb.AbandonSealRequest(
        artefact_id=artefact_id, error=cause if isinstance(cause, str) else error.message_id,
    )
    try:
        with rpc_errors_as_client_errors(server):
            stub.AbandonSeal(request, timeout=UNARY_TIMEOUT_SECONDS)
    except ClientError as abandon_error:
        log.warning("cannot report artefact %s as not kept: %s", artefact_id, abandon_error.message_id)
        error.add_hint("scan.seal_not_kept_unreported", artefact_id=artefact_id)
        return
    log.info("reported artefact %s as not kept: %s", artefact_id, request.error)
    error.add_hint("scan.seal_not_kept", artefact_id=artefact_id)


def run_scan(args: argparse.Namespace, context: CommandContext) -> int:
    """Seal a scanned file into an envelope written atomically to ``--out``."""
    console = context.console
    if args.level is None and not args.kind:
        raise ClientError(ExitCode.USAGE, "scan.level_or_kind")
    today = today_in_vietnam()
    if args.issued > today:
        raise ClientError(
            ExitCode.USAGE, "usage.issued_future",
            value=format_date(args.issued, console.lang), today=format_date(today, console.lang),
        )
    source = Path(args.file)
    out = Path(args.out)
    source_name = args.source_name if args.source_name is not None else source_name_of(source)
    level = args.level if args.level is not None else pb.LEVEL_UNSPECIFIED
    try:
        metadata = build_seal_metadata(level, args.doc_number, args.issued, args.title or "", source_name)
        metadata.classification.CopyFrom(classification_from_args(args))
    except EmptyFieldError as exc:
        raise empty_field_error(exc) from exc
    except OptionMissing as exc:
        raise ClientError(ExitCode.USAGE, "arg.option_needs", option=exc.option, needs=exc.needs) from exc
    if getattr(args, "spool", None):
        # TODO: verify the spool envelope and remove the source, as without --spool.
        if getattr(args, "remove_source", False):
            raise ClientError(ExitCode.USAGE, "usage.spool_remove_source")
        _warn_about_level(args, context)
        response = seal_in_spool(args, context, metadata)
        if response.WhichOneof("result") == "not_sealed":
            return _report_not_sealed(response.not_sealed, source, args, context)
        return _report_sealed(response.summary, metadata, source, out, args, context)

    check_output_path(out, force=args.force, inputs=[source])
    source_file, source_bytes = open_input_file(source)
    _warn_about_level(args, context)

    channel, server = context.connect(args)
    with channel, source_file:
        stub = pb_grpc.EnvelopeServiceStub(channel)
        try:
            summary, source_sha256 = seal_to_file(stub, metadata, source_file, out, force=args.force, server=server.display)
        except ClientError as exc:
            # An empty file, such as the demo's stand-in for a Tuyệt mật
            # document, holds no content to warn about.
            if exc.reason == "LEVEL_NEVER_DIGITIZED" and source_bytes > 0:
                exc.add_hint("scan.tuyet_mat_file_hint", path=str(source))
            if _is_source_name_error(exc):
                raise source_name_error(metadata.document.source_name) from exc
            raise
        except NotSealedResponse as answer:
            return _report_not_sealed(answer.not_sealed, source, args, context)
        if args.remove_source:
            verify_and_remove(stub, out, source, source_sha256, server.display, console)

    log.info(
        "sealed artefact_id=%s level=%s plaintext_bytes=%d envelope_bytes=%d source_bytes=%d",
        summary.artefact_id,
        summary.level,
        summary.plaintext_bytes,
        summary.envelope_bytes,
        source_bytes,
    )
    return _report_sealed(summary, metadata, source, out, args, context)


def _report_sealed(
    summary: pb.SealSummary, metadata: pb.SealMetadata, source: Path, out: Path,
    args: argparse.Namespace, context: CommandContext,
) -> int:
    console = context.console
    console.say(
        "scan.done",
        source=printable(source_name_of(source)),
        level=level_label(summary.level or args.level, console.lang),
        doc_number=metadata.document.doc_number,
        plaintext=format_bytes(summary.plaintext_bytes, console.lang),
        envelope=format_bytes(summary.envelope_bytes, console.lang),
        out=str(out),
    )
    if summary.HasField("decision"):
        console.say("scan.decision", explanation=explanation(summary.decision, console.lang))
    if args.json:
        result = seal_summary_json(summary, out, source)
        if summary.HasField("decision"):
            result["decision"] = decision_json(summary.decision, console.lang)
        console.json(result)
    else:
        console.data(summary.artefact_id)
    return ExitCode.OK


def _report_not_sealed(not_sealed: pb.NotSealed, source: Path, args: argparse.Namespace, context: CommandContext) -> int:
    """Tell the clerk why nothing was sealed and what to stamp; exit 3 because no envelope exists."""
    console = context.console
    decision = not_sealed.decision
    log.info("not sealed record_id=%s rule=%s code=%s", not_sealed.record_id, decision.rule, decision.code)
    message = ClientError(
        ExitCode.REFUSED_BY_POLICY, "scan.not_sealed", source=source.name, record_id=not_sealed.record_id,
        explanation=LocalizedText(decision.explanation, decision.explanation_en or decision.explanation),
    )
    # Not an error message: the daemon decided, and the clerk has a next step.
    print(message.localize(console.lang), file=console.stderr)
    if args.json:
        console.json({"record_id": not_sealed.record_id, "source": str(source)} | decision_json(decision, console.lang))
    return ExitCode.REFUSED_BY_POLICY


def read_inspect_request(envelope: Path) -> tuple[pb.InspectRequest, int]:
    """Build the Inspect request for an envelope file and return it with the file size.

    Raises ClientError (integrity failure) when the file is not an envelope.
    """
    envelope_file, envelope_bytes = open_envelope_file(envelope)
    with envelope_file:
        return build_inspect_request(envelope_file, envelope_bytes), envelope_bytes


def run_inspect(args: argparse.Namespace, context: CommandContext) -> int:
    """Print the unverified header facts of an envelope."""
    request, envelope_bytes = read_inspect_request(Path(args.envelope))

    channel, server = context.connect(args)
    with channel, rpc_errors_as_client_errors(server.display):
        response = pb_grpc.EnvelopeServiceStub(channel).Inspect(request, timeout=UNARY_TIMEOUT_SECONDS)

    if response.registry_mismatch:
        log.info("artefact_id=%s: header level or document number differ from the registry", response.artefact_id)
        context.console.warn("inspect.registry_mismatch_warning", envelope=args.envelope)
    if args.json:
        context.console.json(inspect_json(response, envelope_bytes))
    else:
        context.console.data(render_inspect(response, envelope_bytes, context.console.lang))
    return ExitCode.OK


def _receive_plaintext(
    responses: Iterable[pb.OpenResponse],
    handle: BinaryIO,
    progress: TransferProgress,
    check_interrupt: Callable[[], None] = lambda: None,
) -> tuple[pb.OpenSummary, int]:
    written = 0
    summary: pb.OpenSummary | None = None

    for response in responses:
        check_interrupt()
        progress.started = True
        kind = response.WhichOneof("payload")
        if kind == "chunk" and summary is None:
            progress.chunks_received += 1
            handle.write(response.chunk)
            written += len(response.chunk)
        elif kind == "summary" and summary is None:
            summary = response.summary
        else:
            raise ClientError(ExitCode.FAILURE, "error.bad_stream")

    if summary is None:
        raise ClientError(ExitCode.FAILURE, "error.bad_stream")
    return summary, written


def _add_view_failure_hints(
    error: ClientError,
    args: argparse.Namespace,
    context: CommandContext,
    channel: grpc.Channel,
    envelope: tuple[BinaryIO, int],
) -> None:
    """Add what the viewer needs to know after a failed Open: request state, or a counted open."""
    if error.reason == "NOT_APPROVED":
        envelope_file, envelope_bytes = envelope
        try:
            envelope_file.seek(0)
            inspect_request = build_inspect_request(envelope_file, envelope_bytes)
        except OSError as exc:
            log.debug("cannot reread the envelope to explain NOT_APPROVED: %s", exc)
            return
        artefact_id = find_artefact_id(channel, inspect_request)
        viewer = identity_common_name(context.identity) if context.identity is not None else None
        for message_id, params in explain_not_approved(
            channel, request_id=args.request or "", artefact_id=artefact_id, viewer=viewer
        ):
            error.add_hint(message_id, **params)
    elif error.reason == "INTEGRITY_FAILURE" or error.message_id == "error.connection_lost":
        # The daemon counts the open once the header has verified, before it
        # sends any plaintext, and does not give it back on a later failure.
        error.add_hint("view.open_may_be_counted")


def run_view(args: argparse.Namespace, context: CommandContext) -> int:
    """Open an envelope and write its plaintext atomically to ``--out``.

    On DATA_LOSS the daemon has stopped before the failing segment, but the
    plaintext received so far is discarded with the temporary file as well.
    """
    return open_to_file(args, context, lambda channel: pb_grpc.EnvelopeServiceStub(channel).Open)


# Returns the streaming Open method to call on a channel: EnvelopeService.Open
# or RecoveryService.RecoverOpen, which take and return the same messages.
OpenMethod = Callable[[grpc.Channel], Callable[[Iterator[pb.OpenRequest]], Iterator[pb.OpenResponse]]]


def open_to_file(args: argparse.Namespace, context: CommandContext, method: OpenMethod) -> int:
    """Stream ``args.envelope`` through ``method`` and write the plaintext atomically to ``args.out``."""
    console = context.console
    if getattr(args, "spool", None):
        return run_view_spool(args, context)
    envelope = Path(args.envelope)
    out = Path(args.out)
    check_output_path(out, force=args.force, inputs=[envelope])
    envelope_file, envelope_bytes = open_envelope_file(envelope)

    channel, server = context.connect(args)
    progress = TransferProgress()
    with channel, envelope_file:
        open_call = method(channel)
        try:
            with atomic_output(out, force=args.force) as handle, rpc_errors_as_client_errors(server.display, progress):
                requests = iter_open_requests(args.request or "", envelope_file, CHUNK_BYTES)
                with deferred_interrupts() as interrupts:
                    responses = open_call(track_requests(requests, progress))
                    try:
                        summary, written = _receive_plaintext(responses, handle, progress, interrupts.check)
                    finally:
                        responses.cancel()  # type: ignore[attr-defined]
                if summary.plaintext_bytes != written:
                    raise ClientError(
                        ExitCode.INTEGRITY_FAILURE,
                        "error.size_mismatch",
                        received=written,
                        reported=summary.plaintext_bytes,
                    )
        except ClientError as exc:
            _add_view_failure_hints(exc, args, context, channel, (envelope_file, envelope_bytes))
            raise

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
