"""KeyService: the key registry, dual-controlled key changes, and rewrap."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from niemphong.daemon import envelope, keys, validation
from niemphong.daemon.audit.trail import AuditTrail
from niemphong.daemon.errors import ServiceError, TokenUnavailable, abort
from niemphong.daemon.hsm import UnwrapFailed
from niemphong.daemon.identity import CallContext
from niemphong.daemon.key_changes import DONE, EXPIRED, PENDING, REJECTED, KeyChanges, KeyChangeView
from niemphong.daemon.keys import KeyRegistry, integrity_failure
from niemphong.daemon.levels import Level
from niemphong.daemon.rewrap import Rewrapper, RewrapResult
from niemphong.daemon.store import ArtefactRecord, KeyChangeRecord
from niemphong.daemon.token_aead import TokenDataKey
from niemphong.v1 import keys_pb2 as kpb
from niemphong.v1 import keys_pb2_grpc as kpb_grpc
from niemphong.v1 import niemphong_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY_STATES = {
    keys.ACTIVE: kpb.KEY_STATE_ACTIVE,
    keys.RETIRED_SEALING: kpb.KEY_STATE_RETIRED_SEALING,
    keys.RETIRED_OPENING: kpb.KEY_STATE_RETIRED_OPENING,
    keys.DESTROYED: kpb.KEY_STATE_DESTROYED,
}
OPERATIONS = {
    kpb.KEY_OPERATION_CREATE: keys.CREATE,
    kpb.KEY_OPERATION_ROTATE: keys.ROTATE,
    kpb.KEY_OPERATION_RETIRE_SEALING: keys.RETIRE_SEALING,
    kpb.KEY_OPERATION_RETIRE_OPENING: keys.RETIRE_OPENING,
    kpb.KEY_OPERATION_DESTROY: keys.DESTROY,
}
OPERATION_CODES = {name: code for code, name in OPERATIONS.items()}
CHANGE_STATES = {
    PENDING: kpb.KEY_CHANGE_STATE_PENDING,
    DONE: kpb.KEY_CHANGE_STATE_DONE,
    REJECTED: kpb.KEY_CHANGE_STATE_REJECTED,
    EXPIRED: kpb.KEY_CHANGE_STATE_EXPIRED,
}


def run_call(context: CallContext, operation: str, action: Callable[[], T]) -> T:
    """Run a unary handler, turning ServiceError and TokenUnavailable into the call's error status."""
    try:
        return action()
    except ServiceError as error:
        context.facts["reason"] = error.reason
        log.warning(
            "request %s %s by %s refused: %s (%s)",
            context.request_id, operation, context.identity.name, error.reason, error.message,
        )
        abort(context, error)
    except TokenUnavailable as exc:
        context.facts["reason"] = "TOKEN_UNAVAILABLE"
        log.error("request %s %s failed: %s", context.request_id, operation, exc)
        abort(context, ServiceError("TOKEN_UNAVAILABLE", "the token is unavailable"))
    raise AssertionError("unreachable")


def key_ref(slot: envelope.KeySlot) -> pb.KeyRef:
    return pb.KeyRef(key_id=slot.key_id, version=slot.key_version, wrap_algorithm=slot.wrap_algorithm)


def rewrap_response(result: RewrapResult) -> kpb.RewrapResponse:
    return kpb.RewrapResponse(
        artefact_id=result.artefact_id,
        level=int(result.level),
        changed=result.changed,
        header=result.header_bytes,
        previous_keys=[key_ref(slot) for slot in result.previous_slots],
        keys=[key_ref(slot) for slot in result.slots],
        recorded=result.recorded,
    )


def change_to_proto(view: KeyChangeView) -> kpb.KeyChange:
    record = view.record
    return kpb.KeyChange(
        change_id=record.change_id,
        operation=OPERATION_CODES[record.operation],
        level=record.level,
        key_id=record.key_id,
        version=record.version or 0,
        reason=record.reason,
        proposer=record.proposer,
        state=CHANGE_STATES[view.state],
        confirmations=[
            kpb.KeyConfirmation(custodian=confirmation.custodian, confirmed_at=confirmation.confirmed_at)
            for confirmation in view.confirmations
        ],
        custodians_required=record.custodians_required,
        created_at=record.created_at,
        expires_at=record.expires_at,
        decided_at=record.decided_at or 0,
        rejected_by=record.rejected_by or "",
        reject_reason=record.reject_reason or "",
    )


def sealable_level(value: int) -> Level:
    """Return the level of a request field, or raise LEVEL_MISSING or LEVEL_NEVER_DIGITIZED."""
    level = Level.from_proto(value)
    if level is None:
        raise ServiceError("LEVEL_MISSING", "the classification level is missing or unknown")
    if not level.sealable:
        raise ServiceError(
            "LEVEL_NEVER_DIGITIZED", "Tuyệt mật documents are never digitized and have no key",
            {"level": level.config_name},
        )
    return level


