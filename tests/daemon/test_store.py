"""write_grouped on both state backends: concurrent writes that share a commit."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import StoreFactory

from niemphong.daemon.store import READER_CONNECTIONS, ArtefactRecord, KeyVersionRecord, SqliteStore, StateTransaction


def artefact(artefact_id: str) -> ArtefactRecord:
    return ArtefactRecord(
        artefact_id=artefact_id, level=1, doc_number="12/BB-TCT", issued_on="2024-11-02", title="", source_name="",
        key_id="niemphong-mat", key_version=1, wrap_algorithm="AES-KWP", plaintext_bytes=10, envelope_bytes=100,
        envelope_sha256="0" * 64, sealed_by="scanner", sealed_at=1_700_000_000,
    )


def stored_ids(factory: StoreFactory, candidates: list[str]) -> set[str]:
    # A second store has its own connection, so it sees only what was committed.
    store = factory.open()
    with store.transaction() as tx:
        return {artefact_id for artefact_id in candidates if tx.get_artefact(artefact_id) is not None}


def test_write_grouped_returns_result(store_factory: StoreFactory) -> None:
    store = store_factory.open()

    def insert(tx: StateTransaction) -> str:
        tx.insert_artefact(artefact("a" * 32))
        return "inserted"

    assert store.write_grouped(insert) == "inserted"
    assert stored_ids(store_factory, ["a" * 32]) == {"a" * 32}


def test_write_grouped_concurrent_all_committed(store_factory: StoreFactory) -> None:
    store = store_factory.open()
    ids = [f"{index:032x}" for index in range(64)]

    def insert(artefact_id: str) -> None:
        store.write_grouped(lambda tx: tx.insert_artefact(artefact(artefact_id)))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(insert, ids))

    assert stored_ids(store_factory, ids) == set(ids)


def test_write_grouped_failure_rolls_back_only_its_work(store_factory: StoreFactory) -> None:
    store = store_factory.open()
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
        with pytest.raises(store_factory.integrity_error):
            bad.result(10)

    candidates = [letter * 32 for letter in "abcd"]
    assert stored_ids(store_factory, candidates) == {"a" * 32, "b" * 32, "d" * 32}


def test_write_grouped_after_failure_usable(store_factory: StoreFactory) -> None:
    store = store_factory.open()

    def fail(tx: StateTransaction) -> None:
        tx.insert_artefact(artefact("a" * 32))
        raise ValueError("rejected")

    with pytest.raises(ValueError, match="rejected"):
        store.write_grouped(fail)
    store.write_grouped(lambda tx: tx.insert_artefact(artefact("b" * 32)))
    with store.transaction() as tx:
        assert tx.get_artefact("b" * 32) is not None

    assert stored_ids(store_factory, ["a" * 32, "b" * 32]) == {"b" * 32}


def test_reading_sees_committed_rows_and_rejects_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite")
    with store.transaction() as tx:
        tx.insert_key_version(KeyVersionRecord("niemphong-mat", 1, 2, "active", 100, 100))

    with store.reading() as tx:
        versions = [record.version for record in tx.list_key_versions("niemphong-mat")]
    with pytest.raises(sqlite3.OperationalError):
        with store.reading() as tx:
            tx.insert_key_version(KeyVersionRecord("niemphong-mat", 2, 2, "active", 200, 200))
    store.close()

    assert versions == [1]


def test_reading_from_many_threads_shares_few_connections(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                with store.reading() as tx:
                    tx.list_key_versions("niemphong-mat")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connections = len(store._reader_connections)
    store.close()

    assert errors == []
    assert connections == READER_CONNECTIONS


def test_write_grouped_guard_failure_rolls_back_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite")

    @contextlib.contextmanager
    def failing_guard() -> Iterator[None]:
        yield
        raise RuntimeError("the batch's audit records are not durable")

    store.group_guard = failing_guard
    with pytest.raises(RuntimeError):
        store.write_grouped(lambda tx: tx.insert_artefact(artefact("a" * 32)))
    store.group_guard = contextlib.nullcontext
    with store.transaction() as tx:
        stored = tx.get_artefact("a" * 32)
    store.close()

    assert stored is None
