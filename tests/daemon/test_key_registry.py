"""The key registry and dual-controlled key changes, on the session's SoftHSM2
token and a real SQLite file. Each test uses key ids of its own, so the keys
it creates never meet the daemon's."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conftest import DevEnvironment, StoreFactory
from niemphong.daemon import envelope, keys
from niemphong.daemon.config import LevelPolicy, load_config, read_pin
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.hsm import Pkcs11Token
from niemphong.daemon.identity import Identity
from niemphong.daemon.key_changes import KeyChanges
from niemphong.daemon.keys import KeyRegistry
from niemphong.daemon.levels import Level
from niemphong.daemon.store import ArtefactRecord, KeyVersionRecord, StateStore

DAY = 86400
CUSTODIAN = Identity("custodian", frozenset({"custodian"}))
CUSTODIAN_2 = Identity("custodian-2", frozenset({"custodian"}))


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def token(dev_env: DevEnvironment) -> Iterator[Pkcs11Token]:
    config = load_config(dev_env.root / "niemphongd.toml")
    opened = Pkcs11Token(config.token, read_pin(config.token))
    yield opened
    opened.close()


@dataclass
class Setup:
    registry: KeyRegistry
    changes: KeyChanges
    store: StateStore
    clock: Clock
    mat: str
    toi_mat: str


@pytest.fixture
def setup(token: Pkcs11Token, store_factory: StoreFactory) -> Iterator[Setup]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    levels = {
        Level.TOI_MAT: LevelPolicy(Level.TOI_MAT, f"{prefix}-toi-mat", 2, 3600, 1, rotation_days=365, custodians=2),
        Level.MAT: LevelPolicy(Level.MAT, f"{prefix}-mat", 1, 3600, 3, rotation_days=30, custodians=1),
    }
    clock = Clock()
    store = store_factory.open()
    registry = KeyRegistry(store, token, levels, {}, clock=clock)
    yield Setup(registry, KeyChanges(store, registry, clock=clock), store, clock, f"{prefix}-mat", f"{prefix}-toi-mat")
    for info in token.list_keks():
        if info.key_id.startswith(prefix):
            token.destroy_kek(info.key_id, info.version)


def states(setup: Setup, key_id: str) -> dict[int, str]:
    with setup.store.transaction() as tx:
        return {record.version: record.state for record in tx.list_key_versions(key_id)}


def reason_of(call, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceError) as excinfo:
        call(*args)
    return excinfo.value.reason


def register_artefact(setup: Setup, key_id: str, version: int) -> ArtefactRecord:
    record = ArtefactRecord(
        artefact_id=uuid.uuid4().hex, level=1, doc_number="1/UBND", issued_on="2025-01-01", title="",
        source_name="", key_id=key_id, key_version=version, wrap_algorithm="AES-KWP", plaintext_bytes=1,
        envelope_bytes=200, envelope_sha256="00", sealed_by="scanner", sealed_at=1,
    )
    with setup.store.transaction() as tx:
        tx.insert_artefact(record)
    return record


def header_with_versions(key_id: str, *versions: int) -> envelope.Header:
    slots = [envelope.KeySlot(key_id, version, "AES-KWP", b"\x00" * 40) for version in versions]
    sealer = envelope.Sealer(os.urandom(32), artefact_id=os.urandom(16), level=1, metadata={}, slots=slots,
                             sealed_at=1)
    return envelope.parse_header(sealer.header_bytes)


# Reconciling with the token -----------------------------------------------------------


def test_reconcile_newest_token_version_active(setup: Setup, token: Pkcs11Token) -> None:
    token.create_kek(setup.mat, 1)
    token.create_kek(setup.mat, 2)

    setup.registry.reconcile()

    assert states(setup, setup.mat) == {1: keys.RETIRED_SEALING, 2: keys.ACTIVE}
    assert states(setup, setup.toi_mat) == {}


def test_reconcile_unregistered_version_entered_retired(setup: Setup, token: Pkcs11Token) -> None:
    token.create_kek(setup.mat, 1)
    setup.registry.reconcile()
    token.create_kek(setup.mat, 2)

    setup.registry.reconcile()

    assert states(setup, setup.mat) == {1: keys.ACTIVE, 2: keys.RETIRED_SEALING}


def test_reconcile_dates_unregistered_version_by_first_seal(setup: Setup, token: Pkcs11Token) -> None:
    # SoftHSM2 gives no CKA_START_DATE back, so a key made outside the registry
    # counts its age from its first seal rather than from the daemon's start.
    token.create_kek(setup.mat, 1)
    register_artefact(setup, setup.mat, 1)

    setup.registry.reconcile()

    with setup.store.transaction() as tx:
        [record] = tx.list_key_versions(setup.mat)
    assert record.created_at == 1
    assert record.state_changed_at == int(setup.clock.now)
    assert [age.version for age in setup.registry.due_keys()] == [1]


def test_live_versions_leave_out_destroyed(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.RETIRE_OPENING, Level.MAT, 1, "")
    setup.changes.propose(CUSTODIAN, keys.DESTROY, Level.MAT, 1, "")

    live = [(level, record.version, record.state) for level, record in setup.registry.live_versions()]

    assert live == [(Level.MAT, 2, keys.ACTIVE)]


# Changes ---------------------------------------------------------------------------------------


def test_create_after_token_loss_takes_next_unused_version(setup: Setup) -> None:
    # Versions 1 and 2 were lost with their token: the registry knows them, the token does not.
    with setup.store.transaction() as tx:
        tx.insert_key_version(KeyVersionRecord(setup.mat, 1, 1, keys.RETIRED_SEALING, 1, 1))
        tx.insert_key_version(KeyVersionRecord(setup.mat, 2, 1, keys.ACTIVE, 1, 1))

    view = setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "token lost")

    assert view.state == "done"
    assert view.record.version == 3
    assert states(setup, setup.mat) == {1: keys.RETIRED_SEALING, 2: keys.RETIRED_SEALING, 3: keys.ACTIVE}
    assert setup.registry.active_version(Level.MAT) == 3


def test_create_with_active_version_conflicts(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")

    assert reason_of(setup.changes.propose, CUSTODIAN, keys.CREATE, Level.MAT, None, "") == "KEY_STATE_CONFLICT"


def test_rotate_without_active_version_conflicts(setup: Setup) -> None:
    assert reason_of(setup.changes.propose, CUSTODIAN, keys.ROTATE, Level.MAT, None, "") == "KEY_STATE_CONFLICT"


def test_toi_mat_change_waits_for_second_custodian(setup: Setup, token: Pkcs11Token) -> None:
    pending = setup.changes.propose(CUSTODIAN, keys.CREATE, Level.TOI_MAT, None, "")

    assert pending.state == "pending"
    assert states(setup, setup.toi_mat) == {}
    assert reason_of(setup.changes.confirm, CUSTODIAN, pending.record.change_id) == "ALREADY_CONFIRMED"

    done = setup.changes.confirm(CUSTODIAN_2, pending.record.change_id)

    assert done.state == "done"
    assert [confirmation.custodian for confirmation in done.confirmations] == ["custodian", "custodian-2"]
    assert states(setup, setup.toi_mat) == {1: keys.ACTIVE}
    assert (setup.toi_mat, 1) in {(info.key_id, info.version) for info in token.list_keks()}


def test_second_proposal_for_level_rejected(setup: Setup) -> None:
    first = setup.changes.propose(CUSTODIAN, keys.CREATE, Level.TOI_MAT, None, "")

    with pytest.raises(ServiceError) as excinfo:
        setup.changes.propose(CUSTODIAN_2, keys.CREATE, Level.TOI_MAT, None, "")

    assert excinfo.value.reason == "KEY_CHANGE_PENDING"
    assert excinfo.value.metadata["change_id"] == first.record.change_id


def test_pending_change_expires_after_a_day(setup: Setup) -> None:
    pending = setup.changes.propose(CUSTODIAN, keys.CREATE, Level.TOI_MAT, None, "")
    setup.clock.now += DAY

    with pytest.raises(ServiceError) as excinfo:
        setup.changes.confirm(CUSTODIAN_2, pending.record.change_id)

    assert excinfo.value.reason == "KEY_CHANGE_NOT_PENDING"
    assert excinfo.value.metadata["state"] == "expired"
    assert setup.changes.list_pending() == []
    assert setup.changes.propose(CUSTODIAN, keys.CREATE, Level.TOI_MAT, None, "").state == "pending"


def test_rejected_change_cannot_be_confirmed(setup: Setup) -> None:
    pending = setup.changes.propose(CUSTODIAN, keys.CREATE, Level.TOI_MAT, None, "")
    rejected = setup.changes.reject(CUSTODIAN_2, pending.record.change_id, "không cần")

    assert rejected.state == "rejected"
    assert rejected.record.rejected_by == "custodian-2"
    assert reason_of(setup.changes.confirm, CUSTODIAN_2, pending.record.change_id) == "KEY_CHANGE_NOT_PENDING"


def test_confirm_unknown_change_not_found(setup: Setup) -> None:
    assert reason_of(setup.changes.confirm, CUSTODIAN, "f" * 32) == "KEY_CHANGE_NOT_FOUND"


def test_versioned_operation_without_version_rejected(setup: Setup) -> None:
    assert reason_of(setup.changes.propose, CUSTODIAN, keys.DESTROY, Level.MAT, None, "") == "INVALID_FIELD"


def test_rotate_with_version_rejected(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")

    assert reason_of(setup.changes.propose, CUSTODIAN, keys.ROTATE, Level.MAT, 1, "") == "INVALID_FIELD"


def test_retire_unknown_version_not_found(setup: Setup) -> None:
    assert reason_of(setup.changes.propose, CUSTODIAN, keys.RETIRE_SEALING, Level.MAT, 7, "") == "KEY_NOT_FOUND"


@pytest.mark.parametrize("operation", [keys.RETIRE_OPENING, keys.DESTROY])
def test_active_version_skipping_a_state_conflicts(setup: Setup, operation: str) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")

    with pytest.raises(ServiceError) as excinfo:
        setup.changes.propose(CUSTODIAN, operation, Level.MAT, 1, "")

    assert excinfo.value.reason == "KEY_STATE_CONFLICT"
    assert excinfo.value.metadata["state"] == keys.ACTIVE


def test_destroy_needed_version_rejected(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.RETIRE_OPENING, Level.MAT, 1, "")
    register_artefact(setup, setup.mat, 1)
    register_artefact(setup, setup.mat, 1)

    with pytest.raises(ServiceError) as excinfo:
        setup.changes.propose(CUSTODIAN, keys.DESTROY, Level.MAT, 1, "")

    assert excinfo.value.reason == "KEY_STILL_NEEDED"
    assert excinfo.value.metadata["artefacts"] == "2"
    assert states(setup, setup.mat)[1] == keys.RETIRED_OPENING


def test_destroy_removes_key_from_token(setup: Setup, token: Pkcs11Token) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.RETIRE_OPENING, Level.MAT, 1, "")
    register_artefact(setup, setup.mat, 2)

    setup.changes.propose(CUSTODIAN, keys.DESTROY, Level.MAT, 1, "")

    assert states(setup, setup.mat) == {1: keys.DESTROYED, 2: keys.ACTIVE}
    in_token = {(info.key_id, info.version) for info in token.list_keks()}
    assert (setup.mat, 1) not in in_token
    assert (setup.mat, 2) in in_token
    assert reason_of(setup.changes.propose, CUSTODIAN, keys.DESTROY, Level.MAT, 1, "") == "KEY_STATE_CONFLICT"


# Choosing slots and rotation -----------------------------------------------------------------


def test_opening_slot_refuses_version_retired_for_opening(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.RETIRE_OPENING, Level.MAT, 1, "")
    artefact = register_artefact(setup, setup.mat, 1)
    header = header_with_versions(setup.mat, 1)

    with pytest.raises(ServiceError) as excinfo:
        setup.registry.opening_slot(header, artefact)

    assert excinfo.value.reason == "KEY_RETIRED"
    assert excinfo.value.metadata["state"] == keys.RETIRED_OPENING
    assert setup.registry.rewrap_slot(header, artefact).key_version == 1


def test_opening_slot_other_key_is_integrity_failure(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    artefact = register_artefact(setup, setup.mat, 1)

    assert reason_of(setup.registry.opening_slot, header_with_versions("someone-else", 1), artefact) == "INTEGRITY_FAILURE"


def test_opening_slot_unregistered_version_is_integrity_failure(setup: Setup) -> None:
    # The header is not authenticated yet: a version the registry never had is tampering.
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    artefact = register_artefact(setup, setup.mat, 1)

    assert reason_of(setup.registry.opening_slot, header_with_versions(setup.mat, 7), artefact) == "INTEGRITY_FAILURE"


def test_opening_slot_older_registered_version_used(setup: Setup) -> None:
    # A copy that a rewrap did not reach, while its version still opens.
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    artefact = register_artefact(setup, setup.mat, 2)

    slot = setup.registry.opening_slot(header_with_versions(setup.mat, 1), artefact)

    assert slot.key_version == 1


def test_opening_slot_older_version_retired_for_opening(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.RETIRE_OPENING, Level.MAT, 1, "")
    artefact = register_artefact(setup, setup.mat, 2)

    assert reason_of(setup.registry.opening_slot, header_with_versions(setup.mat, 1), artefact) == "KEY_RETIRED"


def test_opening_slot_newer_registered_version_used(setup: Setup) -> None:
    # A rewrap replaced the file but has not shown the daemon the new header yet.
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    artefact = register_artefact(setup, setup.mat, 1)
    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    setup.changes.propose(CUSTODIAN, keys.RETIRE_OPENING, Level.MAT, 1, "")

    slot = setup.registry.opening_slot(header_with_versions(setup.mat, 2), artefact)

    assert slot.key_version == 2


def test_new_data_key_without_active_version_unavailable(setup: Setup) -> None:
    assert reason_of(setup.registry.new_data_key, Level.MAT) == "KEY_UNAVAILABLE"


def test_rotation_due_after_period(setup: Setup) -> None:
    setup.changes.propose(CUSTODIAN, keys.CREATE, Level.MAT, None, "")
    setup.clock.now += 30 * DAY - 1

    assert setup.registry.due_keys() == []

    setup.clock.now += 1
    due = setup.registry.due_keys()
    assert [(age.key_id, age.version, age.age_seconds) for age in due] == [(setup.mat, 1, 30 * DAY)]
    assert due[0].rotation_seconds == 30 * DAY

    setup.changes.propose(CUSTODIAN, keys.ROTATE, Level.MAT, None, "")
    assert setup.registry.due_keys() == []