class KeyServicer(kpb_grpc.KeyServiceServicer):
    def __init__(self, registry: KeyRegistry, changes: KeyChanges, rewrapper: Rewrapper, audit: AuditTrail) -> None:
        self.registry = registry
        self.changes = changes
        self.rewrapper = rewrapper
        self.audit = audit

    def _record_change(self, context: CallContext) -> Callable[[KeyChangeRecord], None]:
        """Return the hook that makes the call's audit record durable before the change commits or reaches the token."""
        def record(change: KeyChangeRecord) -> None:
            context.facts.update(
                change_id=change.change_id, operation=change.operation, level=Level(change.level).config_name,
                key_id=change.key_id, key_version=change.version or 0,
            )
            self.audit.record_decision(context)

        return record

    def ListKeys(self, request: kpb.ListKeysRequest, context: CallContext) -> kpb.ListKeysResponse:
        def action() -> kpb.ListKeysResponse:
            versions = [
                kpb.KeyVersion(
                    level=int(view.level),
                    key_id=view.record.key_id,
                    version=view.record.version,
                    state=KEY_STATES[view.record.state],
                    created_at=view.record.created_at,
                    state_changed_at=view.record.state_changed_at,
                    in_token=view.in_token,
                    artefacts=view.artefacts,
                    age_seconds=view.age.age_seconds if view.age else 0,
                    rotation_due=bool(view.age and view.age.due),
                )
                for view in self.registry.list_versions()
            ]
            return kpb.ListKeysResponse(keys=versions, levels=[self._level_policy(level) for level in self.registry.levels])

        return run_call(context, "list keys", action)

    def _level_policy(self, level: Level) -> kpb.LevelKeyStatus:
        policy = self.registry.policy(level)
        message = kpb.LevelKeyStatus(
            level=int(level), key_id=policy.key_id, rotation_days=policy.rotation_days, custodians=policy.custodians,
        )
        recovery = self.registry.recovery_keys.get(level)
        if recovery is not None:
            message.recovery_key.CopyFrom(kpb.RecoveryKeyInfo(
                key_id=recovery.key_id, version=recovery.version, wrap_algorithm=recovery.wrap_algorithm,
                fingerprint_sha256=recovery.fingerprint, key_bits=recovery.key_bits,
            ))
            message.artefacts_without_recovery = self.registry.count_without_recovery(level) or 0
        return message

    def ProposeKeyChange(self, request: kpb.ProposeKeyChangeRequest, context: CallContext) -> kpb.KeyChange:
        def action() -> kpb.KeyChange:
            operation = OPERATIONS.get(request.operation)
            if operation is None:
                raise ServiceError("INVALID_FIELD", "the key operation is missing or unknown", {"field": "operation"})
            level = sealable_level(request.level)
            reason = validation.text("reason", request.reason, validation.MAX_REASON, required=False)
            context.facts.update(operation=operation, level=level.config_name, key_version=request.version)
            view = self.changes.propose(
                context.identity, operation, level, request.version or None, reason,
                before_commit=self._record_change(context),
            )
            context.facts.update(change_id=view.record.change_id, state=view.state, key_version=view.record.version or 0)
            return change_to_proto(view)

        return run_call(context, "key change proposal", action)

    def ConfirmKeyChange(self, request: kpb.ConfirmKeyChangeRequest, context: CallContext) -> kpb.KeyChange:
        def action() -> kpb.KeyChange:
            change_id = validation.hex_id("change_id", request.change_id)
            context.facts["change_id"] = change_id
            view = self.changes.confirm(context.identity, change_id, before_commit=self._record_change(context))
            context.facts.update(
                operation=view.record.operation, level=Level(view.record.level).config_name,
                key_version=view.record.version or 0, state=view.state,
            )
            return change_to_proto(view)

        return run_call(context, "key change confirmation", action)

    def RejectKeyChange(self, request: kpb.RejectKeyChangeRequest, context: CallContext) -> kpb.KeyChange:
        def action() -> kpb.KeyChange:
            change_id = validation.hex_id("change_id", request.change_id)
            reason = validation.text("reason", request.reason, validation.MAX_REASON)
            context.facts["change_id"] = change_id
            view = self.changes.reject(context.identity, change_id, reason, before_commit=self._record_change(context))
            context.facts.update(operation=view.record.operation, level=Level(view.record.level).config_name)
            return change_to_proto(view)

        return run_call(context, "key change rejection", action)

    def ListKeyChanges(self, request: kpb.ListKeyChangesRequest, context: CallContext) -> kpb.ListKeyChangesResponse:
        def action() -> kpb.ListKeyChangesResponse:
            return kpb.ListKeyChangesResponse(changes=[change_to_proto(view) for view in self.changes.list_pending()])

        return run_call(context, "list key changes", action)

    def Rewrap(self, request: kpb.RewrapRequest, context: CallContext) -> kpb.RewrapResponse:
        def action() -> kpb.RewrapResponse:
            context.facts["operation"] = "rewrap"
            result = self.rewrapper.rewrap(
                request.header, self._unwrap, context, through_recovery=False,
                before_record=lambda: self.audit.record_decision(context),
            )
            return rewrap_response(result)

        return run_call(context, "rewrap", action)

    def _unwrap(self, header: envelope.Header, artefact: ArtefactRecord) -> bytes | TokenDataKey:
        slot = self.registry.rewrap_slot(header, artefact)
        try:
            if header.aead == envelope.AEAD_TOKEN_AES256GCM:
                return self.registry.token.unwrap_in_token_data_key(slot, rewrappable=True)
            return self.registry.token.unwrap_data_key(slot)
        except KeyError:
            raise ServiceError(
                "KEY_UNAVAILABLE", f"key {slot.key_id} v{slot.key_version} not found in the token",
            ) from None
        except UnwrapFailed:
            raise integrity_failure() from None
