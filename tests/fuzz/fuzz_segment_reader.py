"""Fuzz the segment reader: a verified header followed by arbitrary body bytes.

Only IntegrityError may escape, and plaintext returned by the opener must be
a prefix of what the matching envelope holds when the body is unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_envelope_header import sample_envelope  # noqa: E402
from harness import fuzz, instrumented_imports  # noqa: E402

with instrumented_imports():
    from niemphong.daemon import envelope

NAME = "segment_reader"

PLAINTEXT = bytes(range(256)) * 40
ENVELOPE, DEK = sample_envelope(PLAINTEXT, segment_size=4096)
HEADER = envelope.parse_header(ENVELOPE)
BODY = ENVELOPE[HEADER.header_len:]


def seeds() -> Iterator[bytes]:
    yield b"\x00" + BODY
    yield b"\x05" + BODY[:4096 + 16]
    yield b"\x01" + BODY[::-1]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    # The first byte picks the chunk size fed to update(), so that segment
    # boundaries fall anywhere in a chunk.
    chunk = 1 + data[0] * 97
    body = data[1:]
    opener = envelope.Opener(HEADER, DEK)
    plaintext = bytearray()
    try:
        for start in range(0, len(body), chunk):
            plaintext += opener.update(body[start:start + chunk])
        plaintext += opener.finalize()
    except envelope.IntegrityError:
        # Verified segments released before the failure are a true prefix.
        assert PLAINTEXT.startswith(bytes(plaintext))
        return
    assert body == BODY, "a changed body opened"
    assert bytes(plaintext) == PLAINTEXT


if __name__ == "__main__":
    fuzz(NAME, test_one_input, seeds)
