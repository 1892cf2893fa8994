"""State: the artefact registry, access requests, approvals, grants and the key registry.

Handover batches, printed copies and incidents are kept by the queries in
``store_archive.py``, which every transaction includes.

:class:`StateStore` is the interface; :class:`SqliteStore` the embedded
implementation and ``store_postgres.PostgresStore`` the one several daemons
share. Both run the schema, migrations and queries of this module, written
in the SQLite dialect. Rules live in ``access.py`` and run inside one
:meth:`StateStore.transaction`, whose contract is serializable isolation:
a transaction that reads a request and then changes it sees no concurrent
change in between. SQLite gets that from ``BEGIN IMMEDIATE``; PostgreSQL
from an advisory lock that every transaction takes first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from niemphong.daemon.config import Config

T = TypeVar("T")

from niemphong.daemon.errors import StateUnavailable
from niemphong.daemon.store_archive import ARCHIVE_MIGRATION, ArchiveQueries, ArchiveTransaction, SqlConnection

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS artefacts (
    artefact_id     TEXT PRIMARY KEY,
    level           INTEGER NOT NULL,
    doc_number      TEXT NOT NULL,
    issued_on       TEXT NOT NULL,
    title           TEXT NOT NULL,
    source_name     TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    key_version     INTEGER NOT NULL,
    wrap_algorithm  TEXT NOT NULL,
    plaintext_bytes INTEGER NOT NULL,
    envelope_bytes  INTEGER NOT NULL,
    envelope_sha256 TEXT NOT NULL,
    sealed_by       TEXT NOT NULL,
    sealed_at       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    request_id         TEXT PRIMARY KEY,
    artefact_id        TEXT NOT NULL REFERENCES artefacts (artefact_id),
    requester          TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
    approvals_required INTEGER NOT NULL CHECK (approvals_required >= 1),
    created_at         INTEGER NOT NULL,
    decided_at         INTEGER,
    denied_by          TEXT,
    deny_reason        TEXT
);
CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state, created_at);
CREATE TABLE IF NOT EXISTS approvals (
    request_id  TEXT NOT NULL REFERENCES requests (request_id),
    approver    TEXT NOT NULL,
    approved_at INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver)
);
CREATE TABLE IF NOT EXISTS grants (
    request_id    TEXT PRIMARY KEY REFERENCES requests (request_id),
    artefact_id   TEXT NOT NULL REFERENCES artefacts (artefact_id),
    viewer        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    opens_allowed INTEGER NOT NULL CHECK (opens_allowed >= 1),
    opens_used    INTEGER NOT NULL DEFAULT 0 CHECK (opens_used <= opens_allowed),
    revoked       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS grants_by_viewer ON grants (artefact_id, viewer);
-- Classification decisions: one per sealed artefact (record_id = artefact_id)
-- and one per document declined as not secret (artefact_id NULL).
CREATE TABLE IF NOT EXISTS classifications (
    record_id          TEXT PRIMARY KEY,
    artefact_id        TEXT UNIQUE REFERENCES artefacts (artefact_id),
    outcome            TEXT NOT NULL CHECK (outcome IN ('seal', 'not_secret')),
    code               TEXT NOT NULL,
    rule               TEXT,
    stated_level       INTEGER,
    level              INTEGER,
    doc_number         TEXT NOT NULL,
    issued_on          TEXT NOT NULL,
    title              TEXT NOT NULL,
    source_name        TEXT NOT NULL,
    basis              TEXT NOT NULL,
    catalog_item       TEXT NOT NULL,
    facts_json         TEXT NOT NULL,
    stamp_required     INTEGER NOT NULL,
    protected_until    TEXT,
    protection_source  TEXT,
    extension_decision TEXT,
    explanation        TEXT NOT NULL,
    decided_on         TEXT NOT NULL,
    decided_by         TEXT NOT NULL,
    decided_at         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS classifications_by_end ON classifications (outcome, protected_until);
CREATE TABLE IF NOT EXISTS extensions (
    artefact_id     TEXT NOT NULL REFERENCES artefacts (artefact_id),
    previous_until  TEXT NOT NULL,
    ends_on         TEXT NOT NULL,
    decision        TEXT NOT NULL,
    decided_on      TEXT NOT NULL,
    recorded_by     TEXT NOT NULL,
    recorded_at     INTEGER NOT NULL
);
"""

