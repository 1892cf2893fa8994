"""SqliteStore.write_grouped: concurrent writes that share a commit."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from niemphong.daemon.store import ArtefactRecord, SqliteStore, StateTransaction


def artefact(artefact_id: str) -> ArtefactRecord:
    return ArtefactRecord(
        artefact_id=artefact_id, level=1, doc_number="12/BB-TCT", issued_on="2024-11-02", title="", source_name="",
        key_id="niemphong-mat", key_version=1, wrap_algorithm="AES-KWP", plaintext_bytes=10, envelope_bytes=100,
        envelope_sha256="0" * 64, sealed_by="scanner", sealed_at=1_700_000_000,
    )


def stored_ids(path: Path) -> set[str]:
    # A second connection sees only what was committed.
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT artefact_id FROM artefacts")}


def test_write_grouped_returns_result(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")

    def insert(tx: StateTransaction) -> str:
        tx.insert_artefact(artefact("a" * 32))
        return "inserted"

    assert store.write_grouped(insert) == "inserted"
    assert stored_ids(tmp_path / "state.db") == {"a" * 32}
    store.close()


def test_write_grouped_concurrent_all_committed(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    ids = [f"{index:032x}" for index in range(64)]

    def insert(artefact_id: str) -> None:
        store.write_grouped(lambda tx: tx.insert_artefact(artefact(artefact_id)))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(insert, ids))

    assert stored_ids(tmp_path / "state.db") == set(ids)
    store.close()


def test_write_grouped_failure_rolls_back_only_its_work(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.write_grouped(lambda tx: tx.insert_artefact(artefact("a" * 32)))
    # Hold the connection so that the next three writes queue up and share one commit.
    release = threading.Event()
    holding = threading.Event()

    def hold(tx: StateTransaction) -> None:
        holding.set()
        release.wait(10)

    def duplicate_then_fail(tx: StateTransaction) -> None:
        tx.insert_artefact(artefact("c" * 32))
        tx.insert_artefact(artefact("a" * 32))

    with ThreadPoolExecutor(4) as pool:
        holder = pool.submit(store.write_grouped, hold)
        assert holding.wait(10)
        good_before = pool.submit(store.write_grouped, lambda tx: tx.insert_artefact(artefact("b" * 32)))
        bad = pool.submit(store.write_grouped, duplicate_then_fail)
        good_after = pool.submit(store.write_grouped, lambda tx: tx.insert_artefact(artefact("d" * 32)))
        deadline = time.monotonic() + 10
        while len(store._queue) < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert len(store._queue) == 3
        release.set()
        holder.result(10)
        good_before.result(10)
        good_after.result(10)
        with pytest.raises(sqlite3.IntegrityError):
            bad.result(10)

    assert stored_ids(tmp_path / "state.db") == {"a" * 32, "b" * 32, "d" * 32}
    store.close()


def test_write_grouped_after_failure_usable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")

    def fail(tx: StateTransaction) -> None:
        tx.insert_artefact(artefact("a" * 32))
        raise ValueError("rejected")

    with pytest.raises(ValueError, match="rejected"):
        store.write_grouped(fail)
    store.write_grouped(lambda tx: tx.insert_artefact(artefact("b" * 32)))
    with store.transaction() as tx:
        assert tx.get_artefact("b" * 32) is not None

    assert stored_ids(tmp_path / "state.db") == {"b" * 32}
    store.close()


def test_store_files_private_under_open_umask(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    previous = os.umask(0o022)
    try:
        store = SqliteStore(path)
        store.write_grouped(lambda tx: tx.insert_artefact(artefact("b" * 32)))
    finally:
        os.umask(previous)

    modes = {name: stat.S_IMODE(os.stat(tmp_path / name).st_mode) for name in ("state.db", "state.db-wal", "state.db-shm")}
    store.close()

    assert modes == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}


def test_store_narrows_existing_readable_files(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    path.chmod(0o644)

    store = SqliteStore(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    store.close()

    assert mode == 0o600
