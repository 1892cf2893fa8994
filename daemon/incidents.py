"""Incidents: loss or suspected exposure of state secrets, reported at once.

Loss or suspected exposure is reported at once to the head of the agency
(UBND tỉnh Đắk Lắk, công văn hướng dẫn số hóa tài liệu BMNN, tháng 5/2025).
A report names the artefacts concerned and suspends every grant on them at
once: while an incident naming an artefact is open, no grant on it opens or
prints, including grants approved later. An approver closes the incident,
which either lifts the suspension or revokes the grants for good.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from niemphong.daemon.errors import ServiceError
from niemphong.daemon.identity import Identity
from niemphong.daemon.store import StateStore
from niemphong.daemon.store_archive import IncidentRecord

log = logging.getLogger(__name__)

OPEN, CLOSED = "open", "closed"
MAX_INCIDENT_ARTEFACTS = 100
MAX_LISTED_INCIDENTS = 1000


@dataclass(frozen=True)
class IncidentView:
    incident: IncidentRecord
    artefact_ids: list[str]


class Incidents:
    """Apply the incident rules against a state store.

    Args:
        store: where incidents and grants are kept.
        clock: seconds since the epoch; tests pass their own.
    """

    def __init__(self, store: StateStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def report(
        self, reporter: Identity, artefact_ids: Sequence[str], text: str,
        before_commit: Callable[[IncidentView], None] | None = None,
    ) -> IncidentView:
        """Record an incident and suspend the grants on ``artefact_ids``.

        ``before_commit`` runs inside the transaction; when it raises, nothing
        is recorded. ``close`` takes it too.
        """
        now = int(self.clock())
        unique = sorted(set(artefact_ids))

        with self.store.transaction() as tx:
            for artefact_id in unique:
                if tx.get_artefact(artefact_id) is None:
                    raise ServiceError(
                        "ARTEFACT_NOT_FOUND", f"artefact {artefact_id} is not in the registry",
                        {"artefact_id": artefact_id},
                    )
            incident = IncidentRecord(
                incident_id=uuid.uuid4().hex,
                state=OPEN,
                reported_by=reporter.name,
                text=text,
                reported_at=now,
                grants_suspended=tx.count_usable_grants(unique, now),
            )
            tx.insert_incident(incident, unique)
            if before_commit is not None:
                before_commit(IncidentView(incident, unique))

        # An alert for whoever watches the log; the text may describe the
        # secret's content, so it is not logged.
        log.error(
            "ALERT incident %s reported by %s on %d artefacts (%s): %d grants suspended",
            incident.incident_id, reporter.name, len(unique), ", ".join(unique), incident.grants_suspended,
        )
        return IncidentView(incident, unique)

    def close(
        self, approver: Identity, incident_id: str, resolution: str, revoke_grants: bool,
        before_commit: Callable[[IncidentView], None] | None = None,
    ) -> IncidentView:
        now = int(self.clock())

        with self.store.transaction() as tx:
            incident = tx.get_incident(incident_id)
            if incident is None:
                raise ServiceError("INCIDENT_NOT_FOUND", f"incident {incident_id} not found")
            if incident.state != OPEN:
                raise ServiceError("INCIDENT_CLOSED", f"incident {incident_id} is already closed")
            artefact_ids = tx.list_incident_artefacts(incident_id)
            revoked = tx.revoke_grants(artefact_ids) if revoke_grants else 0
            incident = IncidentRecord(
                **{**incident.__dict__, "state": CLOSED, "closed_by": approver.name, "closed_at": now,
                   "resolution": resolution, "grants_revoked": revoke_grants},
            )
            tx.update_incident(incident)
            if before_commit is not None:
                before_commit(IncidentView(incident, artefact_ids))

        log.warning(
            "incident %s closed by %s: %s",
            incident_id, approver.name, f"{revoked} grants revoked" if revoke_grants else "suspension lifted",
        )
        return IncidentView(incident, artefact_ids)

    def list(self) -> list[IncidentView]:
        with self.store.transaction() as tx:
            return [
                IncidentView(incident, tx.list_incident_artefacts(incident.incident_id))
                for incident in tx.list_incidents(MAX_LISTED_INCIDENTS)
            ]

    def count_open(self) -> int:
        """Return the number of open incidents, for an alert gauge."""
        with self.store.transaction() as tx:
            return tx.count_open_incidents()
