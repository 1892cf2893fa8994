"""The SQLite state store's files are private whatever the umask of the process that creates them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from niemphong.daemon.store import ArtefactRecord, SqliteStore


def artefact(artefact_id: str) -> ArtefactRecord:
    return ArtefactRecord(
        artefact_id=artefact_id, level=1, doc_number="12/BB-TCT", issued_on="2024-11-02", title="", source_name="",
        key_id="niemphong-mat", key_version=1, wrap_algorithm="AES-KWP", plaintext_bytes=10, envelope_bytes=100,
        envelope_sha256="0" * 64, sealed_by="scanner", sealed_at=1_700_000_000,
    )


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
