"""Printed copies: which grant allows a copy, and the copy number of each document.

A copy is printed only under an approved, unexpired, unrevoked grant whose
request asked for copies, only while the policy of the document's level
allows printing, and only while no open incident suspends the document. The
policy is checked again at each print, so turning printing off stops grants
approved before. Each copy counts one against
the grant and takes the next number of that document's copy sequence.

The number is assigned in the same serializable transaction that counts the
copy, so concurrent prints of one document get distinct, consecutive
numbers. A number whose copy fails to render or to reach the client is
marked spoiled and never reused, so the register of copies has no gaps and
no duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from niemphong.daemon.access import check_not_suspended
from niemphong.daemon.config import LevelPolicy
from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import Identity
from niemphong.daemon.levels import Level
from niemphong.daemon.store import GrantRecord, StateStore, StateTransaction
from niemphong.daemon.store_archive import CopyRecord

log = logging.getLogger(__name__)

PRINTING, ISSUED, SPOILED = "printing", "issued", "spoiled"


class Copies:
    """Apply the printing rules against a state store.

    Args:
        store: where grants and copies are kept.
        policies: the key policy of each sealable level, whose ``printing`` flag applies.
        clock: seconds since the epoch; tests pass their own.
    """

    def __init__(
        self, store: StateStore, policies: Mapping[Level, LevelPolicy], clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.policies = policies
        self.clock = clock

    def find_print_grant(self, viewer: Identity, artefact_id: str, request_id: str | None) -> GrantRecord:
        """Return a grant of ``viewer`` that may print one more copy, without counting it."""
        with self.store.transaction() as tx:
            return self._printable_grant(tx, viewer, artefact_id, request_id, int(self.clock()))

    def assign(
        self, viewer: Identity, artefact_id: str, request_id: str | None,
        before_commit: Callable[[CopyRecord, GrantRecord], None] | None = None,
    ) -> tuple[CopyRecord, GrantRecord]:
        """Count one copy against a printable grant and reserve the document's next copy number.

        ``before_commit`` runs inside the transaction with the copy and the
        updated grant; when it raises, no copy is counted or numbered.
        """
        now = int(self.clock())

        with self.store.transaction() as tx:
            grant = self._printable_grant(tx, viewer, artefact_id, request_id, now)
            tx.count_copy(grant.request_id)
            copy = CopyRecord(
                artefact_id=artefact_id,
                copy_number=tx.next_copy_number(artefact_id),
                request_id=grant.request_id,
                printed_by=viewer.name,
                authorized_by=grant.authorized_by,
                printed_at=now,
                state=PRINTING,
            )
            tx.insert_copy(copy)
            updated = tx.get_grant(grant.request_id)
            assert updated is not None
            if before_commit is not None:
                before_commit(copy, updated)

        log.info(
            "copy %d of artefact %s assigned to %s under grant %s (%d of %d copies)",
            copy.copy_number, artefact_id, viewer.name, grant.request_id, updated.copies_made, updated.copies_allowed,
        )
        return copy, updated

    def finish(self, copy: CopyRecord, state: str) -> None:
        """Mark a reserved copy issued or spoiled."""
        with self.store.transaction() as tx:
            tx.set_copy_state(copy.artefact_id, copy.copy_number, state)
        if state == SPOILED:
            log.warning("copy %d of artefact %s spoiled; its number is not reused", copy.copy_number, copy.artefact_id)

    def list(self, artefact_id: str) -> list[CopyRecord]:
        with self.store.transaction() as tx:
            if tx.get_artefact(artefact_id) is None:
                raise ServiceError("ARTEFACT_NOT_FOUND", f"artefact {artefact_id} is not in the registry")
            return tx.list_copies(artefact_id)

    def _printable_grant(
        self, tx: StateTransaction, viewer: Identity, artefact_id: str, request_id: str | None, now: int
    ) -> GrantRecord:
        artefact = tx.get_artefact(artefact_id)
        if artefact is None:
            raise ServiceError("ARTEFACT_NOT_FOUND", f"artefact {artefact_id} is not in the registry")
        level = Level(artefact.level)
        if not self.policies[level].printing:
            raise ServiceError(
                "PRINTING_NOT_ALLOWED", f"the policy of level {level.name} allows no printing",
                {"level": level.config_name},
            )

        grants = [
            grant for grant in tx.list_grants(artefact_id, viewer.name)
            if grant.printable_at(now) and (not request_id or grant.request_id == request_id)
        ]
        if not grants:
            raise ServiceError(
                "NOT_APPROVED_FOR_PRINTING",
                "no approved, unexpired grant with copies left for this viewer and artefact",
            )
        check_not_suspended(tx, artefact_id)
        return grants[0]
