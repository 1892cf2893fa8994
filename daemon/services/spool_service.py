"""SpoolService: SealFile and OpenFile on files in the caller's spool directory.

The access rules, token calls and registry entries are those of
EnvelopeService (its begin_seal, finish_seal and begin_open); only where the
bytes come from and go to differs. Every path check runs before the token is
used, so a rejected path costs no token call and no open of a grant.
"""

from __future__ import annotations

import errno
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import TypeVar

from niemphong.daemon import envelope, envelope_file, validation
from niemphong.daemon.errors import ServiceError, TokenUnavailable, abort
from niemphong.daemon.identity import CallContext
from niemphong.daemon.services.envelope_service import EnvelopeServicer
from niemphong.daemon.spool import Spool, SpoolConfig, SpoolError, split_path
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

Response = TypeVar("Response")


class SpoolServicer(pb_grpc.SpoolServiceServicer):
    def __init__(self, config: SpoolConfig | None, envelopes: EnvelopeServicer) -> None:
        self.envelopes = envelopes
        self.spool = Spool(config) if config is not None else None
        self.workers = config.workers if config is not None else 1
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="spool")

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def SealFile(self, request: pb.SealFileRequest, context: CallContext) -> pb.SealFileResponse:
        return self._guard("seal", context, lambda: self._seal_file(request, context))

    def OpenFile(self, request: pb.OpenFileRequest, context: CallContext) -> pb.OpenSummary:
        return self._guard("open", context, lambda: self._open_file(request, context))

    def _guard(self, action: str, context: CallContext, call: Callable[[], Response]) -> Response:
        try:
            return call()
        except SpoolError as exc:
            metadata = {"field": exc.field}
            if exc.problem:
                metadata["problem"] = exc.problem
            error = ServiceError(exc.reason, exc.message, metadata)
        except ServiceError as exc:
            error = exc
        except TokenUnavailable as exc:
            log.error("request %s spool %s failed: %s", context.request_id, action, exc)
            error = ServiceError("TOKEN_UNAVAILABLE", "the token is unavailable")
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "EIO")
            log.error("request %s spool %s failed: %s", context.request_id, action, exc.strerror)
            error = ServiceError("SPOOL_IO_FAILED", f"spool file input or output failed: {exc.strerror}", {"problem": name})
        except Exception:
            log.exception("request %s spool %s by %s failed unexpectedly", context.request_id, action, context.identity.name)
            error = ServiceError("INTERNAL", f"internal error; see the daemon log for request {context.request_id}")
        context.facts["reason"] = error.reason
        log.warning(
            "request %s spool %s by %s refused: %s (%s)",
            context.request_id, action, context.identity.name, error.reason, error.message,
        )
        abort(context, error)
        raise AssertionError("unreachable")

    def _require_spool(self) -> Spool:
        if self.spool is None:
            raise ServiceError("SPOOL_DISABLED", "local spool mode is not configured on this daemon ([spool] root)")
        return self.spool

    def _seal_file(self, request: pb.SealFileRequest, context: CallContext) -> pb.SealFileResponse:
        spool = self._require_spool()
        split_path(request.source_path, "source_path")
        split_path(request.envelope_path, "envelope_path")
        identity = context.identity.name

        with spool.open_input(identity, request.source_path, "source_path") as source, \
                spool.create_output(
                    identity, request.envelope_path, "envelope_path", replace=request.replace, not_same_as=source,
                ) as output:
            start = self.envelopes.begin_seal(request.metadata, context)
            if isinstance(start, pb.NotSealed):
                # Not secret under the classification rules: the temporary
                # output is removed on leaving, and nothing is written.
                return pb.SealFileResponse(not_sealed=start)
            try:
                result = envelope_file.seal_file(
                    start.sealer, source.fd, source.size, output.fd, executor=self._executor, workers=self.workers,
                )
            except envelope_file.SourceChanged:
                raise SpoolError(
                    "SPOOL_FILE_REJECTED", "source_path", "source_path became shorter while it was read", "changed",
                ) from None
            source.check_unchanged("source_path")
            os.fsync(output.fd)
            # The daemon flushed the envelope itself, so the seal needs no
            # ConfirmSeal from the client.
            # NOTE: a failed rename in output.commit() below leaves this
            # artefact confirmed without an envelope under its final name.
            summary = self.envelopes.finish_seal(
                start, result.plaintext_bytes, result.envelope_bytes, result.envelope_sha256, context,
                confirmed=True,
            )
            output.commit()
        context.facts["spool"] = 1
        return pb.SealFileResponse(summary=summary)

    def _open_file(self, request: pb.OpenFileRequest, context: CallContext) -> pb.OpenSummary:
        spool = self._require_spool()
        request_id = validation.hex_id("request_id", request.request_id) if request.request_id else None
        split_path(request.envelope_path, "envelope_path")
        split_path(request.output_path, "output_path")
        identity = context.identity.name

        with spool.open_input(identity, request.envelope_path, "envelope_path") as source, \
                spool.create_output(
                    identity, request.output_path, "output_path", replace=request.replace, not_same_as=source,
                ) as output:
            header = _read_header(source.fd)
            opener, grant = self.envelopes.begin_open(header, request_id, context)
            artefact_id = header.artefact_id.hex()
            try:
                plaintext_bytes = envelope_file.open_file(
                    opener, source.fd, source.size, output.fd, executor=self._executor, workers=self.workers,
                )
            except envelope.IntegrityError:
                log.warning("request %s spool open of artefact %s failed integrity", context.request_id, artefact_id)
                raise ServiceError("INTEGRITY_FAILURE", "envelope failed integrity check") from None
            output.commit()

        context.facts.update(plaintext_bytes=plaintext_bytes, spool=1)
        return pb.OpenSummary(
            artefact_id=artefact_id,
            plaintext_bytes=plaintext_bytes,
            opens_remaining=grant.opens_allowed - grant.opens_used,
        )


def _read_header(fd: int) -> envelope.Header:
    try:
        preamble = os.pread(fd, envelope.PREAMBLE_LEN, 0)
        header_len = envelope.read_header_length(preamble)
        return envelope.parse_header(os.pread(fd, header_len, 0))
    except envelope.IntegrityError:
        raise ServiceError("INTEGRITY_FAILURE", "envelope failed integrity check") from None
