"""EnvelopeService: Seal, Open and Inspect."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from niemphong.daemon import envelope, validation
from niemphong.daemon.access import AccessControl, check_not_abandoned
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.config import Config
from niemphong.daemon.errors import ServiceError, TokenUnavailable, abort
from niemphong.daemon.handover import check_batch_seal, record_batch_not_secret, record_batch_seal
from niemphong.daemon.hsm import Pkcs11Token, UnwrapFailed
from niemphong.daemon.identity import CallContext
from niemphong.daemon.keys import KeyRegistry
from niemphong.daemon.levels import Level
from niemphong.daemon.policy.decision import Outcome
from niemphong.daemon.policy.periods import today_in_vietnam
from niemphong.daemon.prefetch import prefetched
from niemphong.daemon.services.classification import Classifier, Verdict
from niemphong.daemon.services.envelope_reading import verify_envelope
from niemphong.daemon.services.seal_confirmation import (
    abandon_seal,
    confirm_seal,
    supersede_artefact,
)
from niemphong.daemon.token_aead import TokenDataKey
from niemphong.daemon.store import ArtefactRecord, GrantRecord, StateTransaction
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

MAX_INSPECT_HEAD = 80 * 1024

T = TypeVar("T")


def _integrity_failure() -> ServiceError:
    # One error for every way an envelope can be wrong, so that a caller
    # probing with altered envelopes learns nothing about which check failed.
    return ServiceError("INTEGRITY_FAILURE", "envelope failed integrity check")


@dataclass(frozen=True)
class SealStart:
    """A seal after its token call: the checked metadata, its verdict, the key slot and the sealer."""

    level: Level
    metadata: dict[str, str]
    slot: envelope.KeySlot
    artefact_id: bytes
    sealed_at: int
    sealer: envelope.Sealer
    verdict: Verdict
    batch_id: str | None
    page_count: int
    recovery_slot: envelope.KeySlot | None
    core_sha256: str
    # The unconfirmed artefact of the batch document that this seal replaces.
    replaces: str | None = None


class EnvelopeServicer(pb_grpc.EnvelopeServiceServicer):
    def __init__(
        self, config: Config, token: Pkcs11Token, keys: KeyRegistry, access: AccessControl, audit: AuditTrail,
        classifier: Classifier | None = None,
    ) -> None:
        self.config = config
        self.token = token
        self.keys = keys
        self.access = access
        self.audit = audit
        assert config.policy is not None
        self.classifier = classifier or Classifier(config.policy)

    # Seal -----------------------------------------------------------------

    def Seal(self, request_iterator: Iterator[pb.SealRequest], context: CallContext) -> Iterator[pb.SealResponse]:
        return _guarded("seal", self._seal(request_iterator, context), context)

    def _seal(self, request_iterator: Iterator[pb.SealRequest], context: CallContext) -> Iterator[pb.SealResponse]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise ServiceError("PROTOCOL_VIOLATION", "the first Seal message must carry metadata")
        start = self.begin_seal(first.metadata, context)
        if isinstance(start, pb.NotSealed):
            yield pb.SealResponse(not_sealed=start)
            return

        # The header goes out at once: it tells the client that the checks
        # before any token call passed, before it sends the document.
        header = start.sealer.header_bytes
        yield pb.SealResponse(chunk=header)
        envelope_bytes = len(header)

        body = _SealedBody(start.sealer, request_iterator, self.config.chunk_bytes)
        # The body is read, sealed and hashed on a reader thread, so that the
        # next request chunk arrives while this thread sends the last result.
        sealed_pieces = prefetched(iter(body), alive=context.is_active)
        for chunk in _whole_chunks(sealed_pieces, self.config.chunk_bytes):
            envelope_bytes += len(chunk)
            yield pb.SealResponse(chunk=chunk)

        summary = self.finish_seal(start, body.plaintext_bytes, envelope_bytes, body.envelope_sha256(), context)
        yield pb.SealResponse(summary=summary)

    def SealSmall(self, request: pb.SealSmallRequest, context: CallContext) -> pb.SealSmallResponse:
        def respond() -> Iterator[pb.SealSmallResponse]:
            yield self._seal_small(request, context)

        return next(_guarded("seal", respond(), context))

    def _seal_small(self, request: pb.SealSmallRequest, context: CallContext) -> pb.SealSmallResponse:
        document = request.document
        if len(document) > self.config.chunk_bytes:
            raise ServiceError(
                "FIELD_TOO_LONG", f"document of {len(document)} bytes exceeds {self.config.chunk_bytes}; use Seal",
                {"field": "document", "max": str(self.config.chunk_bytes)},
            )

        start = self.begin_seal(request.metadata, context)
        if isinstance(start, pb.NotSealed):
            return pb.SealSmallResponse(not_sealed=start)

        sealer = start.sealer
        sealed = b"".join((sealer.header_bytes, sealer.update(document), sealer.finalize()))
        sha256 = hashlib.sha256(sealed).hexdigest()
        summary = self.finish_seal(start, len(document), len(sealed), sha256, context)
        return pb.SealSmallResponse(sealed=pb.Sealed(envelope=sealed, summary=summary))

    def begin_seal(self, request: pb.SealMetadata, context: CallContext) -> SealStart | pb.NotSealed:
        """Check the metadata and decide under the classification rules, then draw and wrap a data key.

        Returns the NotSealed record, already stored, when the rules find the
        document not secret; nothing is sealed then and no token call is made.
        Raises ServiceError when the rules refuse the document.
        """
        stated_level, metadata = self._check_seal_metadata(request, context)
        # Batch scanning: refuse before any token call when the batch does not allow this seal.
        batch_id = validation.hex_id("batch_id", request.batch_id) if request.batch_id else None
        page_count = validation.bounded("page_count", request.page_count, validation.MAX_PAGES)
        replaces = None
        if batch_id is not None:
            context.facts["batch_id"] = batch_id
            with self.access.store.transaction() as tx:
                listed = check_batch_seal(tx, batch_id, metadata["doc_number"], stated_level, metadata["issued_on"])
            replaces = listed.artefact_id
        # The classification rules decide; a refusal raises before anything is kept.
        verdict = self.classifier.decide_seal(stated_level, metadata, request.classification, context)
        if verdict.decision.outcome is Outcome.NOT_SECRET:
            with self.access.store.transaction() as tx:
                not_sealed = self.classifier.record_not_sealed(tx, verdict, metadata, context)
                if batch_id is not None:
                    record_batch_not_secret(
                        tx, batch_id, metadata["doc_number"], not_sealed.record_id, page_count, int(time.time()),
                    )
                context.facts["doc_number"] = metadata["doc_number"]
                # Fail closed: without a durable audit record the decision rolls back.
                self.audit.record_decision(context)
            log.info(
                "request %s declined to seal %s by %s: not secret under rule %s (%s), record %s",
                context.request_id, metadata["doc_number"], context.identity.name, verdict.decision.rule,
                verdict.decision.code, not_sealed.record_id,
            )
            return not_sealed

        assert verdict.decision.level is not None
        level = verdict.decision.level
        data_key, slots = self.keys.new_data_key(level)
        if isinstance(data_key, TokenDataKey):
            # In-token mode: the data key never leaves the token, which seals every segment.
            context.add_callback(data_key.close)
        slot = slots[0]
        recovery_slot = slots[1] if len(slots) > 1 else None
        artefact_id = os.urandom(16)
        sealed_at = int(time.time())
        sealer = envelope.Sealer(
            data_key, artefact_id=artefact_id, level=int(level), metadata=metadata, slots=slots, sealed_at=sealed_at,
        )
        del data_key
        core_sha256 = hashlib.sha256(envelope.parse_header(sealer.header_bytes).core_bytes).hexdigest()
        return SealStart(
            level, metadata, slot, artefact_id, sealed_at, sealer, verdict, batch_id, page_count, recovery_slot, core_sha256,
            replaces,
        )

    def finish_seal(
        self, start: SealStart, plaintext_bytes: int, envelope_bytes: int, envelope_sha256: str, context: CallContext,
        *, confirmed: bool = False,
    ) -> pb.SealSummary:
        """Register the artefact of a whole envelope with its classification record and return the summary.

        The artefact stays unconfirmed until the client reports a durable
        envelope with ConfirmSeal, unless ``confirmed`` says that the daemon
        wrote and flushed the envelope itself (the spool).
        """
        level, metadata, slot = start.level, start.metadata, start.slot
        # The artefact enters the registry only once its envelope is whole;
        # a client that never receives the summary must discard what it got.
        artefact_hex = start.artefact_id.hex()
        context.facts.update(
            artefact_id=artefact_hex, doc_number=metadata["doc_number"], plaintext_bytes=plaintext_bytes,
            envelope_bytes=envelope_bytes, key_id=slot.key_id, key_version=slot.key_version,
        )
        if start.replaces is not None:
            # Found by the audit history of the replaced artefact too.
            context.facts["superseded_artefact_id"] = start.replaces
        record = ArtefactRecord(
            artefact_id=artefact_hex,
            level=int(level),
            doc_number=metadata["doc_number"],
            issued_on=metadata["issued_on"],
            title=metadata.get("title", ""),
            source_name=metadata.get("source_name", ""),
            key_id=slot.key_id,
            key_version=slot.key_version,
            wrap_algorithm=slot.wrap_algorithm,
            plaintext_bytes=plaintext_bytes,
            envelope_bytes=envelope_bytes,
            envelope_sha256=envelope_sha256,
            sealed_by=context.identity.name,
            sealed_at=start.sealed_at,
            batch_id=start.batch_id,
            page_count=start.page_count,
            recovery_key_id=start.recovery_slot.key_id if start.recovery_slot else None,
            recovery_key_version=start.recovery_slot.key_version if start.recovery_slot else None,
            core_sha256=start.core_sha256,
            confirmed_at=start.sealed_at if confirmed else None,
        )
        classification = start.verdict.record(artefact_hex, artefact_hex, metadata, context.identity.name, start.sealed_at)

        def register(tx: StateTransaction) -> None:
            tx.insert_artefact(record)
            tx.insert_classification(classification)
            if start.batch_id is not None:
                record_batch_seal(
                    tx, start.batch_id, metadata["doc_number"], artefact_hex, start.page_count, start.sealed_at,
                    start.replaces,
                )
                if start.replaces is not None:
                    supersede_artefact(tx, start.replaces, start.sealed_at)
                if confirmed:
                    tx.confirm_batch_seal(artefact_hex, start.sealed_at)
            # Fail closed: without a durable audit record the registration
            # rolls back and no summary is sent.
            self.audit.record_decision(context)

        # Registering reads nothing that another seal changes, so concurrent
        # seals may share one SQLite commit and its disk flush. Each audit
        # record is still made durable on its own, inside its seal's savepoint.
        self.access.store.write_grouped(register)

        log.info(
            "request %s sealed artefact %s (%s) by %s: %d plaintext bytes, %d envelope bytes, key %s v%d",
            context.request_id, artefact_hex, level.name, context.identity.name,
            plaintext_bytes, envelope_bytes, slot.key_id, slot.key_version,
        )
        if start.replaces is not None:
            log.warning(
                "request %s: artefact %s replaces unconfirmed artefact %s of batch %s document %s, now abandoned",
                context.request_id, artefact_hex, start.replaces, start.batch_id, metadata["doc_number"],
            )
        return pb.SealSummary(
            artefact_id=artefact_hex,
            level=int(level),
            key=pb.KeyRef(key_id=slot.key_id, version=slot.key_version, wrap_algorithm=slot.wrap_algorithm),
            plaintext_bytes=plaintext_bytes,
            envelope_bytes=envelope_bytes,
            envelope_sha256=envelope_sha256,
            decision=start.verdict.to_proto(),
        )

    def _check_seal_metadata(
        self, metadata: pb.SealMetadata, context: CallContext,
    ) -> tuple[Level | None, dict[str, str]]:
        level = Level.from_proto(metadata.level)
        # Without a level, only a standing decision for the kind can give one.
        if level is None and not metadata.classification.standing_decision:
            raise ServiceError("LEVEL_MISSING", "the classification level is missing or unknown")
        if level is not None:
            context.facts["level"] = level.config_name

        document = metadata.document
        fields = {
            "doc_number": validation.text("doc_number", document.doc_number, validation.MAX_DOC_NUMBER),
            "issued_on": validation.iso_date("issued_on", document.issued_on, not_after=today_in_vietnam()),
        }
        title = validation.text("title", document.title, validation.MAX_TITLE, required=False)
        if title:
            fields["title"] = title
        source_name = validation.source_name(document.source_name)
        if source_name:
            fields["source_name"] = source_name
        return level, fields

    # Open -----------------------------------------------------------------

    def Open(self, request_iterator: Iterator[pb.OpenRequest], context: CallContext) -> Iterator[pb.OpenResponse]:
        return _guarded("open", self._open(request_iterator, context), context)

    def _open(self, request_iterator: Iterator[pb.OpenRequest], context: CallContext) -> Iterator[pb.OpenResponse]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "start":
            raise ServiceError("PROTOCOL_VIOLATION", "the first Open message must be OpenStart")
        request_id = validation.hex_id("request_id", first.start.request_id) if first.start.request_id else None
        chunks = self._chunks(prefetched(request_iterator, alive=context.is_active))

        header, rest = self._read_header(chunks)
        opener, grant = self.begin_open(header, request_id, context)
        artefact_id = header.artefact_id.hex()

        plaintext_bytes = 0
        try:
            for data in _prepend(rest, chunks):
                plain = opener.update(data)
                plaintext_bytes += len(plain)
                yield from self._plain_chunks(plain)
            plain = opener.finalize()
        except envelope.IntegrityError:
            log.warning(
                "request %s open of artefact %s failed integrity after %d plaintext bytes",
                context.request_id, artefact_id, plaintext_bytes,
            )
            raise _integrity_failure() from None
        plaintext_bytes += len(plain)
        yield from self._plain_chunks(plain)
        context.facts["plaintext_bytes"] = plaintext_bytes

        yield pb.OpenResponse(summary=pb.OpenSummary(
            artefact_id=artefact_id,
            plaintext_bytes=plaintext_bytes,
            opens_remaining=grant.opens_allowed - grant.opens_used,
        ))

    def begin_open(
        self, header: envelope.Header, request_id: str | None, context: CallContext,
    ) -> tuple[envelope.Opener, GrantRecord]:
        """Check the registry and the grant, unwrap the data key, verify the header and count one open."""
        artefact_id = header.artefact_id.hex()
        viewer = context.identity
        context.facts["artefact_id"] = artefact_id
        if request_id:
            context.facts["access_request_id"] = request_id

        # An envelope this daemon never sealed, or whose level disagrees with
        # the registry, is not ours: the same error as any altered byte.
        with self.access.store.transaction() as tx:
            artefact = tx.get_artefact(artefact_id)
        if artefact is None or artefact.level != header.level:
            raise _integrity_failure()
        context.facts["level"] = Level(artefact.level).config_name
        check_not_abandoned(artefact)
        # Refuse before any token call when there is no grant at all.
        self.access.find_grant(viewer, artefact_id, request_id)

        data_key = self._unwrap(header, artefact)
        if isinstance(data_key, TokenDataKey):
            context.add_callback(data_key.close)
        try:
            opener = envelope.Opener(header, data_key)
        except envelope.IntegrityError:
            raise _integrity_failure() from None
        finally:
            del data_key

        def record_open(grant: GrantRecord) -> None:
            # Runs inside the transaction that counts the open: without a
            # durable audit record the open is not counted and no plaintext leaves.
            context.facts.update(
                access_request_id=grant.request_id, opens_used=grant.opens_used,
                opens_allowed=grant.opens_allowed, plaintext_bytes=artefact.plaintext_bytes,
            )
            self.audit.record_decision(context)

        grant = self.access.count_open(viewer, artefact_id, request_id, before_commit=record_open)
        log.info(
            "request %s open of artefact %s (%s) by %s under grant %s (%d of %d opens)",
            context.request_id, artefact_id, Level(artefact.level).name, viewer.name,
            grant.request_id, grant.opens_used, grant.opens_allowed,
        )
        return opener, grant

    def _chunks(self, request_iterator: Iterator[pb.OpenRequest]) -> Iterator[bytes]:
        for message in request_iterator:
            if message.WhichOneof("payload") != "chunk":
                raise ServiceError("PROTOCOL_VIOLATION", "only chunks may follow OpenStart")
            if len(message.chunk) > self.config.chunk_bytes:
                raise ServiceError(
                    "FIELD_TOO_LONG", f"chunk of {len(message.chunk)} bytes exceeds {self.config.chunk_bytes}",
                    {"field": "chunk", "max": str(self.config.chunk_bytes)},
                )
            yield message.chunk

    @staticmethod
    def _read_header(chunks: Iterator[bytes]) -> tuple[envelope.Header, bytes]:
        buffer = bytearray()
        needed = envelope.PREAMBLE_LEN
        try:
            while True:
                while len(buffer) < needed:
                    chunk = next(chunks, None)
                    if chunk is None:
                        raise _integrity_failure()
                    buffer += chunk
                if needed == envelope.PREAMBLE_LEN:
                    needed = envelope.read_header_length(bytes(buffer[:envelope.PREAMBLE_LEN]))
                    continue
                header = envelope.parse_header(bytes(buffer[:needed]))
                return header, bytes(buffer[needed:])
        except envelope.IntegrityError:
            raise _integrity_failure() from None

    def _unwrap(self, header: envelope.Header, artefact: ArtefactRecord) -> bytes | envelope.InTokenKey:
        # The header is not authenticated yet, so the registry chooses the
        # slot from what it recorded for the artefact.
        slot = self.keys.opening_slot(header, artefact)
        try:
            if header.aead == envelope.AEAD_TOKEN_AES256GCM:
                return self.token.unwrap_in_token_data_key(slot)
            return self.token.unwrap_data_key(slot)
        except KeyError:
            raise ServiceError(
                "KEY_UNAVAILABLE", f"key {slot.key_id} v{slot.key_version} not found in the token",
            ) from None
        except UnwrapFailed:
            raise _integrity_failure() from None

    def _plain_chunks(self, data: bytes) -> Iterator[pb.OpenResponse]:
        for start in range(0, len(data), self.config.chunk_bytes):
            yield pb.OpenResponse(chunk=data[start:start + self.config.chunk_bytes])

    # Verify ---------------------------------------------------------------

    def Verify(self, request_iterator: Iterator[pb.VerifyRequest], context: CallContext) -> pb.VerifyResponse:
        return verify_envelope(self, request_iterator, context)

    # ConfirmSeal and AbandonSeal ------------------------------------------

    def ConfirmSeal(self, request: pb.ConfirmSealRequest, context: CallContext) -> pb.SealState:
        return _unary("confirm seal", lambda: confirm_seal(self, request, context), context)

    def AbandonSeal(self, request: pb.AbandonSealRequest, context: CallContext) -> pb.SealState:
        return _unary("abandon seal", lambda: abandon_seal(self, request, context), context)

    # Inspect --------------------------------------------------------------

    def Inspect(self, request: pb.InspectRequest, context: CallContext) -> pb.InspectResponse:
        if len(request.envelope_head) > MAX_INSPECT_HEAD:
            abort(context, ServiceError(
                "FIELD_TOO_LONG", f"envelope_head exceeds {MAX_INSPECT_HEAD} bytes",
                {"field": "envelope_head", "max": str(MAX_INSPECT_HEAD)},
            ))
        try:
            header = envelope.parse_header(request.envelope_head)
        except envelope.IntegrityError:
            abort(context, _integrity_failure())
            raise AssertionError("unreachable")

        artefact_id = header.artefact_id.hex()
        context.facts["artefact_id"] = artefact_id
        with self.access.store.transaction() as tx:
            artefact = tx.get_artefact(artefact_id)
        # A copy whose size differs from the registered envelope was cut off
        # (a seal interrupted after registration) or extended: it does not
        # count as the registered envelope.
        size_differs = artefact is not None and bool(request.envelope_bytes) and (
            request.envelope_bytes != artefact.envelope_bytes
        )
        registry_mismatch = artefact is not None and (
            artefact.level != header.level or artefact.doc_number != header.metadata.get("doc_number")
        )
        if registry_mismatch:
            log.warning("request %s inspect of artefact %s: header differs from the registry", context.request_id, artefact_id)
        plaintext = 0
        if request.envelope_bytes and not size_differs:
            plaintext = envelope.plaintext_length(request.envelope_bytes, header.header_len, header.segment_size) or 0

        metadata = header.metadata
        return pb.InspectResponse(
            format_version=envelope.FORMAT_VERSION,
            artefact_id=artefact_id,
            level=header.level,
            document=pb.DocumentMetadata(
                doc_number=metadata.get("doc_number", ""),
                issued_on=metadata.get("issued_on", ""),
                title=metadata.get("title", ""),
                source_name=metadata.get("source_name", ""),
            ),
            keys=[
                pb.KeyRef(key_id=slot.key_id, version=slot.key_version, wrap_algorithm=slot.wrap_algorithm)
                for slot in header.slots
            ],
            segment_bytes=header.segment_size,
            header_bytes=header.header_len,
            plaintext_bytes=plaintext,
            sealed_at=header.sealed_at,
            registered=artefact is not None and not size_differs,
            registry_mismatch=registry_mismatch,
        )


def _unary(operation: str, call: Callable[[], T], context: CallContext) -> T:
    def respond() -> Iterator[T]:
        yield call()

    return next(_guarded(operation, respond(), context))


def _guarded(operation: str, responses: Iterator[T], context: CallContext) -> Iterator[T]:
    """Stream ``responses``, turning every failure into one logged gRPC status."""
    try:
        yield from responses
    except ServiceError as error:
        context.facts["reason"] = error.reason
        log.warning(
            "request %s %s by %s refused: %s (%s)",
            context.request_id, operation, context.identity.name, error.reason, error.message,
        )
        abort(context, error)
    except TokenUnavailable as exc:
        context.facts["reason"] = "TOKEN_UNAVAILABLE"
        log.error("request %s %s by %s failed: %s", context.request_id, operation, context.identity.name, exc)
        abort(context, ServiceError("TOKEN_UNAVAILABLE", "the token is unavailable"))
    except Exception:
        context.facts["reason"] = "INTERNAL"
        log.exception("request %s %s by %s failed unexpectedly", context.request_id, operation, context.identity.name)
        abort(context, ServiceError("INTERNAL", f"internal error; see the daemon log for request {context.request_id}"))


class _SealedBody:
    """The sealed body of a Seal stream, from its request chunks, and the SHA-256 of the whole envelope.

    Iterate it once; plaintext_bytes and envelope_sha256() are final after
    the iteration ends.
    """

    def __init__(self, sealer: envelope.Sealer, requests: Iterator[pb.SealRequest], chunk_bytes: int) -> None:
        self._sealer = sealer
        self._requests = requests
        self._chunk_bytes = chunk_bytes
        self._digest = hashlib.sha256(sealer.header_bytes)
        self.plaintext_bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for message in self._requests:
            if message.WhichOneof("payload") != "chunk":
                raise ServiceError("PROTOCOL_VIOLATION", "only chunks may follow the Seal metadata")
            if len(message.chunk) > self._chunk_bytes:
                raise ServiceError(
                    "FIELD_TOO_LONG", f"chunk of {len(message.chunk)} bytes exceeds {self._chunk_bytes}",
                    {"field": "chunk", "max": str(self._chunk_bytes)},
                )
            self.plaintext_bytes += len(message.chunk)
            sealed = self._sealer.update(message.chunk)
            self._digest.update(sealed)
            yield sealed
        sealed = self._sealer.finalize()
        self._digest.update(sealed)
        yield sealed

    def envelope_sha256(self) -> str:
        return self._digest.hexdigest()


def _whole_chunks(pieces: Iterator[bytes], chunk_bytes: int) -> Iterator[bytes]:
    """Regroup ``pieces`` into chunks of ``chunk_bytes``, the last one shorter.

    Each response message costs a round of flow control. A 1 MiB request
    chunk gives 1 MiB plus the segment tags of envelope bytes, which would
    otherwise be a second, tiny message, and a small document's segments
    go out as one message.
    """
    pending: list[bytes] = []
    pending_bytes = 0
    for piece in pieces:
        pending.append(piece)
        pending_bytes += len(piece)
        if pending_bytes < chunk_bytes:
            # A client sending small chunks gets each one's envelope bytes at
            # once; only the tail of a large chunk waits for the next one.
            if len(piece) < chunk_bytes // 2:
                yield b"".join(pending)
                pending = []
                pending_bytes = 0
            continue
        joined = b"".join(pending)
        whole = len(joined) - len(joined) % chunk_bytes
        for offset in range(0, whole, chunk_bytes):
            yield joined[offset:offset + chunk_bytes]
        pending = [joined[whole:]]
        pending_bytes = len(joined) - whole
    if pending_bytes:
        yield b"".join(pending)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
