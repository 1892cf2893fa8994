"""State of the archive's working day: handover batches, printed copies, incidents.

These tables arrive with schema version 2 (see ``ARCHIVE_MIGRATION``) and are
read and written through :class:`ArchiveQueries`, which every transaction
of ``store.py`` includes, on SQLite and on PostgreSQL alike. The rules that use them run inside one
serializable transaction, as the access rules do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Brings a version 1 database to version 2. Statements are separated by
# semicolons and contain none themselves.
ARCHIVE_MIGRATION = """
ALTER TABLE artefacts ADD COLUMN batch_id TEXT;
ALTER TABLE artefacts ADD COLUMN page_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN copies INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN recipient TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN head INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN copies_allowed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN copies_made INTEGER NOT NULL DEFAULT 0;
ALTER TABLE grants ADD COLUMN authorized_by TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN authorized_name TEXT NOT NULL DEFAULT '';
ALTER TABLE grants ADD COLUMN authorized_title TEXT NOT NULL DEFAULT '';
CREATE TABLE batches (
    batch_id       TEXT PRIMARY KEY,
    state          TEXT NOT NULL CHECK (state IN ('awaiting_approval', 'out', 'closed')),
    taken_out_by   TEXT NOT NULL,
    handed_over_by TEXT NOT NULL,
    note           TEXT NOT NULL,
    opened_at      INTEGER NOT NULL,
    approved_by    TEXT,
    approved_name  TEXT NOT NULL DEFAULT '',
    approved_title TEXT NOT NULL DEFAULT '',
    approved_at    INTEGER,
    closed_by      TEXT,
    closed_at      INTEGER,
    close_note     TEXT
);
CREATE TABLE batch_documents (
    batch_id        TEXT NOT NULL REFERENCES batches (batch_id),
    doc_number      TEXT NOT NULL,
    number          INTEGER NOT NULL,
    issued_on       TEXT NOT NULL,
    sheets          INTEGER NOT NULL,
    pages           INTEGER NOT NULL,
    level           INTEGER NOT NULL,
    title           TEXT NOT NULL,
    basis           TEXT NOT NULL,
    protected_until TEXT NOT NULL,
    source_name     TEXT NOT NULL,
    artefact_id     TEXT UNIQUE REFERENCES artefacts (artefact_id),
    record_id       TEXT UNIQUE REFERENCES classifications (record_id),
    pages_scanned   INTEGER NOT NULL DEFAULT 0,
    sealed_at       INTEGER,
    returned        INTEGER NOT NULL DEFAULT 0,
    damaged         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, doc_number)
);
CREATE TABLE copies (
    artefact_id   TEXT NOT NULL REFERENCES artefacts (artefact_id),
    copy_number   INTEGER NOT NULL CHECK (copy_number >= 1),
    request_id    TEXT NOT NULL REFERENCES grants (request_id),
    printed_by    TEXT NOT NULL,
    authorized_by TEXT NOT NULL,
    printed_at    INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('printing', 'issued', 'spoiled')),
    PRIMARY KEY (artefact_id, copy_number)
);
CREATE TABLE incidents (
    incident_id      TEXT PRIMARY KEY,
    state            TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    reported_by      TEXT NOT NULL,
    text             TEXT NOT NULL,
    reported_at      INTEGER NOT NULL,
    grants_suspended INTEGER NOT NULL,
    closed_by        TEXT,
    closed_at        INTEGER,
    resolution       TEXT,
    grants_revoked   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE incident_artefacts (
    incident_id TEXT NOT NULL REFERENCES incidents (incident_id),
    artefact_id TEXT NOT NULL REFERENCES artefacts (artefact_id),
    PRIMARY KEY (incident_id, artefact_id)
);
CREATE INDEX incident_artefacts_by_artefact ON incident_artefacts (artefact_id)
"""


@dataclass(frozen=True)
class BatchRecord:
    batch_id: str
    state: str
    taken_out_by: str
    handed_over_by: str
    note: str
    opened_at: int
    approved_by: str | None = None
    # Full name and title (chức vụ) from the approver's certificate, if it has them.
    approved_name: str = ""
    approved_title: str = ""
    approved_at: int | None = None
    closed_by: str | None = None
    closed_at: int | None = None
    close_note: str | None = None


@dataclass(frozen=True)
class BatchDocumentRecord:
    batch_id: str
    doc_number: str
    number: int
    issued_on: str
    sheets: int
    pages: int
    level: int
    title: str
    basis: str
    protected_until: str
    source_name: str
    artefact_id: str | None = None
    # The classification record when the rules found the document no longer
    # secret, so that it was scanned but not sealed.
    record_id: str | None = None
    pages_scanned: int = 0
    sealed_at: int | None = None
    returned: bool = False
    damaged: bool = False


@dataclass(frozen=True)
class CopyRecord:
    artefact_id: str
    copy_number: int
    request_id: str
    printed_by: str
    authorized_by: str
    printed_at: int
    state: str


@dataclass(frozen=True)
class IncidentRecord:
    incident_id: str
    state: str
    reported_by: str
    text: str
    reported_at: int
    grants_suspended: int
    closed_by: str | None = None
    closed_at: int | None = None
    resolution: str | None = None
    grants_revoked: bool = False


class ArchiveTransaction(Protocol):
    """Reads and writes of batches, copies and incidents inside one transaction."""

    def insert_batch(self, record: BatchRecord) -> None: ...
    def get_batch(self, batch_id: str) -> BatchRecord | None: ...
    def update_batch(self, record: BatchRecord) -> None: ...
    def insert_batch_document(self, record: BatchDocumentRecord) -> None: ...
    def list_batch_documents(self, batch_id: str) -> list[BatchDocumentRecord]: ...
    def get_batch_document(self, batch_id: str, doc_number: str) -> BatchDocumentRecord | None: ...
    def record_batch_seal(
        self, batch_id: str, doc_number: str, artefact_id: str, pages_scanned: int, sealed_at: int
    ) -> bool: ...
    def record_batch_not_secret(
        self, batch_id: str, doc_number: str, record_id: str, pages_scanned: int, decided_at: int
    ) -> bool: ...
    def record_return(self, batch_id: str, doc_number: str, returned: bool, damaged: bool) -> None: ...
    def next_copy_number(self, artefact_id: str) -> int: ...
    def insert_copy(self, record: CopyRecord) -> None: ...
    def set_copy_state(self, artefact_id: str, copy_number: int, state: str) -> None: ...
    def list_copies(self, artefact_id: str) -> list[CopyRecord]: ...
    def count_copy(self, request_id: str) -> None: ...
    def insert_incident(self, record: IncidentRecord, artefact_ids: Sequence[str]) -> None: ...
    def get_incident(self, incident_id: str) -> IncidentRecord | None: ...
    def update_incident(self, record: IncidentRecord) -> None: ...
    def list_incident_artefacts(self, incident_id: str) -> list[str]: ...
    def list_incidents(self, limit: int) -> list[IncidentRecord]: ...
    def open_incidents_for(self, artefact_id: str) -> list[str]: ...
    def count_open_incidents(self) -> int: ...
    def count_usable_grants(self, artefact_ids: Sequence[str], now: int) -> int: ...
    def revoke_grants(self, artefact_ids: Sequence[str]) -> int: ...


class SqlConnection(Protocol):
    """What the queries need of a connection: sqlite3's ``execute``, with ``?`` placeholders.

    A sqlite3.Connection is one; the PostgreSQL store passes an adapter.
    """

    def execute(self, statement: str, params: Sequence[Any] = ..., /) -> Any: ...


class ArchiveQueries:
    """The SQL implementation of :class:`ArchiveTransaction`, mixed into the store's transaction."""

    _db: SqlConnection

    # Batches ------------------------------------------------------------------

    def insert_batch(self, record: BatchRecord) -> None:
        _insert_row(self._db, "batches", record.__dict__)

    def get_batch(self, batch_id: str) -> BatchRecord | None:
        row = self._db.execute("SELECT * FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
        return BatchRecord(**row) if row else None

    def update_batch(self, record: BatchRecord) -> None:
        self._db.execute(
            "UPDATE batches SET state = ?, approved_by = ?, approved_name = ?, approved_title = ?, approved_at = ?, "
            "closed_by = ?, closed_at = ?, close_note = ? WHERE batch_id = ?",
            (record.state, record.approved_by, record.approved_name, record.approved_title, record.approved_at,
             record.closed_by, record.closed_at,
             record.close_note, record.batch_id),
        )

    def insert_batch_document(self, record: BatchDocumentRecord) -> None:
        values = dict(record.__dict__)
        values["returned"] = int(record.returned)
        values["damaged"] = int(record.damaged)
        _insert_row(self._db, "batch_documents", values)

    def list_batch_documents(self, batch_id: str) -> list[BatchDocumentRecord]:
        rows = self._db.execute(
            "SELECT * FROM batch_documents WHERE batch_id = ? ORDER BY number, doc_number", (batch_id,)
        )
        return [_batch_document(row) for row in rows]

    def get_batch_document(self, batch_id: str, doc_number: str) -> BatchDocumentRecord | None:
        row = self._db.execute(
            "SELECT * FROM batch_documents WHERE batch_id = ? AND doc_number = ?", (batch_id, doc_number)
        ).fetchone()
        return _batch_document(row) if row else None

    def record_batch_seal(
        self, batch_id: str, doc_number: str, artefact_id: str, pages_scanned: int, sealed_at: int
    ) -> bool:
        """Tie a sealed artefact to its batch document; False if the document was sealed already."""
        cursor = self._db.execute(
            "UPDATE batch_documents SET artefact_id = ?, pages_scanned = ?, sealed_at = ? "
            "WHERE batch_id = ? AND doc_number = ? AND artefact_id IS NULL AND record_id IS NULL",
            (artefact_id, pages_scanned, sealed_at, batch_id, doc_number),
        )
        return cursor.rowcount == 1

    def record_batch_not_secret(
        self, batch_id: str, doc_number: str, record_id: str, pages_scanned: int, decided_at: int
    ) -> bool:
        """Tie a not-secret classification record to its batch document; False if it was handled already."""
        cursor = self._db.execute(
            "UPDATE batch_documents SET record_id = ?, pages_scanned = ?, sealed_at = ? "
            "WHERE batch_id = ? AND doc_number = ? AND artefact_id IS NULL AND record_id IS NULL",
            (record_id, pages_scanned, decided_at, batch_id, doc_number),
        )
        return cursor.rowcount == 1

    def record_return(self, batch_id: str, doc_number: str, returned: bool, damaged: bool) -> None:
        self._db.execute(
            "UPDATE batch_documents SET returned = ?, damaged = ? WHERE batch_id = ? AND doc_number = ?",
            (int(returned), int(damaged), batch_id, doc_number),
        )

    # Copies -------------------------------------------------------------------

    def next_copy_number(self, artefact_id: str) -> int:
        # Exact only inside the serializable transaction, where no other
        # writer can insert between this read and the insert that follows;
        # the primary key rejects a duplicate number in any case.
        row = self._db.execute(
            "SELECT COALESCE(MAX(copy_number), 0) + 1 AS next FROM copies WHERE artefact_id = ?", (artefact_id,)
        ).fetchone()
        return int(row["next"])

    def insert_copy(self, record: CopyRecord) -> None:
        _insert_row(self._db, "copies", record.__dict__)

    def set_copy_state(self, artefact_id: str, copy_number: int, state: str) -> None:
        self._db.execute(
            "UPDATE copies SET state = ? WHERE artefact_id = ? AND copy_number = ?", (state, artefact_id, copy_number)
        )

    def list_copies(self, artefact_id: str) -> list[CopyRecord]:
        rows = self._db.execute("SELECT * FROM copies WHERE artefact_id = ? ORDER BY copy_number", (artefact_id,))
        return [CopyRecord(**row) for row in rows]

    def count_copy(self, request_id: str) -> None:
        cursor = self._db.execute(
            "UPDATE grants SET copies_made = copies_made + 1 WHERE request_id = ? AND copies_made < copies_allowed",
            (request_id,),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"grant {request_id} has no copy left to count")

    # Incidents ----------------------------------------------------------------

    def insert_incident(self, record: IncidentRecord, artefact_ids: Sequence[str]) -> None:
        values = dict(record.__dict__)
        values["grants_revoked"] = int(record.grants_revoked)
        _insert_row(self._db, "incidents", values)
        for artefact_id in artefact_ids:
            self._db.execute(
                "INSERT INTO incident_artefacts (incident_id, artefact_id) VALUES (?, ?)",
                (record.incident_id, artefact_id),
            )

    def get_incident(self, incident_id: str) -> IncidentRecord | None:
        row = self._db.execute("SELECT * FROM incidents WHERE incident_id = ?", (incident_id,)).fetchone()
        return _incident(row) if row else None

    def update_incident(self, record: IncidentRecord) -> None:
        self._db.execute(
            "UPDATE incidents SET state = ?, closed_by = ?, closed_at = ?, resolution = ?, grants_revoked = ? "
            "WHERE incident_id = ?",
            (record.state, record.closed_by, record.closed_at, record.resolution, int(record.grants_revoked),
             record.incident_id),
        )

    def list_incident_artefacts(self, incident_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT artefact_id FROM incident_artefacts WHERE incident_id = ? ORDER BY artefact_id", (incident_id,)
        )
        return [row["artefact_id"] for row in rows]

    def list_incidents(self, limit: int) -> list[IncidentRecord]:
        rows = self._db.execute(
            "SELECT * FROM incidents ORDER BY state = 'closed', reported_at DESC, incident_id LIMIT ?", (limit,)
        )
        return [_incident(row) for row in rows]

    def open_incidents_for(self, artefact_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT i.incident_id FROM incidents i JOIN incident_artefacts a ON a.incident_id = i.incident_id "
            "WHERE a.artefact_id = ? AND i.state = 'open' ORDER BY i.reported_at, i.incident_id",
            (artefact_id,),
        )
        return [row["incident_id"] for row in rows]

    def count_open_incidents(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM incidents WHERE state = 'open'").fetchone()[0])

    def count_usable_grants(self, artefact_ids: Sequence[str], now: int) -> int:
        marks = ", ".join("?" for _ in artefact_ids)
        row = self._db.execute(
            f"SELECT COUNT(*) FROM grants WHERE artefact_id IN ({marks}) AND revoked = 0 AND expires_at > ? "
            "AND (opens_used < opens_allowed OR copies_made < copies_allowed)",
            (*artefact_ids, now),
        ).fetchone()
        return int(row[0])

    def revoke_grants(self, artefact_ids: Sequence[str]) -> int:
        marks = ", ".join("?" for _ in artefact_ids)
        cursor = self._db.execute(
            f"UPDATE grants SET revoked = 1 WHERE artefact_id IN ({marks}) AND revoked = 0", tuple(artefact_ids)
        )
        return cursor.rowcount


def _insert_row(db: SqlConnection, table: str, values: dict[str, object]) -> None:
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))


def _batch_document(row: Any) -> BatchDocumentRecord:
    values = dict(row)
    values["returned"] = bool(values["returned"])
    values["damaged"] = bool(values["damaged"])
    return BatchDocumentRecord(**values)


def _incident(row: Any) -> IncidentRecord:
    values = dict(row)
    values["grants_revoked"] = bool(values["grants_revoked"])
    return IncidentRecord(**values)
