"""Reading a whole envelope inside the daemon, for Verify and Print.

Both calls decrypt an envelope without sending its plaintext back: Verify
returns only the plaintext's SHA-256, and Print returns a stamped copy. The
plaintext stays in the daemon's memory and is never written to disk.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from niemphong.daemon import envelope
from niemphong.daemon.access import check_not_abandoned
from niemphong.daemon.errors import ServiceError, TokenUnavailable, abort
from niemphong.daemon.identity import CallContext
from niemphong.daemon.levels import Level
from niemphong.daemon.store import ArtefactRecord
from niemphong.daemon.token_aead import TokenDataKey
from niemphong.v1 import niemphong_pb2 as pb

if TYPE_CHECKING:
    from niemphong.daemon.services.envelope_service import EnvelopeServicer

log = logging.getLogger(__name__)


def _integrity_failure() -> ServiceError:
    # The same single error as Open, for the same reason: an altered envelope
    # must not reveal which check failed.
    return ServiceError("INTEGRITY_FAILURE", "envelope failed integrity check")


def read_registered_header(
    servicer: EnvelopeServicer, chunks: Iterator[bytes], context: CallContext
) -> tuple[envelope.Header, bytes, ArtefactRecord]:
    """Parse the envelope header and find its artefact; an unregistered envelope is an integrity failure."""
    header, rest = servicer._read_header(chunks)
    artefact_id = header.artefact_id.hex()
    context.facts["artefact_id"] = artefact_id

    with servicer.access.store.transaction() as tx:
        artefact = tx.get_artefact(artefact_id)
    if artefact is None or artefact.level != header.level:
        raise _integrity_failure()
    context.facts["level"] = Level(artefact.level).config_name
    check_not_abandoned(artefact)
    return header, rest, artefact


def open_envelope(
    servicer: EnvelopeServicer, header: envelope.Header, artefact: ArtefactRecord, context: CallContext,
) -> envelope.Opener:
    """Unwrap the data key on the token, with the slot the registry recorded, and verify the header against it."""
    data_key = servicer._unwrap(header, artefact)
    if isinstance(data_key, TokenDataKey):
        # An in-token key holds a token session until the call ends.
        context.add_callback(data_key.close)
    try:
        return envelope.Opener(header, data_key)
    except envelope.IntegrityError:
        raise _integrity_failure() from None
    finally:
        del data_key


def iter_plaintext(opener: envelope.Opener, rest: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Yield the plaintext segment by segment; any failed tag raises INTEGRITY_FAILURE."""
    try:
        if rest:
            yield opener.update(rest)
        for data in chunks:
            yield opener.update(data)
        yield opener.finalize()
    except envelope.IntegrityError:
        raise _integrity_failure() from None


def _verify_chunks(servicer: EnvelopeServicer, request_iterator: Iterator[pb.VerifyRequest]) -> Iterator[bytes]:
    limit = servicer.config.chunk_bytes
    for message in request_iterator:
        if len(message.chunk) > limit:
            raise ServiceError(
                "FIELD_TOO_LONG", f"chunk of {len(message.chunk)} bytes exceeds {limit}",
                {"field": "chunk", "max": str(limit)},
            )
        yield message.chunk


def _verify(
    servicer: EnvelopeServicer, request_iterator: Iterator[pb.VerifyRequest], context: CallContext
) -> pb.VerifyResponse:
    chunks = _verify_chunks(servicer, request_iterator)
    header, rest, artefact = read_registered_header(servicer, chunks, context)
    # The digest of someone else's document would be an oracle for guessing
    # its content, so only the scanner who sealed it may ask.
    if artefact.sealed_by != context.identity.name:
        raise ServiceError("NOT_YOUR_ARTEFACT", "only the scanner who sealed an artefact may verify it")

    opener = open_envelope(servicer, header, artefact, context)
    digest = hashlib.sha256()
    plaintext_bytes = 0
    for plain in iter_plaintext(opener, rest, chunks):
        digest.update(plain)
        plaintext_bytes += len(plain)

    context.facts["plaintext_bytes"] = plaintext_bytes
    log.info(
        "request %s verified artefact %s for %s: %d plaintext bytes",
        context.request_id, artefact.artefact_id, context.identity.name, plaintext_bytes,
    )
    return pb.VerifyResponse(
        artefact_id=artefact.artefact_id, plaintext_bytes=plaintext_bytes, plaintext_sha256=digest.hexdigest(),
    )


def verify_envelope(
    servicer: EnvelopeServicer, request_iterator: Iterator[pb.VerifyRequest], context: CallContext
) -> pb.VerifyResponse:
    """Serve EnvelopeService/Verify."""
    try:
        return _verify(servicer, request_iterator, context)
    except ServiceError as error:
        context.facts["reason"] = error.reason
        log.warning(
            "request %s verify by %s refused: %s (%s)", context.request_id, context.identity.name,
            error.reason, error.message,
        )
        abort(context, error)
    except TokenUnavailable as exc:
        log.error("request %s verify failed: %s", context.request_id, exc)
        abort(context, ServiceError("TOKEN_UNAVAILABLE", "the token is unavailable"))
    raise AssertionError("unreachable")