# Version 3: the key registry. Every version of every level's key-encryption
# key and its state, the key changes custodians propose and confirm, and for
# each artefact its recovery slot and the SHA-256 of its header core.
_KEY_REGISTRY_MIGRATION = """
ALTER TABLE artefacts ADD COLUMN recovery_key_id TEXT;
ALTER TABLE artefacts ADD COLUMN recovery_key_version INTEGER;
ALTER TABLE artefacts ADD COLUMN core_sha256 TEXT;
CREATE INDEX artefacts_by_key ON artefacts (key_id, key_version);
CREATE TABLE key_versions (
    key_id           TEXT NOT NULL,
    version          INTEGER NOT NULL CHECK (version >= 1),
    level            INTEGER NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('active', 'retired_sealing', 'retired_opening', 'destroyed')),
    created_at       INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE UNIQUE INDEX key_versions_one_active ON key_versions (key_id) WHERE state = 'active';
CREATE TABLE key_changes (
    change_id           TEXT PRIMARY KEY,
    operation           TEXT NOT NULL
                        CHECK (operation IN ('create', 'rotate', 'retire_sealing', 'retire_opening', 'destroy')),
    level               INTEGER NOT NULL,
    key_id              TEXT NOT NULL,
    version             INTEGER,
    reason              TEXT NOT NULL,
    proposer            TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'done', 'rejected')),
    custodians_required INTEGER NOT NULL CHECK (custodians_required >= 1),
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    decided_at          INTEGER,
    rejected_by         TEXT,
    reject_reason       TEXT
);
CREATE INDEX key_changes_by_state ON key_changes (state, created_at);
CREATE TABLE key_confirmations (
    change_id    TEXT NOT NULL REFERENCES key_changes (change_id),
    custodian    TEXT NOT NULL,
    confirmed_at INTEGER NOT NULL,
    PRIMARY KEY (change_id, custodian)
);
"""

# Version 4: whether the client confirmed writing each sealed envelope.
# An artefact is registered when its envelope has been streamed out. The
# client confirms it once the envelope is durably written (confirmed_at) or
# reports that the envelope was not kept (abandoned_at, abandon_reason). A
# batch document sealed again also abandons its unconfirmed artefact.
# Artefacts sealed before version 4 had no confirmation step and count as
# confirmed.
_SEAL_CONFIRMATION_MIGRATION = """
ALTER TABLE artefacts ADD COLUMN confirmed_at INTEGER;
ALTER TABLE artefacts ADD COLUMN abandoned_at INTEGER;
ALTER TABLE artefacts ADD COLUMN abandon_reason TEXT;
ALTER TABLE batch_documents ADD COLUMN confirmed_at INTEGER;
UPDATE artefacts SET confirmed_at = sealed_at;
UPDATE batch_documents SET confirmed_at = sealed_at WHERE artefact_id IS NOT NULL
"""

# Schema version -> statements that bring the previous version to it. A new
# database gets the version 1 schema above and then every migration, so that
# new and upgraded databases take the same path.
_MIGRATIONS: dict[int, str] = {
    2: ARCHIVE_MIGRATION,
    3: _KEY_REGISTRY_MIGRATION,
    4: _SEAL_CONFIRMATION_MIGRATION,
}

# Values of artefacts.abandon_reason.
ABANDONED_NOT_KEPT = "not_kept"
ABANDONED_SUPERSEDED = "superseded"


@dataclass(frozen=True)
class ArtefactRecord:
    artefact_id: str
    level: int
    doc_number: str
    issued_on: str
    title: str
    source_name: str
    key_id: str
    key_version: int
    wrap_algorithm: str
    plaintext_bytes: int
    envelope_bytes: int
    envelope_sha256: str
    sealed_by: str
    sealed_at: int
    batch_id: str | None = None
    page_count: int = 0
    # The recovery key slot the envelope is recorded with, if any.
    recovery_key_id: str | None = None
    recovery_key_version: int | None = None
    # SHA-256 of the header core, hex. It binds the registry entry to one
    # data key, because the core holds the key commitment. Artefacts sealed
    # before schema 3 get it at their first rewrap.
    core_sha256: str | None = None
    # When the client confirmed a durable envelope; None until then.
    confirmed_at: int | None = None
    # When the envelope was found never kept, and why (ABANDONED_NOT_KEPT or
    # ABANDONED_SUPERSEDED). An abandoned artefact is never opened or granted.
    abandoned_at: int | None = None
    abandon_reason: str | None = None

    @property
    def abandoned(self) -> bool:
        return self.abandoned_at is not None


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    artefact_id: str
    requester: str
    purpose: str
    state: str
    approvals_required: int
    created_at: int
    decided_at: int | None = None
    denied_by: str | None = None
    deny_reason: str | None = None
    copies: int = 0
    recipient: str = ""


