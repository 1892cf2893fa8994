"""RecoveryService: dual-control sessions on the recovery token, and rewrap and open through it."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator

from niemphong.daemon import envelope, validation
from niemphong.daemon.access import AccessControl
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.config import Config
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.hsm import Pkcs11Token, UnwrapFailed
from niemphong.daemon.identity import CallContext
from niemphong.daemon.keys import KeyRegistry, integrity_failure
from niemphong.daemon.recovery import ACTIVE, ENDED, EXPIRED, FAILED, PENDING, RecoverySessions, SessionView
from niemphong.daemon.rewrap import Rewrapper
from niemphong.daemon.services.classification import Classifier
from niemphong.daemon.store import ArtefactRecord
from niemphong.daemon.services.envelope_service import EnvelopeServicer
from niemphong.daemon.services.key_service import rewrap_response, run_call
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import keys_pb2_grpc as kpb_grpc
from niemphong.v1 import niemphong_pb2 as pb

log = logging.getLogger(__name__)

_PIN_SHARE = re.compile(r"[0-9a-fA-F]{32}")

SESSION_STATES = {
    PENDING: kpb.RECOVERY_STATE_PENDING,
    ACTIVE: kpb.RECOVERY_STATE_ACTIVE,
    ENDED: kpb.RECOVERY_STATE_ENDED,
    EXPIRED: kpb.RECOVERY_STATE_EXPIRED,
    FAILED: kpb.RECOVERY_STATE_FAILED,
}


def session_to_proto(session: SessionView | None) -> kpb.RecoverySession:
    if session is None:
        return kpb.RecoverySession(state=kpb.RECOVERY_STATE_NONE)
    return kpb.RecoverySession(
        session_id=session.session_id,
        state=SESSION_STATES[session.state],
        started_by=session.started_by,
        confirmed_by=session.confirmed_by,
        reason=session.reason,
        started_at=session.started_at,
        expires_at=session.expires_at,
        ended_at=session.ended_at,
        ended_by=session.ended_by,
    )


def pin_share(value: str) -> bytes:
    """Return a PIN share's 16 bytes, or raise INVALID_FIELD. The value never appears in the error."""
    if not _PIN_SHARE.fullmatch(value.strip()):
        raise ServiceError("INVALID_FIELD", "pin_share must be 32 hexadecimal digits", {"field": "pin_share"})
    return bytes.fromhex(value.strip())


class RecoveryUnwrapper:
    """Unwraps data keys from an envelope's recovery slot with the active recovery session."""

    def __init__(self, registry: KeyRegistry, sessions: RecoverySessions) -> None:
        self.registry = registry
        self.sessions = sessions

    def unwrap(self, header: envelope.Header, artefact: ArtefactRecord, context: CallContext) -> bytes:
        """Unwrap from the recovery slot the registry recorded for the artefact.

        A slot naming another recovery key or version is an altered header,
        because the header is not authenticated yet.
        """
        if artefact.recovery_key_id is None:
            raise ServiceError(
                "KEY_UNAVAILABLE", f"artefact {artefact.artefact_id} is not recorded with a recovery slot",
            )
        slots = [
            slot for slot in header.slots
            if slot.key_id == artefact.recovery_key_id and slot.key_version == artefact.recovery_key_version
        ]
        if not slots:
            raise integrity_failure()
        slot = slots[0]

        try:
            data_key, session_id = self.sessions.unwrap(slot)
        except KeyError:
            raise ServiceError(
                "KEY_UNAVAILABLE", f"key {slot.key_id} v{slot.key_version} not found in the recovery token",
            ) from None
        except UnwrapFailed:
            raise integrity_failure() from None
        context.facts.update(recovery_session=session_id, recovery_key_id=slot.key_id, recovery_key_version=slot.key_version)
        return data_key


