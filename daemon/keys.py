"""The key registry: every version of each level's key-encryption key, and its state.

A level's key (``niemphong-toi-mat``, ``niemphong-mat``) has versions, each a
separate KEK in the token labelled ``<key_id>/v<version>``. The registry in
the state store gives each version one state, which only moves forward:

    active -> retired_sealing -> retired_opening -> destroyed

- ``active``: new seals of the level use it. At most one version per level.
- ``retired_sealing``: no new seals; envelopes under it still open.
- ``retired_opening``: no seals and no opens; rewrap still reads it, so that
  envelopes can be moved off it.
- ``destroyed``: the KEK is gone from the token. Allowed only once the
  registry records no artefact under the version.

Creating or rotating puts a new version in the token and retires the active
one for sealing. The registry records, per artefact, the version its
envelope was last shown to carry (at sealing, or at the confirming call of a
rewrap); that record is what "no artefact still needs it" is checked against.

The token and the registry are reconciled when the daemon starts: a KEK the
registry does not know is entered, and a registered version missing from the
token is reported (for example after the token was lost).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from niemphong.daemon import metrics
from niemphong.daemon.config import LevelPolicy
from niemphong.daemon.envelope import Header, KeySlot
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.hsm import Pkcs11Token
from niemphong.daemon.levels import Level
from niemphong.daemon.recovery_keys import RecoveryPublicKey
from niemphong.daemon.store import ArtefactRecord, KeyVersionRecord, StateStore, StateTransaction
from niemphong.daemon.token_aead import TokenDataKey

log = logging.getLogger(__name__)

ACTIVE = "active"
RETIRED_SEALING = "retired_sealing"
RETIRED_OPENING = "retired_opening"
DESTROYED = "destroyed"
STATES = (ACTIVE, RETIRED_SEALING, RETIRED_OPENING, DESTROYED)

# States whose envelopes still open, and states rewrap may still unwrap from.
_OPENING_STATES = frozenset({ACTIVE, RETIRED_SEALING})
_UNWRAPPING_STATES = frozenset({ACTIVE, RETIRED_SEALING, RETIRED_OPENING})

CREATE = "create"
ROTATE = "rotate"
RETIRE_SEALING = "retire_sealing"
RETIRE_OPENING = "retire_opening"
DESTROY = "destroy"
OPERATIONS = (CREATE, ROTATE, RETIRE_SEALING, RETIRE_OPENING, DESTROY)
_VERSIONED_OPERATIONS = frozenset({RETIRE_SEALING, RETIRE_OPENING, DESTROY})

SECONDS_PER_DAY = 86400


def integrity_failure() -> ServiceError:
    """Return the one error for every way an envelope can be wrong or not ours."""
    return ServiceError("INTEGRITY_FAILURE", "envelope failed integrity check")


@dataclass(frozen=True)
class KeyAge:
    """The age of a level's active key version against the level's rotation period.

    This is what the metrics exporter reports: one gauge per active key.
    """

    level: Level
    key_id: str
    version: int
    created_at: int
    age_seconds: int
    rotation_seconds: int

    @property
    def due(self) -> bool:
        """Whether the version is at least as old as the rotation period."""
        return self.age_seconds >= self.rotation_seconds


@dataclass(frozen=True)
class KeyVersionView:
    """A registry entry with what a reader needs to judge it."""

    record: KeyVersionRecord
    level: Level
    in_token: bool
    artefacts: int
    age: KeyAge | None


class KeyRegistry:
    """The key versions of each level, in the state store and the token.

    Args:
        store: The state store holding the registry.
        token: The working token holding the KEKs.
        levels: The key policy of each sealable level.
        recovery_keys: The recovery key of each level that names one.
        clock: Seconds since the epoch; tests pass their own.
    """

    def __init__(
        self,
        store: StateStore,
        token: Pkcs11Token,
        levels: Mapping[Level, LevelPolicy],
        recovery_keys: Mapping[Level, RecoveryPublicKey],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.token = token
        self.levels = levels
        self.recovery_keys = recovery_keys
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock())

    def policy(self, level: Level) -> LevelPolicy:
        return self.levels[level]

    # Start-up ---------------------------------------------------------------

    def reconcile(self) -> None:
        """Enter KEKs the registry does not know, and report registered versions missing from the token.

        A level whose key has no registry entries at all (a database from
        before the registry existed, or a token provisioned outside it) gets
        its newest token version as active and the older ones as retired for
        sealing, which is what sealing used before. Any other unknown version,
        for example one left by a crash between creating it and registering
        it, is entered as retired for sealing: it never sealed anything, and
        a custodian can retire and destroy it.

        An entered version's creation time, from which its rotation age
        counts, is the earliest of its CKA_START_DATE, its first seal and
        now, because the token does not always give a date.
        """
        now = self._now()

        with self.store.transaction() as tx:
            # The token is listed inside the transaction: a daemon sharing
            # the database creates a key version and registers it under the
            # same lock, so the list and the registry agree here.
            keks = self.token.list_keks()
            in_token: dict[str, set[int]] = {}
            for info in keks:
                in_token.setdefault(info.key_id, set()).add(info.version)
            start_dates = {(info.key_id, info.version): info.created_on for info in keks}
            first_seals = tx.first_seal_times()
            for level, policy in self.levels.items():
                records = tx.list_key_versions(policy.key_id)
                known = {record.version for record in records}
                unknown = sorted(in_token.get(policy.key_id, set()) - known)
                for version in unknown:
                    fresh = not records and version == unknown[-1]
                    state = ACTIVE if fresh else RETIRED_SEALING
                    created_at = _creation_estimate(
                        now, start_dates.get((policy.key_id, version)), first_seals.get((policy.key_id, version)),
                    )
                    tx.insert_key_version(KeyVersionRecord(policy.key_id, version, int(level), state, created_at, now))
                    if records:
                        log.warning(
                            "key %s v%d is in the token but was not in the registry; entered as %s",
                            policy.key_id, version, state,
                        )
                    else:
                        log.info("registered key %s v%d as %s", policy.key_id, version, state)
                for record in records:
                    if record.level != int(level):
                        log.error(
                            "key %s is registered for level %s but configured for %s",
                            policy.key_id, Level(record.level).name, level.name,
                        )
                    if record.state != DESTROYED and record.version not in in_token.get(policy.key_id, set()):
                        log.error(
                            "key %s v%d (%s) is in the registry but not in the token %s",
                            policy.key_id, record.version, record.state, self.token.describe(),
                        )

    def _token_versions(self) -> dict[str, set[int]]:
        versions: dict[str, set[int]] = {}
        for info in self.token.list_keks():
            versions.setdefault(info.key_id, set()).add(info.version)
        return versions

    # Sealing and opening --------------------------------------------------------

    def active_version(self, level: Level, tx: StateTransaction | None = None) -> int:
        """Return the version new seals of ``level`` use. Raises KEY_UNAVAILABLE when there is none."""
        policy = self.levels[level]
        records = self._records(policy.key_id, tx)
        active = [record.version for record in records if record.state == ACTIVE]
        if not active:
            raise ServiceError("KEY_UNAVAILABLE", f"level {level.name} has no active version of key {policy.key_id}")
        return active[0]

    def new_data_key(self, level: Level) -> tuple[bytes | TokenDataKey, list[KeySlot]]:
        """Draw a data key for a new envelope and return it with the envelope's key slots.

        The slots are the data key wrapped under the level's active version
        and, when the level names a recovery key, encrypted to that key. In
        in-token mode the data key stays in the token and the caller closes
        it; the configuration gives such a level no recovery key, because the
        key cannot be encrypted to one on the host.
        """
        policy = self.levels[level]
        version = self.active_version(level)

        try:
            if policy.in_token:
                token_key, slot = self.token.new_in_token_data_key(policy.key_id, version)
                return token_key, [slot]
            data_key, slot = self.token.new_data_key(policy.key_id, version)
        except KeyError:
            raise ServiceError("KEY_UNAVAILABLE", f"key {policy.key_id} v{version} not found in the token") from None
        slots = [slot]
        recovery = self.recovery_keys.get(level)
        if recovery is not None:
            slots.append(recovery.wrap(data_key))
        return data_key, slots

    def opening_slot(self, header: Header, artefact: ArtefactRecord) -> KeySlot:
        """Choose the slot an Open unwraps: the artefact's key, in a version that still opens.

        The header is not authenticated yet, so only slots the registry
        vouches for count: the version recorded for the artefact, or another
        registered version of the same key. A newer one covers a file that a
        rewrap has replaced before it showed the daemon the new header, and
        an older one a copy (a backup, say) that the rewrap did not reach.

        Raises:
            ServiceError: INTEGRITY_FAILURE when no slot qualifies,
                KEY_RETIRED when every qualifying version is retired for
                opening, KEY_UNAVAILABLE when the recorded version is
                missing from the registry.
        """
        return self._choose_slot(header, artefact, _OPENING_STATES)

    def rewrap_slot(self, header: Header, artefact: ArtefactRecord) -> KeySlot:
        """Choose the slot a rewrap unwraps: like :meth:`opening_slot`, but retired-for-opening versions count."""
        return self._choose_slot(header, artefact, _UNWRAPPING_STATES)

    def _choose_slot(self, header: Header, artefact: ArtefactRecord, usable: frozenset[str]) -> KeySlot:
        if artefact.core_sha256 is not None and hashlib.sha256(header.core_bytes).hexdigest() != artefact.core_sha256:
            # The core names the mode the key is unwrapped in. Checking it
            # before any token call keeps a header altered from in-token to
            # host mode from bringing an in-token data key into host memory.
            raise integrity_failure()
        states = {record.version: record.state for record in self._records(artefact.key_id)}
        slots = [
            slot for slot in header.slots
            if slot.key_id == artefact.key_id
            and (slot.key_version == artefact.key_version or slot.key_version in states)
        ]
        if not slots:
            # A slot naming another key or an unknown version is an altered
            # header, and gets the same error as any other alteration.
            raise integrity_failure()

        candidates = sorted(
            (slot for slot in slots if states.get(slot.key_version) in usable),
            key=lambda slot: slot.key_version, reverse=True,
        )
        if candidates:
            return candidates[0]
        newest = max(slots, key=lambda slot: slot.key_version)
        state = states.get(newest.key_version)
        if state is None:
            raise ServiceError("KEY_UNAVAILABLE", f"key {newest.key_id} v{newest.key_version} is not in the registry")
        raise ServiceError(
            "KEY_RETIRED", f"key {newest.key_id} v{newest.key_version} is {state}",
            {"key_id": newest.key_id, "version": str(newest.key_version), "state": state},
        )

    def target_slots(self, level: Level, data_key: bytes | TokenDataKey, current: Sequence[KeySlot]) -> list[KeySlot]:
        """Return the slots an envelope of ``level`` should carry, reusing those of ``current`` that match.

        That is one slot under the level's active version, then the recovery
        slot when the level names a recovery key. Slots of other keys and
        versions are dropped. An in-token data key is wrapped inside the
        token; levels in in-token mode name no recovery key.
        """
        policy = self.levels[level]
        version = self.active_version(level)

        primary = next((slot for slot in current if (slot.key_id, slot.key_version) == (policy.key_id, version)), None)
        if primary is None:
            try:
                if isinstance(data_key, TokenDataKey):
                    primary = self.token.wrap_in_token_data_key(policy.key_id, version, data_key)
                else:
                    primary = self.token.wrap_data_key(policy.key_id, version, data_key)
            except KeyError:
                raise ServiceError("KEY_UNAVAILABLE", f"key {policy.key_id} v{version} not found in the token") from None
        slots = [primary]

        recovery = self.recovery_keys.get(level)
        if recovery is not None:
            existing = next((slot for slot in current if recovery.matches(slot)), None)
            if existing is None and isinstance(data_key, TokenDataKey):
                raise ServiceError(
                    "REWRAP_UNSUPPORTED", "an in-token data key cannot be wrapped under a recovery key",
                    {"key_id": recovery.key_id},
                )
            slots.append(existing if existing is not None else recovery.wrap(data_key))
        return slots

    def _records(self, key_id: str, tx: StateTransaction | None = None) -> list[KeyVersionRecord]:
        if tx is not None:
            return tx.list_key_versions(key_id)
        # A read on its own connection, so that seals do not queue behind the commits of other seals.
        with self.store.reading() as own:
            return own.list_key_versions(key_id)

    # Listing ------------------------------------------------------------------------

    def list_versions(self, now: int | None = None) -> list[KeyVersionView]:
        """List every registered version of every configured level, with its token presence and use."""
        now = self._now() if now is None else now
        in_token = self._token_versions()
        with self.store.transaction() as tx:
            counts = tx.count_artefacts_by_key()
            views = []
            for level, policy in self.levels.items():
                for record in tx.list_key_versions(policy.key_id):
                    views.append(KeyVersionView(
                        record=record,
                        level=level,
                        in_token=record.version in in_token.get(policy.key_id, set()),
                        artefacts=counts.get((policy.key_id, record.version), 0),
                        age=self._age(level, record, now) if record.state == ACTIVE else None,
                    ))
        return views

    def count_without_recovery(self, level: Level) -> int | None:
        """Count the level's artefacts not recorded with its current recovery key; None when it names none."""
        recovery = self.recovery_keys.get(level)
        if recovery is None:
            return None
        with self.store.transaction() as tx:
            return tx.count_artefacts_without_recovery(int(level), recovery.key_id, recovery.version)

    def rotation_status(self, now: int | None = None) -> list[KeyAge]:
        """Return the age of every level's active version against its rotation period.

        This is the hook for metrics: export ``age_seconds`` per key and
        ``due`` as a count. It reads the state store only, never the token.
        """
        now = self._now() if now is None else now
        ages = []
        with self.store.transaction() as tx:
            for level, policy in self.levels.items():
                for record in tx.list_key_versions(policy.key_id):
                    if record.state == ACTIVE:
                        ages.append(self._age(level, record, now))
        return ages

    def live_versions(self) -> list[tuple[Level, KeyVersionRecord]]:
        """Return every version of every configured level that is not destroyed, from the state store only.

        Metrics read this at every scrape, so it makes no token call.
        """
        with self.store.transaction() as tx:
            return [
                (level, record)
                for level, policy in self.levels.items()
                for record in tx.list_key_versions(policy.key_id)
                if record.state != DESTROYED
            ]

    def due_keys(self, now: int | None = None) -> list[KeyAge]:
        """Return the active versions that have reached their level's rotation period."""
        return [age for age in self.rotation_status(now) if age.due]

    def _age(self, level: Level, record: KeyVersionRecord, now: int) -> KeyAge:
        return KeyAge(
            level=level,
            key_id=record.key_id,
            version=record.version,
            created_at=record.created_at,
            age_seconds=max(0, now - record.created_at),
            rotation_seconds=self.levels[level].rotation_days * SECONDS_PER_DAY,
        )

    # Changes --------------------------------------------------------------------------

    def check_change(self, tx: StateTransaction, operation: str, level: Level, version: int | None) -> None:
        """Raise ServiceError unless ``operation`` may be applied to ``level`` now.

        Create needs a level without an active version; rotate needs one.
        Retiring for sealing needs an active version, retiring for opening a
        version retired for sealing, and destroying a version retired for
        opening that the registry records no artefact under.
        """
        policy = self.levels[level]
        records = {record.version: record for record in tx.list_key_versions(policy.key_id)}
        has_active = any(record.state == ACTIVE for record in records.values())

        if operation not in _VERSIONED_OPERATIONS:
            if version:
                raise ServiceError("INVALID_FIELD", f"{operation} takes no version", {"field": "version"})
            if operation == CREATE and has_active:
                raise _state_conflict(operation, ACTIVE, f"level {level.name} already has an active key; rotate it")
            if operation == ROTATE and not has_active:
                raise _state_conflict(operation, "none", f"level {level.name} has no active key; create one")
            return

        if not version:
            raise ServiceError("INVALID_FIELD", f"{operation} needs a version", {"field": "version"})
        record = records.get(version)
        if record is None:
            raise ServiceError(
                "KEY_NOT_FOUND", f"key {policy.key_id} has no version {version}",
                {"key_id": policy.key_id, "version": str(version)},
            )
        expected = {RETIRE_SEALING: ACTIVE, RETIRE_OPENING: RETIRED_SEALING, DESTROY: RETIRED_OPENING}[operation]
        if record.state != expected:
            raise _state_conflict(operation, record.state, f"key {policy.key_id} v{version} is {record.state}")
        if operation == DESTROY:
            needed = tx.count_artefacts_by_key().get((policy.key_id, version), 0)
            if needed:
                raise ServiceError(
                    "KEY_STILL_NEEDED", f"{needed} artefacts are still recorded under {policy.key_id} v{version}",
                    {"artefacts": str(needed), "key_id": policy.key_id, "version": str(version)},
                )

    def apply_change(self, tx: StateTransaction, operation: str, level: Level, version: int | None) -> int:
        """Carry out a checked change in the token and the registry; return the version it created or changed.

        Runs inside the caller's transaction, so a token failure leaves the
        registry as it was.
        """
        self.check_change(tx, operation, level, version)
        policy = self.levels[level]
        now = self._now()

        if operation in (CREATE, ROTATE):
            return self._create_version(tx, level, policy, now)

        assert version is not None
        if operation == DESTROY:
            if not self.token.destroy_kek(policy.key_id, version):
                log.warning("key %s v%d was already missing from the token", policy.key_id, version)
        state = {RETIRE_SEALING: RETIRED_SEALING, RETIRE_OPENING: RETIRED_OPENING, DESTROY: DESTROYED}[operation]
        tx.set_key_state(policy.key_id, version, state, now)
        log.info("key %s v%d is now %s", policy.key_id, version, state)
        return version

    def _create_version(self, tx: StateTransaction, level: Level, policy: LevelPolicy, now: int) -> int:
        records = tx.list_key_versions(policy.key_id)
        # A version number is never reused, even for a key lost with its
        # token: envelopes name their key by id and version only.
        used = {record.version for record in records} | self._token_versions().get(policy.key_id, set())
        version = max(used, default=0) + 1

        self.token.create_kek(policy.key_id, version)
        try:
            for record in records:
                if record.state == ACTIVE:
                    tx.set_key_state(policy.key_id, record.version, RETIRED_SEALING, now)
            tx.insert_key_version(KeyVersionRecord(policy.key_id, version, int(level), ACTIVE, now, now))
        except BaseException:
            # Keep the token in step with the registry, which rolls back.
            self.token.destroy_kek(policy.key_id, version)
            raise
        log.info("key %s v%d created and active for level %s", policy.key_id, version, level.name)
        return version


def _creation_estimate(now: int, start_date: dt.date | None, first_seal: int | None) -> int:
    # CKA_START_DATE is the creation day; a first seal and now come after the
    # creation. So the earliest known is the closest.
    candidates = [now]
    if start_date is not None:
        candidates.append(int(metrics.date_timestamp(start_date)))
    if first_seal is not None:
        candidates.append(first_seal)
    return min(candidates)


def _state_conflict(operation: str, state: str, message: str) -> ServiceError:
    return ServiceError("KEY_STATE_CONFLICT", message, {"operation": operation, "state": state})
