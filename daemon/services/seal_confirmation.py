"""ConfirmSeal and AbandonSeal: whether the envelope of a sealed artefact was kept.

Seal registers an artefact once the whole envelope has been streamed out,
but the daemon cannot see whether the client managed to write it: a full
disk or a failed rename leaves a registered artefact with no envelope. So a
sealed artefact starts unconfirmed. The client confirms it once the
envelope is durably written under its final name, or abandons it when the
write failed. A batch document counts as digitized only once its artefact is
confirmed, and an unconfirmed one may be sealed again, which abandons the
old artefact.

An abandoned artefact is kept in the registry and the audit log, but it is
never opened, printed or granted: any copy of its envelope that a client
kept is not the document's live envelope.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from niemphong.daemon import validation
from niemphong.daemon.access import check_not_abandoned
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import CallContext
from niemphong.daemon.store import ABANDONED_NOT_KEPT, ABANDONED_SUPERSEDED, ArtefactRecord, StateTransaction
from niemphong.v1 import niemphong_pb2 as pb

if TYPE_CHECKING:
    from niemphong.daemon.services.envelope_service import EnvelopeServicer

log = logging.getLogger(__name__)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def supersede_artefact(tx: StateTransaction, artefact_id: str, now: int) -> None:
    """Abandon the unconfirmed artefact that a new seal of its batch document replaces, and revoke its grants."""
    if not tx.abandon_artefact(artefact_id, now, ABANDONED_SUPERSEDED):
        # Unreachable: record_batch_seal checked in this transaction that
        # the document still names it unconfirmed, and AbandonSeal, the only
        # other way to abandon it, unties it from the document first.
        raise RuntimeError(f"artefact {artefact_id} is no longer unconfirmed")
    tx.revoke_grants([artefact_id])


def confirm_seal(servicer: EnvelopeServicer, request: pb.ConfirmSealRequest, context: CallContext) -> pb.SealState:
    """Record that the caller durably wrote the envelope of an artefact it sealed."""
    artefact_id = validation.hex_id("artefact_id", request.artefact_id)
    envelope_sha256 = request.envelope_sha256.lower()
    if not _SHA256_HEX.fullmatch(envelope_sha256):
        raise ServiceError("INVALID_FIELD", "envelope_sha256 must be 64 hex digits", {"field": "envelope_sha256"})
    context.facts["artefact_id"] = artefact_id
    now = int(time.time())

    with servicer.access.store.transaction() as tx:
        artefact = _own_artefact(tx, artefact_id, context)
        check_not_abandoned(artefact)
        if artefact.envelope_sha256 != envelope_sha256:
            raise ServiceError(
                "ENVELOPE_MISMATCH",
                f"the envelope written for artefact {artefact_id} differs from the envelope sealed",
                {"artefact_id": artefact_id},
            )
        if artefact.confirmed_at is not None:
            return _state(artefact)

        tx.confirm_artefact(artefact_id, now)
        document = tx.confirm_batch_seal(artefact_id, now)
        context.facts.update(doc_number=artefact.doc_number, envelope_bytes=artefact.envelope_bytes)
        if document is not None:
            context.facts["batch_id"] = document.batch_id
        # Fail closed: without a durable audit record the confirmation rolls back.
        servicer.audit.record_decision(context)
        confirmed = tx.get_artefact(artefact_id)

    assert confirmed is not None
    log.info(
        "request %s: %s confirmed writing the envelope of artefact %s (%d bytes)",
        context.request_id, context.identity.name, artefact_id, artefact.envelope_bytes,
    )
    return _state(confirmed)


def abandon_seal(servicer: EnvelopeServicer, request: pb.AbandonSealRequest, context: CallContext) -> pb.SealState:
    """Record that the caller could not keep the envelope of an artefact it sealed."""
    artefact_id = validation.hex_id("artefact_id", request.artefact_id)
    error = validation.text("error", request.error, validation.MAX_TITLE, required=False)
    context.facts["artefact_id"] = artefact_id
    if error:
        context.facts["error"] = error
    now = int(time.time())

    with servicer.access.store.transaction() as tx:
        artefact = _own_artefact(tx, artefact_id, context)
        if artefact.abandoned:
            return _state(artefact)
        if artefact.confirmed_at is not None:
            raise ServiceError(
                "SEAL_CONFIRMED", f"artefact {artefact_id} was confirmed written; it cannot be abandoned",
                {"artefact_id": artefact_id},
            )

        tx.abandon_artefact(artefact_id, now, ABANDONED_NOT_KEPT)
        tx.revoke_grants([artefact_id])
        document = tx.release_batch_seal(artefact_id)
        context.facts["doc_number"] = artefact.doc_number
        if document is not None:
            context.facts["batch_id"] = document.batch_id
        # Fail closed: without a durable audit record nothing changes.
        servicer.audit.record_decision(context)
        abandoned = tx.get_artefact(artefact_id)

    assert abandoned is not None
    log.warning(
        "request %s: %s could not keep the envelope of artefact %s (%s); artefact abandoned%s",
        context.request_id, context.identity.name, artefact_id, error or "no error given",
        f", batch {document.batch_id} document {document.doc_number} not sealed again" if document else "",
    )
    return _state(abandoned)


def _own_artefact(tx: StateTransaction, artefact_id: str, context: CallContext) -> ArtefactRecord:
    artefact = tx.get_artefact(artefact_id)
    if artefact is None:
        raise ServiceError("ARTEFACT_NOT_FOUND", f"artefact {artefact_id} is not in the registry")
    if artefact.sealed_by != context.identity.name:
        raise ServiceError("NOT_YOUR_ARTEFACT", "only the scanner who sealed an artefact may confirm or abandon it")
    return artefact


def _state(artefact: ArtefactRecord) -> pb.SealState:
    if artefact.abandoned:
        state = pb.SEAL_WRITE_STATE_ABANDONED
    elif artefact.confirmed_at is not None:
        state = pb.SEAL_WRITE_STATE_CONFIRMED
    else:
        state = pb.SEAL_WRITE_STATE_UNCONFIRMED
    return pb.SealState(
        artefact_id=artefact.artefact_id, state=state,
        confirmed_at=artefact.confirmed_at or 0, abandoned_at=artefact.abandoned_at or 0,
    )
