"""The state store upgrades a schema 1 database in place and keeps its data; migrations on PostgreSQL."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from niemphong.daemon.store import SCHEMA_VERSION, ArtefactKeys, KeyVersionRecord, SqliteStore

# The schema 1 tables as the first release created them.
SCHEMA_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE artefacts (
    artefact_id TEXT PRIMARY KEY, level INTEGER NOT NULL, doc_number TEXT NOT NULL, issued_on TEXT NOT NULL,
    title TEXT NOT NULL, source_name TEXT NOT NULL, key_id TEXT NOT NULL, key_version INTEGER NOT NULL,
    wrap_algorithm TEXT NOT NULL, plaintext_bytes INTEGER NOT NULL, envelope_bytes INTEGER NOT NULL,
    envelope_sha256 TEXT NOT NULL, sealed_by TEXT NOT NULL, sealed_at INTEGER NOT NULL
);
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY, artefact_id TEXT NOT NULL REFERENCES artefacts (artefact_id),
    requester TEXT NOT NULL, purpose TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
    approvals_required INTEGER NOT NULL CHECK (approvals_required >= 1), created_at INTEGER NOT NULL,
    decided_at INTEGER, denied_by TEXT, deny_reason TEXT
);
CREATE INDEX requests_by_state ON requests (state, created_at);
CREATE TABLE approvals (
    request_id TEXT NOT NULL REFERENCES requests (request_id), approver TEXT NOT NULL,
    approved_at INTEGER NOT NULL, PRIMARY KEY (request_id, approver)
);
CREATE TABLE grants (
    request_id TEXT PRIMARY KEY REFERENCES requests (request_id),
    artefact_id TEXT NOT NULL REFERENCES artefacts (artefact_id), viewer TEXT NOT NULL,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    opens_allowed INTEGER NOT NULL CHECK (opens_allowed >= 1),
    opens_used INTEGER NOT NULL DEFAULT 0 CHECK (opens_used <= opens_allowed), revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX grants_by_viewer ON grants (artefact_id, viewer);
INSERT INTO artefacts VALUES ('a' || hex(zeroblob(15)), 1, '12/UBND', '2024-01-02', '', 'scan.pdf',
    'niemphong-mat', 1, 'AES-KWP', 10, 200, 'ff', 'scanner', 1700000000);
"""


def schema_1_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    db.close()


def test_store_upgrades_schema_1_keeping_artefacts(tmp_path: Path) -> None:
    path = tmp_path / "np.db"
    schema_1_database(path)

    store = SqliteStore(path)
    with store.transaction() as tx:
        artefact_id = "a" + "00" * 15
        artefact = tx.get_artefact(artefact_id)
        tx.insert_key_version(KeyVersionRecord("niemphong-mat", 1, 1, "active", 1, 1))
        tx.update_artefact_keys(artefact_id, ArtefactKeys("niemphong-mat", 1, "AES-KWP", "r", 1), "cd" * 32)
        updated = tx.get_artefact(artefact_id)
    store.close()

    assert artefact is not None
    assert artefact.doc_number == "12/UBND"
    assert artefact.core_sha256 is None
    assert updated is not None
    assert updated.recovery_key_id == "r"
    version = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 3


def test_store_reopens_upgraded_database(tmp_path: Path) -> None:
    path = tmp_path / "np.db"
    schema_1_database(path)
    SqliteStore(path).close()

    store = SqliteStore(path)
    with store.transaction() as tx:
        assert tx.list_key_versions() == []
    store.close()


def test_store_newer_schema_rejected(tmp_path: Path) -> None:
    path = tmp_path / "np.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()

    with pytest.raises(RuntimeError, match="upgrade the daemon"):
        SqliteStore(path)


def test_store_allows_one_active_version_per_key(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "np.db")

    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as tx:
            tx.insert_key_version(KeyVersionRecord("niemphong-mat", 1, 1, "active", 1, 1))
            tx.insert_key_version(KeyVersionRecord("niemphong-mat", 2, 1, "active", 2, 2))
    store.close()


def test_postgres_concurrent_migration_once(pg_cluster: Any) -> None:
    # Daemons that start together on an empty database: one migrates, the others find nothing to do.
    from niemphong.daemon.store_postgres import PostgresStore

    conninfo = pg_cluster.create_database()
    barrier = threading.Barrier(4)

    def open_store() -> PostgresStore:
        barrier.wait(10)
        return PostgresStore(conninfo)

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: open_store(), range(4)))
    with stores[0].transaction() as tx:
        tx.insert_key_version(KeyVersionRecord("niemphong-mat", 1, 1, "active", 1, 1))
    with stores[3].transaction() as tx:
        versions = tx.list_key_versions()
    for store in stores:
        store.close()

    assert [record.version for record in versions] == [1]
    with psycopg.connect(conninfo) as connection:
        rows = connection.execute("SELECT version FROM schema_version").fetchall()
    assert rows == [(SCHEMA_VERSION,)]


def test_postgres_migrate_again_keeps_data(pg_cluster: Any) -> None:
    from niemphong.daemon.store_postgres import PostgresStore

    store = PostgresStore(pg_cluster.create_database())
    with store.transaction() as tx:
        tx.insert_key_version(KeyVersionRecord("niemphong-mat", 1, 1, "active", 1, 1))

    assert store.migrate() == SCHEMA_VERSION
    with store.transaction() as tx:
        assert len(tx.list_key_versions()) == 1
    store.close()


def test_postgres_newer_schema_rejected(pg_cluster: Any) -> None:
    from niemphong.daemon.store_postgres import PostgresStore

    conninfo = pg_cluster.create_database()
    PostgresStore(conninfo).close()
    with psycopg.connect(conninfo) as connection:
        connection.execute("UPDATE schema_version SET version = 99")

    with pytest.raises(RuntimeError, match="upgrade the daemon"):
        PostgresStore(conninfo)


def test_migrate_command_on_postgres(pg_cluster: Any, tmp_path: Path) -> None:
    from conftest import BIN, dev_init

    env = dev_init(tmp_path / "env", "--postgres", pg_cluster.create_database())

    result = subprocess.run(
        [str(BIN / "niemphongd"), "migrate", "--config", str(env.root / "niemphongd.toml")],
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"state database at schema {SCHEMA_VERSION}"


def test_postgres_unreachable_state_unavailable(tmp_path: Path) -> None:
    from niemphong.daemon.errors import ServiceError
    from niemphong.daemon.store_postgres import PostgresStore

    # A socket folder with no server in it.
    with pytest.raises(ServiceError) as excinfo:
        PostgresStore(f"host={tmp_path} port=5432 user=postgres dbname=np", connect_timeout=1)

    assert excinfo.value.reason == "STATE_UNAVAILABLE"
    assert str(tmp_path) in excinfo.value.message
