"""Key changes under dual control: one custodian proposes, others confirm.

A change (create, rotate, retire for sealing or opening, destroy) names one
level's key. It is carried out once as many distinct custodians as the
level's ``custodians`` policy asks for have confirmed it; the proposer counts
as the first. Tối mật never needs fewer than two, so no one custodian can
rotate or destroy a Tối mật key alone. A custodian confirms a change once, a
second confirmation by the same person is rejected rather than counted, and
a change not carried out within 24 hours expires. Every rule runs inside one
state transaction, and the change itself runs in the same transaction as
its last confirmation.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import Identity
from niemphong.daemon.keys import CREATE, ROTATE, KeyRegistry
from niemphong.daemon.levels import Level
from niemphong.daemon.store import KeyChangeRecord, KeyConfirmationRecord, StateStore, StateTransaction

log = logging.getLogger(__name__)

PENDING, DONE, REJECTED, EXPIRED = "pending", "done", "rejected", "expired"
CHANGE_LIFETIME_SECONDS = 24 * 3600
MAX_LISTED_CHANGES = 1000

# Called inside the change's transaction with the change record at that point.
BeforeCommit = Callable[[KeyChangeRecord], None]


@dataclass(frozen=True)
class KeyChangeView:
    """A change with its confirmations, and its state as of now (a stale pending change reads as expired)."""

    record: KeyChangeRecord
    confirmations: list[KeyConfirmationRecord]
    state: str


class KeyChanges:
    """Apply the dual-control rules to key changes.

    Args:
        store: Where changes and confirmations are kept.
        registry: The key registry that checks and carries out changes.
        clock: Seconds since the epoch; tests pass their own.
    """

    def __init__(self, store: StateStore, registry: KeyRegistry, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock())

    def propose(
        self, custodian: Identity, operation: str, level: Level, version: int | None, reason: str,
        before_commit: BeforeCommit | None = None,
    ) -> KeyChangeView:
        """Record a change and the proposer's confirmation; carry it out when one custodian is enough.

        ``before_commit`` runs inside the transaction, before the token is
        changed; an exception from it rolls the whole change back.
        """
        now = self._now()
        policy = self.registry.policy(level)

        with self.store.transaction() as tx:
            for pending in tx.list_key_changes(PENDING, MAX_LISTED_CHANGES):
                if pending.level == int(level) and _state_at(pending, now) == PENDING:
                    raise ServiceError(
                        "KEY_CHANGE_PENDING",
                        f"change {pending.change_id} of level {level.name} is still waiting for confirmation",
                        {"change_id": pending.change_id},
                    )
            self.registry.check_change(tx, operation, level, version)

            record = KeyChangeRecord(
                change_id=uuid.uuid4().hex,
                operation=operation,
                level=int(level),
                key_id=policy.key_id,
                version=version or None,
                reason=reason,
                proposer=custodian.name,
                state=PENDING,
                custodians_required=policy.custodians,
                created_at=now,
                expires_at=now + CHANGE_LIFETIME_SECONDS,
            )
            tx.insert_key_change(record)
            tx.insert_key_confirmation(KeyConfirmationRecord(record.change_id, custodian.name, now))
            record = self._carry_out_if_confirmed(tx, record, now, before_commit)
            view = KeyChangeView(record, tx.list_key_confirmations(record.change_id), record.state)

        log.info(
            "key change %s proposed by %s: %s of %s %s, %d custodians needed%s",
            record.change_id, custodian.name, operation, level.name, policy.key_id, policy.custodians,
            f"; done, version {record.version}" if record.state == DONE else "",
        )
        return view

    def confirm(self, custodian: Identity, change_id: str, before_commit: BeforeCommit | None = None) -> KeyChangeView:
        """Add a custodian's confirmation; carry the change out once enough custodians have confirmed.

        ``before_commit`` runs as for :meth:`propose`.
        """
        now = self._now()

        with self.store.transaction() as tx:
            record = self._load_pending(tx, change_id, now)
            if not tx.insert_key_confirmation(KeyConfirmationRecord(change_id, custodian.name, now)):
                raise ServiceError("ALREADY_CONFIRMED", f"{custodian.name} has already confirmed change {change_id}")
            record = self._carry_out_if_confirmed(tx, record, now, before_commit)
            confirmations = tx.list_key_confirmations(change_id)
            view = KeyChangeView(record, confirmations, record.state)

        log.info(
            "key change %s confirmed by %s (%d of %d)%s",
            change_id, custodian.name, len(confirmations), record.custodians_required,
            f"; done, version {record.version}" if record.state == DONE else "",
        )
        return view

    def reject(
        self, custodian: Identity, change_id: str, reason: str, before_commit: BeforeCommit | None = None,
    ) -> KeyChangeView:
        """Reject a pending change. Any custodian may, the proposer included.

        ``before_commit`` runs inside the transaction; an exception from it
        leaves the change pending.
        """
        now = self._now()

        with self.store.transaction() as tx:
            record = self._load_pending(tx, change_id, now)
            record = replace(record, state=REJECTED, decided_at=now, rejected_by=custodian.name, reject_reason=reason)
            tx.update_key_change(record)
            if before_commit is not None:
                before_commit(record)
            view = KeyChangeView(record, tx.list_key_confirmations(change_id), REJECTED)

        log.info("key change %s rejected by %s", change_id, custodian.name)
        return view

    def list_pending(self) -> list[KeyChangeView]:
        """List the changes still waiting for confirmations, oldest first."""
        now = self._now()
        with self.store.transaction() as tx:
            return [
                KeyChangeView(record, tx.list_key_confirmations(record.change_id), PENDING)
                for record in tx.list_key_changes(PENDING, MAX_LISTED_CHANGES)
                if _state_at(record, now) == PENDING
            ]

    def _load_pending(self, tx: StateTransaction, change_id: str, now: int) -> KeyChangeRecord:
        record = tx.get_key_change(change_id)
        if record is None:
            raise ServiceError("KEY_CHANGE_NOT_FOUND", f"key change {change_id} not found")
        state = _state_at(record, now)
        if state != PENDING:
            raise ServiceError("KEY_CHANGE_NOT_PENDING", f"key change {change_id} is {state}", {"state": state})
        return record

    def _carry_out_if_confirmed(
        self, tx: StateTransaction, record: KeyChangeRecord, now: int, before_commit: BeforeCommit | None,
    ) -> KeyChangeRecord:
        # The hook (the audit record) comes before any change to the token,
        # which the transaction could not roll back.
        if before_commit is not None:
            before_commit(record)
        if len(tx.list_key_confirmations(record.change_id)) < record.custodians_required:
            return record

        level = Level(record.level)
        version = self.registry.apply_change(tx, record.operation, level, record.version)
        done = replace(
            record, state=DONE, decided_at=now, version=version if record.operation in (CREATE, ROTATE) else record.version,
        )
        tx.update_key_change(done)
        return done


def _state_at(record: KeyChangeRecord, now: int) -> str:
    if record.state == PENDING and now >= record.expires_at:
        return EXPIRED
    return record.state
