"""Fuzz the envelope preamble and header parser: only IntegrityError may escape."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fuzz, instrumented_imports  # noqa: E402

with instrumented_imports():
    from niemphong.daemon import envelope

NAME = "envelope_header"


def sample_envelope(plaintext: bytes = b"fuzz seed document" * 50, segment_size: int = 4096) -> tuple[bytes, bytes]:
    """Seal ``plaintext`` with a fixed data key; return the envelope and the key."""
    dek = bytes(range(32))
    sealer = envelope.Sealer(
        dek, artefact_id=bytes(range(16)), level=envelope.LEVEL_TOI_MAT,
        metadata={"doc_number": "12/UBND-VP", "issued_on": "2025-05-20", "title": "Kế hoạch"},
        slots=[envelope.KeySlot("niemphong-toi-mat", 1, "AES-KWP", bytes(40)),
               envelope.KeySlot("niemphong-toi-mat", 2, "AES-KW", bytes(40))],
        sealed_at=1_750_000_000, segment_size=segment_size, nonce_prefix=bytes(7),
    )
    return sealer.header_bytes + sealer.update(plaintext) + sealer.finalize(), dek


def seeds() -> Iterator[bytes]:
    data, _ = sample_envelope()
    yield data
    yield data[:envelope.PREAMBLE_LEN]
    yield envelope.MAGIC


def test_one_input(data: bytes) -> None:
    try:
        header = envelope.parse_header(data)
    except envelope.IntegrityError:
        header = None
    if header is not None:
        # Whatever parses must re-parse to the same header from its own bytes.
        assert envelope.parse_header(header.header_bytes).header_bytes == header.header_bytes
        assert header.header_len == envelope.read_header_length(data)

    reader = envelope.HeaderReader()
    try:
        for start in range(0, len(data), 7):
            if reader.feed(data[start:start + 7]) is not None:
                break
        else:
            reader.finish()
    except envelope.IntegrityError:
        pass


if __name__ == "__main__":
    fuzz(NAME, test_one_input, seeds)
