"""Rewrap: give an envelope the current key slots by rewriting its header only.

The caller sends the preamble and header, never the body. The daemon
unwraps the data key from one slot, verifies the header with it (key
commitment and header tag), and builds a new header with the same core, so
the body stays valid unchanged: its AAD is a hash of the core alone
(docs/format.md, Body). The data key stays in this process; no plaintext is
involved at any point, and no grant is consulted or counted.

The target slots are one slot under the level's active key version and, when
the level names a recovery key, one recovery slot. A header that already
has them is returned unchanged, and only then does the registry record the
artefact under those versions. The client therefore calls again with the new
header once it has replaced the file: until that second call the registry
keeps the old version as still needed, so the old version cannot be
destroyed while a file on disk may still depend on it.

The registry pins each artefact's header core by its SHA-256. Anyone holding
a level's recovery public key can build an envelope whose recovery slot
opens, so a header that came in through the recovery slot is accepted only
when its core, which holds the commitment to the one true data key, matches
the registered one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from niemphong.daemon import envelope
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import CallContext
from niemphong.daemon.keys import KeyRegistry, integrity_failure
from niemphong.daemon.levels import Level
from niemphong.daemon.store import ArtefactKeys, ArtefactRecord, StateStore
from niemphong.daemon.token_aead import TokenDataKey

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = envelope.PREAMBLE_LEN + envelope.MAX_HEADER_LEN

# Returns the data key unwrapped from one of the header's slots. The
# artefact's registry entry decides which slots are trusted.
Unwrap = Callable[[envelope.Header, ArtefactRecord], bytes | TokenDataKey]


@dataclass(frozen=True)
class RewrapResult:
    artefact_id: str
    level: Level
    changed: bool
    header_bytes: bytes
    previous_slots: tuple[envelope.KeySlot, ...]
    slots: tuple[envelope.KeySlot, ...]
    recorded: bool


def _slot_names(slots: tuple[envelope.KeySlot, ...] | list[envelope.KeySlot]) -> list[tuple[str, int, str]]:
    return [(slot.key_id, slot.key_version, slot.wrap_algorithm) for slot in slots]


class Rewrapper:
    """Rewrap envelope headers against the key registry.

    Args:
        registry: Chooses the target slots and wraps under the active version.
        store: The artefact registry to check and update.
    """

    def __init__(self, registry: KeyRegistry, store: StateStore) -> None:
        self.registry = registry
        self.store = store

    def rewrap(
        self, header_bytes: bytes, unwrap: Unwrap, context: CallContext, *, through_recovery: bool,
        before_record: Callable[[], None] | None = None,
    ) -> RewrapResult:
        """Return the header with the target slots, or the same header and record it when it has them.

        Args:
            header_bytes: Exactly the preamble and header of an envelope.
            unwrap: Unwraps the data key from the header.
            context: The call, whose facts are filled in.
            through_recovery: Whether ``unwrap`` uses the recovery slot, in
                which case the registered core hash must match.
            before_record: The audit record. It runs inside the transaction
                that records the artefact under the new versions, so an
                exception from it leaves the registry as it was.

        Raises:
            ServiceError: INTEGRITY_FAILURE for a header that is malformed,
                unregistered, of another level, or does not verify; the
                errors of ``unwrap`` and of the key registry otherwise.
        """
        if len(header_bytes) > MAX_HEADER_BYTES:
            raise ServiceError(
                "FIELD_TOO_LONG", f"header exceeds {MAX_HEADER_BYTES} bytes",
                {"field": "header", "max": str(MAX_HEADER_BYTES)},
            )
        try:
            if envelope.read_header_length(header_bytes) != len(header_bytes):
                raise envelope.IntegrityError()
            header = envelope.parse_header(header_bytes)
        except envelope.IntegrityError:
            raise integrity_failure() from None

        if header.aead == envelope.AEAD_TOKEN_AES256GCM and through_recovery:
            # Levels in in-token mode name no recovery key, so their
            # envelopes carry no recovery slot to unwrap.
            raise ServiceError(
                "REWRAP_UNSUPPORTED", "envelopes sealed in in-token mode have no recovery slot",
                {"artefact_id": header.artefact_id.hex()},
            )
        artefact_id = header.artefact_id.hex()
        level = Level(header.level)
        core_sha256 = hashlib.sha256(header.core_bytes).hexdigest()
        context.facts.update(artefact_id=artefact_id, level=level.config_name)
        with self.store.transaction() as tx:
            artefact = tx.get_artefact(artefact_id)
        if artefact is None or artefact.level != header.level:
            raise integrity_failure()
        if artefact.core_sha256 is not None and artefact.core_sha256 != core_sha256:
            raise integrity_failure()
        if through_recovery and artefact.core_sha256 is None:
            # Only headers verified under the token's own keys ever set the
            # hash, so a registry entry without one has no recovery slot of ours.
            raise integrity_failure()

        data_key = unwrap(header, artefact)
        try:
            # Verifies the commitment and the header tag; the body is not needed.
            envelope.Opener(header, data_key)
            slots = self.registry.target_slots(level, data_key, header.slots)
            changed = _slot_names(slots) != _slot_names(header.slots)
            new_header = envelope.rewrap_header(header, data_key, slots) if changed else header_bytes
        except envelope.IntegrityError:
            raise integrity_failure() from None
        finally:
            if isinstance(data_key, TokenDataKey):
                data_key.close()
            del data_key

        recorded = False
        if not changed:
            recovery = self.registry.recovery_keys.get(level)
            keys = ArtefactKeys(
                key_id=slots[0].key_id,
                key_version=slots[0].key_version,
                wrap_algorithm=slots[0].wrap_algorithm,
                recovery_key_id=recovery.key_id if recovery else None,
                recovery_key_version=recovery.version if recovery else None,
            )
            # The audit record is written inside the transaction, so its facts come first.
            context.facts.update(
                key_id=slots[0].key_id, from_version=_primary_version(header.slots, slots[0].key_id),
                to_version=slots[0].key_version, changed=0, recorded=1, through_recovery=int(through_recovery),
            )
            with self.store.transaction() as tx:
                if before_record is not None:
                    before_record()
                tx.update_artefact_keys(artefact_id, keys, core_sha256)
            recorded = True

        previous = _primary_version(header.slots, slots[0].key_id)
        context.facts.update(
            key_id=slots[0].key_id, from_version=previous, to_version=slots[0].key_version,
            changed=int(changed), recorded=int(recorded), through_recovery=int(through_recovery),
        )
        log.info(
            "request %s rewrap%s of artefact %s (%s) by %s: %s v%d -> v%d, %s%s",
            context.request_id, " through recovery" if through_recovery else "", artefact_id, level.name,
            context.identity.name, slots[0].key_id, previous, slots[0].key_version,
            "new header" if changed else "already current", ", recorded" if recorded else "",
        )
        return RewrapResult(
            artefact_id=artefact_id,
            level=level,
            changed=changed,
            header_bytes=new_header,
            previous_slots=header.slots,
            slots=tuple(slots),
            recorded=recorded,
        )


def _primary_version(slots: tuple[envelope.KeySlot, ...], key_id: str) -> int:
    versions = [slot.key_version for slot in slots if slot.key_id == key_id]
    return max(versions, default=0)