@dataclass(frozen=True)
class ApprovalRecord:
    request_id: str
    approver: str
    approved_at: int
    head: bool = False


@dataclass(frozen=True)
class GrantRecord:
    request_id: str
    artefact_id: str
    viewer: str
    created_at: int
    expires_at: int
    opens_allowed: int
    opens_used: int = 0
    revoked: bool = False
    copies_allowed: int = 0
    copies_made: int = 0
    # The approver whose approval completed the grant: common name, full
    # name and title, as printed on copy stamps.
    authorized_by: str = ""
    authorized_name: str = ""
    authorized_title: str = ""

    def usable_at(self, now: int) -> bool:
        return not self.revoked and now < self.expires_at and self.opens_used < self.opens_allowed

    def printable_at(self, now: int) -> bool:
        """Whether the grant may print one more copy at ``now``; printing does not use up opens."""
        return not self.revoked and now < self.expires_at and self.copies_made < self.copies_allowed


@dataclass(frozen=True)
class KeyVersionRecord:
    """One version of a level's key-encryption key in the key registry."""

    key_id: str
    version: int
    level: int
    state: str
    created_at: int
    state_changed_at: int


@dataclass(frozen=True)
class ArtefactKeys:
    """The key slots an artefact's envelope is recorded with."""

    key_id: str
    key_version: int
    wrap_algorithm: str
    recovery_key_id: str | None
    recovery_key_version: int | None


@dataclass(frozen=True)
class KeyChangeRecord:
    """A key change proposed by a custodian, waiting for or past its confirmations."""

    change_id: str
    operation: str
    level: int
    key_id: str
    version: int | None
    reason: str
    proposer: str
    state: str
    custodians_required: int
    created_at: int
    expires_at: int
    decided_at: int | None = None
    rejected_by: str | None = None
    reject_reason: str | None = None


@dataclass(frozen=True)
class KeyConfirmationRecord:
    change_id: str
    custodian: str
    confirmed_at: int


@dataclass(frozen=True)
class LevelCounts:
    """Operational counts for one level, for metrics."""

    level: int
    pending: int
    oldest_pending_created_at: int | None
    active_grants: int


@dataclass(frozen=True)
class ClassificationRecord:
    """The classification decision recorded for a sealed artefact or a declined document."""

    record_id: str
    artefact_id: str | None
    outcome: str
    code: str
    rule: str | None
    stated_level: int | None
    level: int | None
    doc_number: str
    issued_on: str
    title: str
    source_name: str
    basis: str
    catalog_item: str
    facts_json: str
    stamp_required: bool
    protected_until: str | None
    protection_source: str | None
    extension_decision: str | None
    explanation: str
    decided_on: str
    decided_by: str
    decided_at: int


@dataclass(frozen=True)
class ExtensionRecord:
    artefact_id: str
    previous_until: str
    ends_on: str
    decision: str
    decided_on: str
    recorded_by: str
    recorded_at: int


