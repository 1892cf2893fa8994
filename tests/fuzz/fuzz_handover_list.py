"""Fuzz the handover list (CSV) reader of the client: only ClientError may escape."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fuzz, instrumented_imports  # noqa: E402

with instrumented_imports():
    from niemphong.clients.errors import ClientError
    from niemphong.clients.manifest import read_manifest

NAME = "handover_list"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "danh-muc-mau.csv"
_FOLDER = Path(tempfile.mkdtemp(prefix="fuzz-handover-"))
_PATH = _FOLDER / "list.csv"


def seeds() -> Iterator[bytes]:
    yield b"\x00" + SAMPLE.read_bytes()
    yield b"\x01" + SAMPLE.read_bytes()
    yield b"\x00" + "\ufeffSTT;Số tài liệu;Ngày ban hành;Độ mật;Căn cứ\n1;12/UBND;01/02/2020;Mật;Điều 1 Quyết định 1722/QĐ-TTg\n".encode()


def test_one_input(data: bytes) -> None:
    # The first byte picks the plain reading or the batch reading, which
    # also requires the sheets, pages and scan file of each row.
    if not data:
        return
    _PATH.write_bytes(data[1:])
    try:
        manifest = read_manifest(_PATH, batch=bool(data[0] & 1))
    except ClientError:
        return
    for row in manifest.rows:
        # A row is either a document to decide or a problem, never both or neither.
        assert (row.document is None) != (row.problem is None)


if __name__ == "__main__":
    try:
        fuzz(NAME, test_one_input, seeds)
    finally:
        os.unlink(_PATH) if _PATH.exists() else None
