"""Sealing and opening whole files on worker threads gives the bytes of the streaming Sealer."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from pathlib import Path

import pytest

from niemphong.daemon import envelope, envelope_file
from niemphong.daemon.envelope import KeySlot

SEGMENT = 4096
DEK = bytes(range(32))
SLOT = KeySlot("niemphong-mat", 1, "AES-KWP", b"\x01" * 40)


def new_sealer() -> envelope.Sealer:
    return envelope.Sealer(
        DEK, artefact_id=b"\x07" * 16, level=envelope.LEVEL_MAT, metadata={"doc_number": "12/UBND"},
        slots=[SLOT], sealed_at=1_750_000_000, segment_size=SEGMENT, nonce_prefix=b"\x01" * 7,
    )


def streamed(plaintext: bytes) -> bytes:
    sealer = new_sealer()
    return sealer.header_bytes + sealer.update(plaintext) + sealer.finalize()


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three segments per block, so that small files span several blocks.
    monkeypatch.setattr(envelope_file, "BLOCK_BYTES", 3 * SEGMENT)


def seal_to_file(tmp_path: Path, plaintext: bytes, executor: ThreadPoolExecutor) -> tuple[bytes, envelope_file.FileResult]:
    source = tmp_path / "scan.pdf"
    source.write_bytes(plaintext)
    target = tmp_path / "scan.pdf.npe"
    with source.open("rb") as reader, target.open("wb") as writer:
        result = envelope_file.seal_file(
            new_sealer(), reader.fileno(), len(plaintext), writer.fileno(), executor=executor, workers=2,
        )
    return target.read_bytes(), result


@pytest.mark.parametrize(
    "size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 1, 10 * SEGMENT + 123],
)
def test_seal_file_matches_streamed_sealer(
    tmp_path: Path, executor: ThreadPoolExecutor, small_blocks: None, size: int,
) -> None:
    plaintext = os.urandom(size)

    sealed, result = seal_to_file(tmp_path, plaintext, executor)

    assert sealed == streamed(plaintext)
    assert result.plaintext_bytes == size
    assert result.envelope_bytes == len(sealed)
    assert result.envelope_sha256 == hashlib.sha256(sealed).hexdigest()


def test_seal_file_source_shorter_than_size_rejected(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    source = tmp_path / "scan.pdf"
    source.write_bytes(b"x" * 100)

    with source.open("rb") as reader, (tmp_path / "out").open("wb") as writer:
        with pytest.raises(envelope_file.SourceChanged):
            envelope_file.seal_file(new_sealer(), reader.fileno(), 200, writer.fileno(), executor=executor, workers=2)


def open_from_file(tmp_path: Path, sealed: bytes, executor: ThreadPoolExecutor) -> bytes:
    source = tmp_path / "in.npe"
    source.write_bytes(sealed)
    target = tmp_path / "opened"
    opener = envelope.Opener(envelope.parse_header(sealed), DEK)
    with source.open("rb") as reader, target.open("wb") as writer:
        length = envelope_file.open_file(opener, reader.fileno(), len(sealed), writer.fileno(), executor=executor, workers=2)
    opened = target.read_bytes()
    assert length == len(opened)
    return opened


@pytest.mark.parametrize("size", [0, 1, SEGMENT, 3 * SEGMENT, 10 * SEGMENT + 123])
def test_open_file_round_trip(tmp_path: Path, executor: ThreadPoolExecutor, small_blocks: None, size: int) -> None:
    plaintext = os.urandom(size)

    assert open_from_file(tmp_path, streamed(plaintext), executor) == plaintext


def test_open_file_altered_segment_rejected(tmp_path: Path, executor: ThreadPoolExecutor, small_blocks: None) -> None:
    sealed = bytearray(streamed(os.urandom(8 * SEGMENT)))
    sealed[-3 * SEGMENT] ^= 1

    with pytest.raises(envelope.IntegrityError):
        open_from_file(tmp_path, bytes(sealed), executor)


def test_open_file_truncated_at_segment_rejected(tmp_path: Path, executor: ThreadPoolExecutor, small_blocks: None) -> None:
    sealed = streamed(os.urandom(8 * SEGMENT))

    # Dropping the last segment leaves a valid length, but the new last one is not flagged last.
    with pytest.raises(envelope.IntegrityError):
        open_from_file(tmp_path, sealed[: -(SEGMENT + envelope.TAG_LEN)], executor)


def test_open_file_invalid_length_rejected(tmp_path: Path, executor: ThreadPoolExecutor) -> None:
    sealed = streamed(os.urandom(2 * SEGMENT))

    with pytest.raises(envelope.IntegrityError):
        open_from_file(tmp_path, sealed[:-(SEGMENT + 8)], executor)


def test_segment_cipher_only_from_unused_sealer() -> None:
    sealer = new_sealer()
    sealer.update(b"x" * (2 * SEGMENT))

    with pytest.raises(ValueError):
        sealer.take_segment_cipher()


def test_sealer_after_segment_cipher_rejects_update() -> None:
    sealer = new_sealer()
    sealer.take_segment_cipher()

    with pytest.raises(ValueError):
        sealer.update(b"x")


def test_segment_cipher_without_into_methods_same_bytes(
    tmp_path: Path, executor: ThreadPoolExecutor, small_blocks: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Releases of cryptography without encrypt_into take the copying path.
    monkeypatch.setattr(envelope, "_HAVE_INTO", False)
    plaintext = os.urandom(5 * SEGMENT + 7)

    sealed, _ = seal_to_file(tmp_path, plaintext, executor)

    assert sealed == streamed(plaintext)
    assert open_from_file(tmp_path, sealed, executor) == plaintext