class StateTransaction(ArchiveTransaction, Protocol):
    """Reads and writes inside one serializable transaction."""

    def insert_artefact(self, record: ArtefactRecord) -> None: ...
    def get_artefact(self, artefact_id: str) -> ArtefactRecord | None: ...
    def confirm_artefact(self, artefact_id: str, confirmed_at: int) -> bool: ...
    def abandon_artefact(self, artefact_id: str, abandoned_at: int, reason: str) -> bool: ...
    def insert_request(self, record: RequestRecord) -> None: ...
    def get_request(self, request_id: str) -> RequestRecord | None: ...
    def list_requests(self, state: str, requester: str | None, limit: int) -> list[RequestRecord]: ...
    def update_request(self, record: RequestRecord) -> None: ...
    def insert_approval(self, record: ApprovalRecord) -> bool: ...
    def list_approvals(self, request_id: str) -> list[ApprovalRecord]: ...
    def insert_grant(self, record: GrantRecord) -> None: ...
    def get_grant(self, request_id: str) -> GrantRecord | None: ...
    def list_grants(self, artefact_id: str, viewer: str) -> list[GrantRecord]: ...
    def count_open(self, request_id: str) -> None: ...
    def level_counts(self, now: int) -> list[LevelCounts]: ...
    def first_seal_times(self) -> dict[tuple[str, int], int]: ...

    # Key registry.
    def list_key_versions(self, key_id: str | None = None) -> list[KeyVersionRecord]: ...
    def insert_key_version(self, record: KeyVersionRecord) -> None: ...
    def set_key_state(self, key_id: str, version: int, state: str, now: int) -> None: ...
    def count_artefacts_by_key(self) -> dict[tuple[str, int], int]: ...
    def count_artefacts_without_recovery(self, level: int, key_id: str, version: int) -> int: ...
    def update_artefact_keys(self, artefact_id: str, keys: ArtefactKeys, core_sha256: str) -> None: ...
    def insert_key_change(self, record: KeyChangeRecord) -> None: ...
    def get_key_change(self, change_id: str) -> KeyChangeRecord | None: ...
    def list_key_changes(self, state: str, limit: int) -> list[KeyChangeRecord]: ...
    def update_key_change(self, record: KeyChangeRecord) -> None: ...
    def insert_key_confirmation(self, record: KeyConfirmationRecord) -> bool: ...
    def list_key_confirmations(self, change_id: str) -> list[KeyConfirmationRecord]: ...

    def insert_classification(self, record: ClassificationRecord) -> None: ...
    def get_classification(self, artefact_id: str) -> ClassificationRecord | None: ...
    def get_classification_record(self, record_id: str) -> ClassificationRecord | None: ...
    def list_sealed_due(self, until: str, limit: int) -> list[ClassificationRecord]: ...
    def list_unclassified_artefacts(self, limit: int) -> list[ArtefactRecord]: ...
    def record_extension(self, record: ExtensionRecord) -> None: ...


class StateStore(Protocol):
    # Wraps the work of one grouped commit; an error at its end rolls the batch back.
    group_guard: Callable[[], contextlib.AbstractContextManager[object]]

    def transaction(self) -> contextlib.AbstractContextManager[StateTransaction]: ...
    def reading(self) -> contextlib.AbstractContextManager[StateTransaction]: ...
    def write_grouped(self, work: Callable[[StateTransaction], T]) -> T: ...
    def check_writable(self) -> bool: ...
    def close(self) -> None: ...