class _RecoveryEnvelopeServicer(EnvelopeServicer):
    """The Open pipeline of EnvelopeService with the data key taken from the recovery slot.

    Grants are checked and counted exactly as for Open. In addition the
    header core must match the one the registry pinned, because the
    recovery public key is not secret.
    """

    def __init__(self, config: Config, token: Pkcs11Token, registry: KeyRegistry, access: AccessControl,
                 audit: AuditTrail, classifier: Classifier | None, unwrapper: RecoveryUnwrapper) -> None:
        super().__init__(config, token, registry, access, audit, classifier)
        self.unwrapper = unwrapper
        self._context: CallContext | None = None

    def open_through_recovery(self, request_iterator: Iterator[pb.OpenRequest], context: CallContext) -> Iterator[pb.OpenResponse]:
        context.facts["operation"] = "recover_open"
        self._context = context
        return self.Open(request_iterator, context)

    def _unwrap(self, header: envelope.Header, artefact: ArtefactRecord) -> bytes:
        context = self._context
        assert context is not None
        self.unwrapper.sessions.require_active()
        core_sha256 = hashlib.sha256(header.core_bytes).hexdigest()
        if artefact.core_sha256 != core_sha256:
            raise integrity_failure()
        return self.unwrapper.unwrap(header, artefact, context)


class RecoveryServicer(kpb_grpc.RecoveryServiceServicer):
    def __init__(
        self,
        config: Config,
        token: Pkcs11Token,
        registry: KeyRegistry,
        access: AccessControl,
        sessions: RecoverySessions,
        rewrapper: Rewrapper,
        audit: AuditTrail,
        classifier: Classifier | None = None,
    ) -> None:
        self.config = config
        self.audit = audit
        self.classifier = classifier
        self.token = token
        self.registry = registry
        self.access = access
        self.sessions = sessions
        self.rewrapper = rewrapper
        self.unwrapper = RecoveryUnwrapper(registry, sessions)

    def StartRecovery(self, request: kpb.StartRecoveryRequest, context: CallContext) -> kpb.RecoverySession:
        def action() -> kpb.RecoverySession:
            share = pin_share(request.pin_share)
            reason = validation.text("reason", request.reason, validation.MAX_REASON)
            session = self.sessions.start(context.identity, share, reason)
            context.facts.update(operation="recovery_start", recovery_session=session.session_id)
            return session_to_proto(session)

        return run_call(context, "recovery start", action)

    def ConfirmRecovery(self, request: kpb.ConfirmRecoveryRequest, context: CallContext) -> kpb.RecoverySession:
        def action() -> kpb.RecoverySession:
            session_id = validation.hex_id("session_id", request.session_id)
            share = pin_share(request.pin_share)
            context.facts.update(operation="recovery_confirm", recovery_session=session_id)
            return session_to_proto(self.sessions.confirm(context.identity, session_id, share))

        return run_call(context, "recovery confirmation", action)

    def EndRecovery(self, request: kpb.EndRecoveryRequest, context: CallContext) -> kpb.RecoverySession:
        def action() -> kpb.RecoverySession:
            session_id = validation.hex_id("session_id", request.session_id)
            context.facts.update(operation="recovery_end", recovery_session=session_id)
            return session_to_proto(self.sessions.end(context.identity, session_id))

        return run_call(context, "recovery end", action)

    def GetRecovery(self, request: kpb.GetRecoveryRequest, context: CallContext) -> kpb.RecoverySession:
        return run_call(context, "recovery status", lambda: session_to_proto(self.sessions.current()))

    def RecoverRewrap(self, request: kpb.RewrapRequest, context: CallContext) -> kpb.RewrapResponse:
        def action() -> kpb.RewrapResponse:
            context.facts["operation"] = "recover_rewrap"
            # Refuse before parsing or any token call when no session is active.
            self.sessions.require_active()
            result = self.rewrapper.rewrap(
                request.header, lambda header, artefact: self.unwrapper.unwrap(header, artefact, context), context,
                through_recovery=True, before_record=lambda: self.audit.record_decision(context),
            )
            return rewrap_response(result)

        return run_call(context, "recovery rewrap", action)

    def RecoverOpen(self, request_iterator: Iterator[pb.OpenRequest], context: CallContext) -> Iterator[pb.OpenResponse]:
        # One servicer per call, because the Open pipeline keeps the call's context for _unwrap.
        opener = _RecoveryEnvelopeServicer(
            self.config, self.token, self.registry, self.access, self.audit, self.classifier, self.unwrapper,
        )
        yield from opener.open_through_recovery(request_iterator, context)