# Read-only connections for reading(); each uses file descriptors for the
# database and its WAL.
READER_CONNECTIONS = 4


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600, or narrow it and its -wal and -shm files to 0600.

    The files hold grants and the key registry, so they must be private
    whatever the umask of the process that creates them: ``niemphong dev
    init`` runs ``niemphongd provision`` before any umask is set. SQLite
    creates the -wal and -shm files with the mode of the database file.
    """
    companions = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    for index, file in enumerate([path, *companions]):
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if index == 0 else 0)
        try:
            descriptor = os.open(file, flags, 0o600)
        except FileNotFoundError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(descriptor).st_mode)
            if mode & 0o077:
                log.info("narrowing the mode of %s from %04o to 0600", file, mode)
                os.fchmod(descriptor, 0o600)
        finally:
            os.close(descriptor)


class SqliteStore:
    """The embedded state store: one SQLite file in WAL mode, fully synchronous.

    One connection serves every thread, behind a lock, so transactions run
    one at a time. At the rates of one agency's custody daemon the token, not
    this lock, limits throughput.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _create_private(path)
        self.path = path
        self._lock = threading.Lock()
        # Work waiting for write_grouped's next commit; guarded by _queue_lock.
        self._queue: list[_GroupedWrite] = []
        self._queue_lock = threading.Lock()
        # Wraps the work of one grouped commit; the daemon sets it so that the
        # batch's audit records share one fdatasync before the commit.
        self.group_guard: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext
        # Idle read-only connections for reading(), and all of them, for close().
        self._idle_readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._reader_connections: list[sqlite3.Connection] = []
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL")
        # FULL: a grant or an open counted is on disk before the caller hears of it.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()
        self._open_readers()

    def _migrate(self) -> None:
        with self._lock:
            # executescript() commits any open transaction first, so the
            # transaction is opened inside the script itself.
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA)
            try:
                row = self._db.execute("SELECT version FROM schema_version").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO schema_version (version) VALUES (1)")
                    version = 1
                else:
                    version = row["version"]
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"state database {self.path} has schema {version}, newer than this "
                        f"daemon's {SCHEMA_VERSION}; upgrade the daemon"
                    )
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    # executescript() would commit the open transaction, so
                    # the statements run one by one.
                    for statement in _MIGRATIONS[target].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute("UPDATE schema_version SET version = ?", (target,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StateTransaction]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                _raise_if_storage_error(exc)
                raise
            try:
                yield _StateQueries(self._db)
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    _raise_if_storage_error(exc)
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                _raise_if_storage_error(exc)
                raise

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors, SQLITE_FULL among
        # them, and then ROLLBACK fails with "no transaction is active".
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    @contextlib.contextmanager
    def reading(self) -> Iterator[StateTransaction]:
        """Yield a read-only transaction that does not wait for writers.

        It runs on one of READER_CONNECTIONS separate connections, so it
        sees the last committed state and never waits for the lock
        that writes and their disk flushes hold. WAL mode lets readers run
        beside the writer. A write inside it raises sqlite3.OperationalError.
        """
        db = self._idle_readers.get()
        try:
            db.execute("BEGIN")
            try:
                yield _StateQueries(db)
            finally:
                db.execute("ROLLBACK")
        finally:
            self._idle_readers.put(db)

    def _open_readers(self) -> None:
        """Open the read-only connections, each with a first read so that it has its files open.

        Opening them all at start keeps the daemon's count of open file
        descriptors steady while it serves.
        """
        for _ in range(READER_CONNECTIONS):
            db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA query_only = ON")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("SELECT version FROM schema_version").fetchall()
            self._reader_connections.append(db)
            self._idle_readers.put(db)

    def write_grouped(self, work: Callable[[StateTransaction], T]) -> T:
        """Run ``work`` in a transaction that may share its commit with other callers' work.

        For short writes that do not read what another caller's work may
        change, such as registering a new artefact. With ``synchronous =
        FULL`` every commit waits for the disk to flush (about 3 ms on the
        benchmark machine's virtual disk), so callers that arrive while a
        commit is in progress are queued, and the next caller to take the
        connection runs all of their work in one transaction, each inside
        its own savepoint: one caller's error rolls back only its own work.
        Returns what ``work`` returns, or raises what it raised, once the
        commit is on disk.
        """
        item = _GroupedWrite(work)
        with self._queue_lock:
            self._queue.append(item)
        with self._lock:
            if not item.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_batch(batch)
        return item.outcome()

    def _commit_batch(self, batch: list[_GroupedWrite]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            transaction = _StateQueries(self._db)
            # An error at the end of the guard rolls back the whole batch.
            with self.group_guard():
                for item in batch:
                    self._db.execute("SAVEPOINT grouped_write")
                    try:
                        item.result = item.work(transaction)
                    except Exception as exc:
                        self._db.execute("ROLLBACK TO grouped_write")
                        item.error = _storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
                    self._db.execute("RELEASE grouped_write")
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            error = _storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
            for item in batch:
                if item.error is None:
                    item.error = error
            if isinstance(exc, sqlite3.Error):
                _raise_if_storage_error(exc)
            raise
        finally:
            for item in batch:
                item.done = True

    def check_writable(self) -> bool:
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()
        with self._queue_lock:
            readers, self._reader_connections = self._reader_connections, []
        for db in readers:
            db.close()


def open_store(config: Config) -> StateStore:
    """Open the state store the configuration names, migrating its schema to this daemon's."""
    if config.postgres is None:
        assert config.sqlite is not None
        return SqliteStore(config.sqlite)

    from niemphong.daemon.config import read_state_password
    from niemphong.daemon.store_postgres import PostgresStore

    return PostgresStore(
        config.postgres.conninfo,
        password=read_state_password(config.postgres),
        pool_size=config.postgres.pool_size,
    )


# SQLite primary result codes that mean the database file cannot be written
# or read back: SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL and SQLITE_CANTOPEN
# (https://www.sqlite.org/rescode.html). Extended codes keep these in the low byte.
_STORAGE_RESULT_CODES = frozenset({8, 10, 13, 14})


def _storage_error(exc: sqlite3.Error) -> Exception:
    """Return StateUnavailable for an error of the disk under the database, else ``exc`` itself."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None or code & 0xFF not in _STORAGE_RESULT_CODES:
        return exc
    name = getattr(exc, "sqlite_errorname", str(code))
    log.error("state database cannot be written: %s (%s)", exc, name)
    return StateUnavailable(f"the state database cannot be written: {exc} ({name})")


def _raise_if_storage_error(exc: sqlite3.Error) -> None:
    error = _storage_error(exc)
    if error is not exc:
        raise error from exc


class _GroupedWrite:
    """One caller's work in a grouped commit, and what came of it."""

    def __init__(self, work: Callable[[StateTransaction], Any]) -> None:
        self.work = work
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class _StateQueries(ArchiveQueries):
    """The queries of :class:`StateTransaction` on one open transaction of either backend."""

    def __init__(self, db: SqlConnection) -> None:
        self._db = db

    def insert_artefact(self, record: ArtefactRecord) -> None:
        self._insert("artefacts", record.__dict__)

    def get_artefact(self, artefact_id: str) -> ArtefactRecord | None:
        row = self._db.execute("SELECT * FROM artefacts WHERE artefact_id = ?", (artefact_id,)).fetchone()
        return ArtefactRecord(**row) if row else None

    def confirm_artefact(self, artefact_id: str, confirmed_at: int) -> bool:
        """Mark an artefact's envelope as written; False if it is abandoned or confirmed already."""
        cursor = self._db.execute(
            "UPDATE artefacts SET confirmed_at = ? "
            "WHERE artefact_id = ? AND confirmed_at IS NULL AND abandoned_at IS NULL",
            (confirmed_at, artefact_id),
        )
        return cursor.rowcount == 1

    def abandon_artefact(self, artefact_id: str, abandoned_at: int, reason: str) -> bool:
        """Mark an unconfirmed artefact abandoned; False if it is confirmed or abandoned already."""
        cursor = self._db.execute(
            "UPDATE artefacts SET abandoned_at = ?, abandon_reason = ? "
            "WHERE artefact_id = ? AND confirmed_at IS NULL AND abandoned_at IS NULL",
            (abandoned_at, reason, artefact_id),
        )
        return cursor.rowcount == 1

    def insert_request(self, record: RequestRecord) -> None:
        self._insert("requests", record.__dict__)

    def get_request(self, request_id: str) -> RequestRecord | None:
        row = self._db.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        return RequestRecord(**row) if row else None

    def list_requests(self, state: str, requester: str | None, limit: int) -> list[RequestRecord]:
        query = "SELECT * FROM requests WHERE state = ?"
        params: list[object] = [state]
        if requester is not None:
            query += " AND requester = ?"
            params.append(requester)
        query += " ORDER BY created_at, request_id LIMIT ?"
        params.append(limit)
        return [RequestRecord(**row) for row in self._db.execute(query, params)]

    def update_request(self, record: RequestRecord) -> None:
        self._db.execute(
            "UPDATE requests SET state = ?, decided_at = ?, denied_by = ?, deny_reason = ? WHERE request_id = ?",
            (record.state, record.decided_at, record.denied_by, record.deny_reason, record.request_id),
        )

    def insert_approval(self, record: ApprovalRecord) -> bool:
        cursor = self._db.execute(
            "INSERT INTO approvals (request_id, approver, approved_at, head) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (record.request_id, record.approver, record.approved_at, int(record.head)),
        )
        return cursor.rowcount == 1

    def list_approvals(self, request_id: str) -> list[ApprovalRecord]:
        rows = self._db.execute(
            "SELECT * FROM approvals WHERE request_id = ? ORDER BY approved_at, approver", (request_id,)
        )
        return [ApprovalRecord(**{**dict(row), "head": bool(row["head"])}) for row in rows]

    def insert_grant(self, record: GrantRecord) -> None:
        values = dict(record.__dict__)
        values["revoked"] = int(record.revoked)
        self._insert("grants", values)

    def get_grant(self, request_id: str) -> GrantRecord | None:
        row = self._db.execute("SELECT * FROM grants WHERE request_id = ?", (request_id,)).fetchone()
        return _grant(row) if row else None

    def list_grants(self, artefact_id: str, viewer: str) -> list[GrantRecord]:
        rows = self._db.execute(
            "SELECT * FROM grants WHERE artefact_id = ? AND viewer = ? ORDER BY created_at, request_id",
            (artefact_id, viewer),
        )
        return [_grant(row) for row in rows]

    def count_open(self, request_id: str) -> None:
        cursor = self._db.execute(
            "UPDATE grants SET opens_used = opens_used + 1 WHERE request_id = ? AND opens_used < opens_allowed",
            (request_id,),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"grant {request_id} has no open left to count")

    # Key registry ---------------------------------------------------------

    def list_key_versions(self, key_id: str | None = None) -> list[KeyVersionRecord]:
        if key_id is None:
            rows = self._db.execute("SELECT * FROM key_versions ORDER BY level DESC, key_id, version")
        else:
            rows = self._db.execute("SELECT * FROM key_versions WHERE key_id = ? ORDER BY version", (key_id,))
        return [KeyVersionRecord(**row) for row in rows]

    def insert_key_version(self, record: KeyVersionRecord) -> None:
        self._insert("key_versions", record.__dict__)

    def set_key_state(self, key_id: str, version: int, state: str, now: int) -> None:
        cursor = self._db.execute(
            "UPDATE key_versions SET state = ?, state_changed_at = ? WHERE key_id = ? AND version = ?",
            (state, now, key_id, version),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"key {key_id} v{version} is not in the registry")

    def count_artefacts_by_key(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute(
            "SELECT key_id, key_version, COUNT(*) AS artefacts FROM artefacts GROUP BY key_id, key_version"
        )
        return {(row["key_id"], row["key_version"]): row["artefacts"] for row in rows}

    def count_artefacts_without_recovery(self, level: int, key_id: str, version: int) -> int:
        row = self._db.execute(
            # COALESCE rather than SQLite's "IS ?", which PostgreSQL lacks; key ids
            # are never empty and versions start at 1, so no real slot matches the fallbacks.
            "SELECT COUNT(*) FROM artefacts WHERE level = ? "
            "AND NOT (COALESCE(recovery_key_id, '') = ? AND COALESCE(recovery_key_version, 0) = ?)",
            (level, key_id, version),
        ).fetchone()
        return int(row[0])

    def update_artefact_keys(self, artefact_id: str, keys: ArtefactKeys, core_sha256: str) -> None:
        cursor = self._db.execute(
            "UPDATE artefacts SET key_id = ?, key_version = ?, wrap_algorithm = ?, recovery_key_id = ?, "
            "recovery_key_version = ?, core_sha256 = ? WHERE artefact_id = ?",
            (
                keys.key_id, keys.key_version, keys.wrap_algorithm, keys.recovery_key_id,
                keys.recovery_key_version, core_sha256, artefact_id,
            ),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"artefact {artefact_id} is not in the registry")

    def insert_key_change(self, record: KeyChangeRecord) -> None:
        self._insert("key_changes", record.__dict__)

    def get_key_change(self, change_id: str) -> KeyChangeRecord | None:
        row = self._db.execute("SELECT * FROM key_changes WHERE change_id = ?", (change_id,)).fetchone()
        return KeyChangeRecord(**row) if row else None

    def list_key_changes(self, state: str, limit: int) -> list[KeyChangeRecord]:
        rows = self._db.execute(
            "SELECT * FROM key_changes WHERE state = ? ORDER BY created_at, change_id LIMIT ?", (state, limit)
        )
        return [KeyChangeRecord(**row) for row in rows]

    def update_key_change(self, record: KeyChangeRecord) -> None:
        self._db.execute(
            "UPDATE key_changes SET state = ?, version = ?, decided_at = ?, rejected_by = ?, reject_reason = ? "
            "WHERE change_id = ?",
            (record.state, record.version, record.decided_at, record.rejected_by, record.reject_reason, record.change_id),
        )

    def insert_key_confirmation(self, record: KeyConfirmationRecord) -> bool:
        cursor = self._db.execute(
            "INSERT INTO key_confirmations (change_id, custodian, confirmed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (record.change_id, record.custodian, record.confirmed_at),
        )
        return cursor.rowcount == 1

    def list_key_confirmations(self, change_id: str) -> list[KeyConfirmationRecord]:
        rows = self._db.execute(
            "SELECT * FROM key_confirmations WHERE change_id = ? ORDER BY confirmed_at, custodian", (change_id,)
        )
        return [KeyConfirmationRecord(**row) for row in rows]

    def level_counts(self, now: int) -> list[LevelCounts]:
        """Count pending requests and usable grants per level; levels with neither are left out."""
        counts: dict[int, list[int | None]] = {}
        pending_rows = self._db.execute(
            "SELECT a.level, COUNT(*), MIN(r.created_at) FROM requests r "
            "JOIN artefacts a ON a.artefact_id = r.artefact_id WHERE r.state = 'pending' GROUP BY a.level"
        )
        for level, pending, oldest in pending_rows:
            counts[level] = [pending, oldest, 0]
        grant_rows = self._db.execute(
            "SELECT a.level, COUNT(*) FROM grants g JOIN artefacts a ON a.artefact_id = g.artefact_id "
            "WHERE g.revoked = 0 AND g.expires_at > ? AND g.opens_used < g.opens_allowed GROUP BY a.level",
            (now,),
        )
        for level, active in grant_rows:
            counts.setdefault(level, [0, None, 0])[2] = active
        return [
            LevelCounts(level, int(pending or 0), oldest, int(active or 0))
            for level, (pending, oldest, active) in sorted(counts.items())
        ]

    def first_seal_times(self) -> dict[tuple[str, int], int]:
        """Return the time of the first seal under each (key id, version) in the registry."""
        rows = self._db.execute("SELECT key_id, key_version, MIN(sealed_at) FROM artefacts GROUP BY key_id, key_version")
        return {(key_id, version): first for key_id, version, first in rows}

    # Classification records -----------------------------------------------

    def insert_classification(self, record: ClassificationRecord) -> None:
        values = dict(record.__dict__)
        values["stamp_required"] = int(record.stamp_required)
        self._insert("classifications", values)

    def get_classification(self, artefact_id: str) -> ClassificationRecord | None:
        row = self._db.execute("SELECT * FROM classifications WHERE artefact_id = ?", (artefact_id,)).fetchone()
        return _classification(row) if row else None

    def get_classification_record(self, record_id: str) -> ClassificationRecord | None:
        row = self._db.execute("SELECT * FROM classifications WHERE record_id = ?", (record_id,)).fetchone()
        return _classification(row) if row else None

    def list_sealed_due(self, until: str, limit: int) -> list[ClassificationRecord]:
        # ISO dates compare correctly as text.
        rows = self._db.execute(
            "SELECT * FROM classifications WHERE outcome = 'seal' AND protected_until <= ? "
            "ORDER BY protected_until, record_id LIMIT ?",
            (until, limit),
        )
        return [_classification(row) for row in rows]

    def list_unclassified_artefacts(self, limit: int) -> list[ArtefactRecord]:
        rows = self._db.execute(
            "SELECT a.* FROM artefacts a LEFT JOIN classifications c ON c.artefact_id = a.artefact_id "
            "WHERE c.record_id IS NULL ORDER BY a.issued_on, a.artefact_id LIMIT ?",
            (limit,),
        )
        return [ArtefactRecord(**row) for row in rows]

    def record_extension(self, record: ExtensionRecord) -> None:
        self._insert("extensions", record.__dict__)
        cursor = self._db.execute(
            "UPDATE classifications SET protected_until = ?, protection_source = 'extension', "
            "extension_decision = ? WHERE artefact_id = ?",
            (record.ends_on, record.decision, record.artefact_id),
        )
        if cursor.rowcount != 1:
            raise RuntimeError(f"artefact {record.artefact_id} has no classification record to extend")

    def _insert(self, table: str, values: dict[str, object]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self._db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(values.values()))


def _classification(row: Any) -> ClassificationRecord:
    values = dict(row)
    values["stamp_required"] = bool(values["stamp_required"])
    return ClassificationRecord(**values)


def _grant(row: Any) -> GrantRecord:
    values = dict(row)
    values["revoked"] = bool(values["revoked"])
    return GrantRecord(**values)
