"""Tests of niemphong.daemon.envelope against docs/format.md.

The second half of this file is an independent encoder and decoder written
from docs/format.md with ``cryptography`` primitives only. It checks that the
specification alone is enough to open what the module seals, and it builds
headers that are malformed on purpose but carry a valid tag, so that a parser
check (not the tag) is what rejects them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import tracemalloc
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from niemphong.daemon import envelope
from niemphong.daemon.envelope import (
    DEFAULT_SEGMENT_SIZE,
    LEVEL_MAT,
    LEVEL_TOI_MAT,
    MAGIC,
    PREAMBLE_LEN,
    TAG_LEN,
    Header,
    HeaderReader,
    IntegrityError,
    KeySlot,
    Opener,
    Sealer,
    canonical_metadata,
    parse_header,
    plaintext_length,
    read_header_length,
    rewrap_header,
)

MIB = 1024 * 1024
SEGMENT = 4096
SEGMENT_LEN = SEGMENT + TAG_LEN
INTEGRITY_MESSAGE = "envelope failed integrity check"

VECTORS = json.loads((Path(__file__).parent / "vectors" / "envelope_v1.json").read_text(encoding="utf-8"))[
    "vectors"
]

DEK = bytes.fromhex("5d1c6f0e8a3b47c2915e0d7a6b4f38c1e2a09d7b5c4e3f2a1b0c9d8e7f6a5b4c")
OTHER_DEK = bytes(range(100, 132))
ARTEFACT_ID = bytes.fromhex("3f9a6c1e0b7d4e25a8c3f1d0e9b2a774")
OTHER_ARTEFACT_ID = bytes(range(16))
NONCE_PREFIX = bytes.fromhex("a1b2c3d4e5f607")
SEALED_AT = 1773532800
WRAPPED_KEY = bytes(range(0x40, 0x68))
METADATA = {
    "doc_number": "12/BB-TCT",
    "issued_on": "2026-03-15",
    "title": "Biên bản họp",
    "source_name": "bien-ban-hop-12.pdf",
}
SLOT = KeySlot("niemphong-toi-mat", 1, "AES-KWP", WRAPPED_KEY)


def make_plaintext(length: int) -> bytes:
    """Deterministic bytes whose 4096-byte segments all differ, so reordering shows."""
    return bytes((i * 31 + 7) % 251 for i in range(length))


def make_sealer(
    dek: bytes = DEK,
    *,
    artefact_id: bytes = ARTEFACT_ID,
    segment_size: int = SEGMENT,
    metadata: Mapping[str, str] = METADATA,
    slots: Sequence[KeySlot] = (SLOT,),
    **overrides: Any,
) -> Sealer:
    return Sealer(
        dek,
        artefact_id=artefact_id,
        level=overrides.pop("level", LEVEL_TOI_MAT),
        metadata=metadata,
        slots=slots,
        sealed_at=overrides.pop("sealed_at", SEALED_AT),
        segment_size=segment_size,
        nonce_prefix=overrides.pop("nonce_prefix", NONCE_PREFIX),
        **overrides,
    )


def seal(plaintext: bytes, *, chunk_size: int | None = None, **sealer_args: Any) -> bytes:
    """Seal ``plaintext``, feeding the sealer in chunks of ``chunk_size`` bytes."""
    sealer = make_sealer(**sealer_args)
    step = chunk_size or max(len(plaintext), 1)
    parts = [sealer.header_bytes]
    for start in range(0, len(plaintext), step):
        parts.append(sealer.update(plaintext[start : start + step]))
    parts.append(sealer.finalize())
    return b"".join(parts)


def open_and_collect(data: bytes, dek: bytes = DEK, chunk_size: int = 1000) -> tuple[bytes, IntegrityError | None]:
    """Stream ``data`` through HeaderReader and Opener.

    Returns:
        The plaintext that update() and finalize() released, and the
        IntegrityError that stopped the stream, or None if it opened.
    """
    released = bytearray()
    reader = HeaderReader()
    opener: Opener | None = None
    try:
        for start in range(0, len(data), chunk_size):
            chunk = data[start : start + chunk_size]
            if opener is None:
                result = reader.feed(chunk)
                if result is None:
                    continue
                header, chunk = result
                opener = Opener(header, dek)
            released += opener.update(chunk)

        reader.finish()
        assert opener is not None
        released += opener.finalize()
    except IntegrityError as error:
        return bytes(released), error
    return bytes(released), None


def open_envelope(data: bytes, dek: bytes = DEK, chunk_size: int = 1000) -> bytes:
    released, error = open_and_collect(data, dek, chunk_size)
    if error is not None:
        raise error
    return released


def assert_rejected_keeping_prefix(
    data: bytes, plaintext: bytes, damaged_segment: int, segment_size: int = SEGMENT
) -> None:
    """Check that opening fails and releases only whole segments before ``damaged_segment``."""
    released, error = open_and_collect(data)

    assert error is not None
    assert str(error) == INTEGRITY_MESSAGE
    assert len(released) % segment_size == 0
    assert len(released) <= damaged_segment * segment_size
    assert released == plaintext[: len(released)]


def split_envelope(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split an envelope with 4096-byte segments into its header and body segments."""
    header_len = read_header_length(data)
    body = data[header_len:]
    return data[:header_len], [body[start : start + SEGMENT_LEN] for start in range(0, len(body), SEGMENT_LEN)]


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= mask
    return bytes(changed)


# --- Round trips ----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT])
@pytest.mark.parametrize("chunk_size", [1, 7, 5000, None])
def test_round_trip_chunked(size: int, chunk_size: int | None) -> None:
    plaintext = make_plaintext(size)

    data = seal(plaintext, chunk_size=chunk_size)
    opened = open_envelope(data, chunk_size=chunk_size or len(data))

    assert opened == plaintext


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT])
def test_round_trip_body_length(size: int) -> None:
    data = seal(make_plaintext(size))
    header = parse_header(data)
    segment_count = max(1, -(-size // SEGMENT))

    assert len(data) == header.header_len + size + TAG_LEN * segment_count


def test_round_trip_default_segment_size() -> None:
    plaintext = make_plaintext(3 * DEFAULT_SEGMENT_SIZE + 123)

    data = seal(plaintext, segment_size=DEFAULT_SEGMENT_SIZE, chunk_size=50000)

    assert parse_header(data).segment_size == DEFAULT_SEGMENT_SIZE
    assert open_envelope(data, chunk_size=70000) == plaintext


def test_round_trip_level_mat() -> None:
    data = seal(b"abc", level=LEVEL_MAT)

    assert parse_header(data).level == LEVEL_MAT
    assert open_envelope(data) == b"abc"


def test_round_trip_several_slots() -> None:
    recovery = KeySlot("niemphong-recovery", 2, "RSA-OAEP-SHA256", bytes(256))
    slots = (SLOT, recovery) + tuple(KeySlot(f"extra-{n}", n + 1, "AES-KW", bytes([n]) * 40) for n in range(6))

    data = seal(b"abc", slots=slots)

    assert parse_header(data).slots == slots
    assert open_envelope(data) == b"abc"


def test_round_trip_empty_metadata() -> None:
    data = seal(b"abc", metadata={})

    assert parse_header(data).metadata == {}
    assert open_envelope(data) == b"abc"


def test_sealer_random_nonce_prefix_differs() -> None:
    first = make_sealer(nonce_prefix=None)
    second = make_sealer(nonce_prefix=None)

    assert parse_header(first.header_bytes).nonce_prefix != parse_header(second.header_bytes).nonce_prefix


def test_sealer_update_holds_back_last_segment() -> None:
    sealer = make_sealer()

    assert sealer.update(make_plaintext(SEGMENT)) == b""
    assert len(sealer.update(b"x")) == SEGMENT_LEN
    assert len(sealer.finalize()) == 1 + TAG_LEN


def test_opener_update_holds_back_last_segment() -> None:
    data = seal(make_plaintext(2 * SEGMENT))
    header = parse_header(data)
    body = data[header.header_len :]
    opener = Opener(header, DEK)

    assert opener.update(body[:SEGMENT_LEN]) == b""
    assert len(opener.update(body[SEGMENT_LEN : SEGMENT_LEN + 1])) == SEGMENT
    assert opener.update(body[SEGMENT_LEN + 1 :]) == b""
    assert len(opener.finalize()) == SEGMENT


def test_parse_header_fields_match_inputs() -> None:
    data = seal(b"abc")

    header = parse_header(data + b"ignored trailing bytes")

    assert header.artefact_id == ARTEFACT_ID
    assert header.level == LEVEL_TOI_MAT
    assert header.aead == envelope.AEAD_HOST_AES256GCM
    assert header.segment_size == SEGMENT
    assert header.nonce_prefix == NONCE_PREFIX
    assert header.sealed_at == SEALED_AT
    assert header.metadata == METADATA
    assert header.slots == (SLOT,)
    assert header.header_bytes == data[: header.header_len]
    assert header.core_bytes == data[PREAMBLE_LEN + 4 : PREAMBLE_LEN + 4 + len(header.core_bytes)]


def test_parse_header_accepts_memoryview() -> None:
    data = seal(b"abc")

    header = parse_header(memoryview(bytearray(data)))

    assert header == parse_header(data)


def test_parse_header_negative_sealed_at() -> None:
    data = seal(b"abc", sealed_at=-1)

    assert parse_header(data).sealed_at == -1


# --- Streaming header reader ----------------------------------------------------


def test_header_reader_byte_at_a_time() -> None:
    data = seal(b"abc")
    header_len = read_header_length(data)
    reader = HeaderReader()

    results = [reader.feed(data[offset : offset + 1]) for offset in range(header_len)]

    assert all(result is None for result in results[:-1])
    assert results[-1] is not None
    header, leftover = results[-1]
    assert header.header_bytes == data[:header_len]
    assert leftover == b""


def test_header_reader_returns_leftover() -> None:
    data = seal(b"abc")
    reader = HeaderReader()

    result = reader.feed(data)

    assert result is not None
    header, leftover = result
    assert leftover == data[header.header_len :]


def test_header_reader_feed_after_header_raises() -> None:
    reader = HeaderReader()
    reader.feed(seal(b"abc"))

    with pytest.raises(ValueError, match="header already read"):
        reader.feed(b"more")


def test_header_reader_finish_incomplete_rejected() -> None:
    data = seal(b"abc")
    reader = HeaderReader()
    reader.feed(data[:100])

    with pytest.raises(IntegrityError):
        reader.finish()


def test_header_reader_bad_preamble_rejected() -> None:
    reader = HeaderReader()

    with pytest.raises(IntegrityError):
        reader.feed(b"not an envelope at all")


# --- Tampering: each kind on its own --------------------------------------------


def test_open_flipped_magic_byte_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)

    data = flip(seal(plaintext), 1)

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_flipped_version_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)

    data = flip(seal(plaintext), 9)

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_flipped_header_len_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)

    data = flip(seal(plaintext), 13)

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_changed_level_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    level_offset = PREAMBLE_LEN + 4 + 16

    data = flip(seal(plaintext), level_offset, mask=0x03)  # Tối mật (2) becomes Mật (1)

    assert data[level_offset] == LEVEL_MAT
    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_changed_metadata_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    original = seal(plaintext)
    position = original.index(b"12/BB-TCT")

    data = original[:position] + b"13/BB-TCT" + original[position + 9 :]

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_flipped_wrapped_key_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    original = seal(plaintext)

    data = flip(original, original.index(WRAPPED_KEY) + 5)

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_flipped_header_tag_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    original = seal(plaintext)

    data = flip(original, read_header_length(original) - 1)

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_flipped_body_byte_rejected() -> None:
    plaintext = make_plaintext(3 * SEGMENT)
    original = seal(plaintext)

    data = flip(original, read_header_length(original) + SEGMENT_LEN + 100)

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=1)


def test_open_flipped_byte_at_every_offset_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    original = seal(plaintext)
    header_len = read_header_length(original)
    accepted = []
    leaked = []

    for offset in range(len(original)):
        released, error = open_and_collect(flip(original, offset))
        damaged_segment = max(0, (offset - header_len) // SEGMENT_LEN)
        if error is None:
            accepted.append(offset)
        if len(released) > damaged_segment * SEGMENT or released != plaintext[: len(released)]:
            leaked.append(offset)

    assert accepted == []
    assert leaked == []


def test_open_truncated_at_every_offset_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    original = seal(plaintext)
    header_len = read_header_length(original)
    accepted = []
    leaked = []

    for length in range(len(original)):
        released, error = open_and_collect(original[:length])
        damaged_segment = max(0, (length - header_len) // SEGMENT_LEN)
        if error is None:
            accepted.append(length)
        if len(released) > damaged_segment * SEGMENT or released != plaintext[: len(released)]:
            leaked.append(length)

    assert accepted == []
    assert leaked == []


def test_open_truncated_at_segment_boundary_rejected() -> None:
    plaintext = make_plaintext(3 * SEGMENT)
    header, segments = split_envelope(seal(plaintext))

    data = header + segments[0] + segments[1]

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=1)


def test_open_header_without_body_rejected() -> None:
    header, _ = split_envelope(seal(b"abc"))

    assert_rejected_keeping_prefix(header, b"abc", damaged_segment=0)


def test_open_reordered_segments_rejected() -> None:
    plaintext = make_plaintext(3 * SEGMENT)
    header, segments = split_envelope(seal(plaintext))

    data = header + segments[1] + segments[0] + segments[2]

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_duplicated_segment_rejected() -> None:
    plaintext = make_plaintext(3 * SEGMENT)
    header, segments = split_envelope(seal(plaintext))

    data = header + segments[0] + segments[0] + segments[1] + segments[2]

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=1)


def test_open_dropped_middle_segment_rejected() -> None:
    plaintext = make_plaintext(3 * SEGMENT)
    header, segments = split_envelope(seal(plaintext))

    data = header + segments[0] + segments[2]

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=1)


def test_open_dropped_last_segment_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT + 10)
    header, segments = split_envelope(seal(plaintext))

    data = header + segments[0] + segments[1]

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=1)


def test_open_appended_bytes_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT + 10)

    data = seal(plaintext) + b"\x00"

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=2)


def test_open_appended_bytes_after_full_last_segment_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)

    data = seal(plaintext) + b"\x00"

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=1)


def test_open_appended_segment_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT + 10)
    original = seal(plaintext)
    _, segments = split_envelope(original)

    data = original + segments[0]

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=2)


def test_open_spliced_header_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    _, segments = split_envelope(seal(plaintext))
    other_header, _ = split_envelope(seal(plaintext, dek=OTHER_DEK, artefact_id=OTHER_ARTEFACT_ID))

    released, error = open_and_collect(other_header + b"".join(segments), dek=OTHER_DEK)

    assert error is not None
    assert released == b""


def test_open_spliced_header_with_own_dek_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    _, segments = split_envelope(seal(plaintext))
    other_header, _ = split_envelope(seal(plaintext, dek=OTHER_DEK, artefact_id=OTHER_ARTEFACT_ID))

    released, error = open_and_collect(other_header + b"".join(segments), dek=DEK)

    assert error is not None
    assert released == b""


def test_open_spliced_header_same_dek_other_artefact_rejected() -> None:
    plaintext = make_plaintext(2 * SEGMENT)
    _, segments = split_envelope(seal(plaintext))
    other_header, _ = split_envelope(seal(plaintext, artefact_id=OTHER_ARTEFACT_ID))

    released, error = open_and_collect(other_header + b"".join(segments))

    assert error is not None
    assert released == b""


def test_open_wrong_commitment_rejected() -> None:
    # The header tag is valid, so only the commitment check can reject this.
    header = spec_header(spec_core(commitment=bytes(32)))
    data = header + spec_seal_segments(header, [(b"abc", True)])

    with pytest.raises(IntegrityError):
        Opener(parse_header(data), DEK)


def test_open_wrong_dek_rejected() -> None:
    data = seal(b"abc")

    with pytest.raises(IntegrityError):
        Opener(parse_header(data), OTHER_DEK)


def test_open_short_dek_rejected() -> None:
    data = seal(b"abc")

    with pytest.raises(IntegrityError):
        Opener(parse_header(data), DEK[:31])


def test_open_dek_of_wrong_type_raises() -> None:
    data = seal(b"abc")

    with pytest.raises(TypeError):
        Opener(parse_header(data), DEK.hex())  # type: ignore[arg-type]


def test_open_empty_last_segment_after_data_rejected() -> None:
    # The sealer never writes this, so build a correctly encrypted one.
    plaintext = make_plaintext(SEGMENT)
    header = spec_header(spec_core())
    data = header + spec_seal_segments(header, [(plaintext, False), (b"", True)])

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=1)


def test_open_short_inner_segment_rejected() -> None:
    plaintext = make_plaintext(SEGMENT + 100)
    header = spec_header(spec_core())
    data = header + spec_seal_segments(header, [(plaintext[:100], False), (plaintext[100:], True)])

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=0)


def test_open_segment_limit_exceeded_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    plaintext = make_plaintext(3 * SEGMENT)
    data = seal(plaintext)
    monkeypatch.setattr(envelope, "MAX_SEGMENTS", 2)

    assert_rejected_keeping_prefix(data, plaintext, damaged_segment=2)


def test_integrity_error_gives_no_cause() -> None:
    data = seal(make_plaintext(2 * SEGMENT))
    damaged = [
        flip(data, 0),
        flip(data, PREAMBLE_LEN + 4 + 80),
        flip(data, read_header_length(data) - 1),
        flip(data, len(data) - 1),
        data[:-1],
    ]

    for candidate in damaged:
        _, error = open_and_collect(candidate)
        assert error is not None
        assert str(error) == INTEGRITY_MESSAGE
        assert error.__cause__ is None
        assert error.__suppress_context__ or error.__context__ is None


def test_integrity_error_pickles() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(IntegrityError()))

    assert str(error) == INTEGRITY_MESSAGE


def test_opener_after_failure_keeps_rejecting() -> None:
    plaintext = make_plaintext(3 * SEGMENT)
    header, segments = split_envelope(seal(plaintext))
    opener = Opener(parse_header(header), DEK)
    with pytest.raises(IntegrityError):
        opener.update(segments[1] + segments[0])

    with pytest.raises(IntegrityError):
        opener.update(segments[2])
    with pytest.raises(IntegrityError):
        opener.finalize()


def test_opener_uses_header_bytes_not_fields() -> None:
    data = seal(make_plaintext(SEGMENT + 1))
    header = parse_header(data)
    edited = replace(header, segment_size=2 * SEGMENT, nonce_prefix=bytes(7), level=LEVEL_MAT)

    opener = Opener(edited, DEK)

    assert opener.header == header
    assert opener.update(data[header.header_len :]) + opener.finalize() == make_plaintext(SEGMENT + 1)


def test_opener_update_after_finalize_raises() -> None:
    data = seal(b"abc")
    header = parse_header(data)
    opener = Opener(header, DEK)
    opener.update(data[header.header_len :])
    opener.finalize()

    with pytest.raises(ValueError, match="already finalized"):
        opener.update(b"")
    with pytest.raises(ValueError, match="already finalized"):
        opener.finalize()


# --- Parser bounds, against headers built from the specification ------------------

# Each case builds a header with one field out of its bounds but a valid tag.
HEADER_DEFECTS: dict[str, Callable[[], bytes]] = {
    "magic_changed": lambda: spec_header(spec_core(), magic=b"\x89NPHONG\r"),
    "version_0": lambda: spec_header(spec_core(), version=0),
    "version_2": lambda: spec_header(spec_core(), version=2),
    "header_len_63": lambda: spec_header(spec_core(), header_len=63),
    "header_len_65537": lambda: spec_header(spec_core(), header_len=65537),
    "header_len_one_short": lambda: spec_header(spec_core(), header_len_delta=-1),
    "header_len_one_long": lambda: spec_header(spec_core(), header_len_delta=1) + b"\x00",
    "header_trailing_byte": lambda: spec_header(spec_core(), extra=b"\x00"),
    "core_len_32769": lambda: spec_header(spec_core(), core_len=32769),
    "core_len_one_short": lambda: spec_header(spec_core(), core_len_delta=-1),
    "core_len_one_long": lambda: spec_header(spec_core(), core_len_delta=1),
    "core_trailing_byte": lambda: spec_header(spec_core(extra=b"\x00")),
    "level_0": lambda: spec_header(spec_core(level=0)),
    "level_3_tuyet_mat": lambda: spec_header(spec_core(level=3)),
    "level_255": lambda: spec_header(spec_core(level=255)),
    "aead_0": lambda: spec_header(spec_core(aead=0)),
    "aead_3_unknown": lambda: spec_header(spec_core(aead=3)),
    "segment_size_4095": lambda: spec_header(spec_core(segment_size=4095)),
    "segment_size_over_8_mib": lambda: spec_header(spec_core(segment_size=8 * MIB + 1)),
    "metadata_len_16385": lambda: spec_header(spec_core(metadata=b"{}", metadata_len=16385)),
    "metadata_len_past_core": lambda: spec_header(spec_core(metadata_len=5000)),
    "metadata_over_16384_bytes": lambda: spec_header(
        spec_core(metadata=json.dumps({"title": "a" * 16380}, separators=(",", ":")).encode())
    ),
    "slot_count_0": lambda: spec_header(spec_core(), slots=[]),
    "slot_count_9": lambda: spec_header(spec_core(), slots=[spec_slot()] * 9),
    "slot_count_above_slots": lambda: spec_header(spec_core(), slots=[spec_slot()], slot_count=2),
    "key_id_len_0": lambda: spec_header(spec_core(), slots=[spec_slot(key_id=b"")]),
    "key_id_len_65": lambda: spec_header(spec_core(), slots=[spec_slot(key_id=b"k" * 65)]),
    "key_id_control_char": lambda: spec_header(spec_core(), slots=[spec_slot(key_id=b"kek\x1f")]),
    "key_id_del_char": lambda: spec_header(spec_core(), slots=[spec_slot(key_id=b"kek\x7f")]),
    "key_id_not_ascii": lambda: spec_header(spec_core(), slots=[spec_slot(key_id="khóa".encode())]),
    "key_version_0": lambda: spec_header(spec_core(), slots=[spec_slot(key_version=0)]),
    "alg_len_0": lambda: spec_header(spec_core(), slots=[spec_slot(algorithm=b"")]),
    "alg_len_33": lambda: spec_header(spec_core(), slots=[spec_slot(algorithm=b"A" * 33)]),
    "wrapped_len_0": lambda: spec_header(spec_core(), slots=[spec_slot(wrapped=b"")]),
    "wrapped_len_1025": lambda: spec_header(spec_core(), slots=[spec_slot(wrapped=bytes(1025))]),
    "wrapped_len_past_header": lambda: spec_header(spec_core(), slots=[spec_slot(wrapped_len=1000)]),
    "tag_missing": lambda: spec_header(spec_core(), omit_tag=True),
}


@pytest.mark.parametrize("build", HEADER_DEFECTS.values(), ids=HEADER_DEFECTS.keys())
def test_parse_header_out_of_bounds_rejected(build: Callable[[], bytes]) -> None:
    data = build() + bytes(100)

    with pytest.raises(IntegrityError):
        parse_header(data)


@pytest.mark.parametrize("build", HEADER_DEFECTS.values(), ids=HEADER_DEFECTS.keys())
def test_spec_decoder_out_of_bounds_rejected(build: Callable[[], bytes]) -> None:
    # The reference decoder must agree with the module on every defect.
    with pytest.raises(SpecRejected):
        spec_parse_header(build() + bytes(100))


def test_spec_header_defaults_parse() -> None:
    # Guards HEADER_DEFECTS: without a defect, the builder's header is valid.
    data = spec_header(spec_core())

    header = parse_header(data)

    assert header.header_bytes == data


def test_read_header_length_short_input_rejected() -> None:
    with pytest.raises(IntegrityError):
        read_header_length(seal(b"")[: PREAMBLE_LEN - 1])


def test_parse_header_truncated_rejected() -> None:
    data = seal(b"")

    with pytest.raises(IntegrityError):
        parse_header(data[: read_header_length(data) - 1])


def test_parse_header_largest_header_accepted() -> None:
    slots = [spec_slot(key_id=b"k" * 64, algorithm=b"A" * 32, wrapped=bytes(1024))] * 8
    metadata = json.dumps({"title": "a" * (16384 - 12)}, separators=(",", ":")).encode()
    assert len(metadata) == 16384

    header = parse_header(spec_header(spec_core(metadata=metadata), slots=slots))

    assert header.header_len == PREAMBLE_LEN + 25518


# --- Metadata -------------------------------------------------------------------


def test_metadata_nfd_input_stored_nfc() -> None:
    nfd_title = unicodedata.normalize("NFD", "Biên bản họp")
    assert nfd_title != "Biên bản họp"

    data = seal(b"abc", metadata={**METADATA, "title": nfd_title})

    assert parse_header(data).metadata["title"] == "Biên bản họp"
    assert "Biên bản họp".encode() in data
    assert nfd_title.encode() not in data


def test_metadata_nfd_key_stored_nfc() -> None:
    nfd_key = unicodedata.normalize("NFD", "ghi_chú")

    data = seal(b"abc", metadata={nfd_key: "x"})

    assert parse_header(data).metadata == {"ghi_chú": "x"}


def test_canonical_metadata_layout() -> None:
    encoded = canonical_metadata({"title": "Biên bản họp", "doc_number": "12/BB-TCT", "ghi chú": 'a"\\\n\x01'})

    assert encoded == '{"doc_number":"12/BB-TCT","ghi chú":"a\\"\\\\\\n\\u0001","title":"Biên bản họp"}'.encode()


def test_canonical_metadata_unknown_keys_kept() -> None:
    data = seal(b"abc", metadata={**METADATA, "so_trang": "12"})

    assert parse_header(data).metadata["so_trang"] == "12"


NON_CANONICAL_METADATA: dict[str, bytes] = {
    "whitespace": b'{"title": "x"}',
    "unsorted_keys": b'{"title":"x","doc_number":"1"}',
    "nfd_value": '{"title":"{}"}'.replace("{}", unicodedata.normalize("NFD", "Biên")).encode(),
    "nfd_key": '{"{}":"x"}'.replace("{}", unicodedata.normalize("NFD", "chú")).encode(),
    "escaped_non_ascii": b'{"title":"Bi\\u00ean"}',
    "escaped_slash": b'{"doc_number":"12\\/BB"}',
    "uppercase_hex_escape": b'{"title":"\\u001F"}',
    "duplicate_key": b'{"title":"x","title":"x"}',
    "number_value": b'{"pages":12}',
    "null_value": b'{"title":null}',
    "nested_object": b'{"title":{"a":"b"}}',
    "array": b'["x"]',
    "string": b'"x"',
    "empty": b"",
    "invalid_utf8": b'{"title":"\xff"}',
    "byte_order_mark": b'\xef\xbb\xbf{"title":"x"}',
    "lone_surrogate_escape": b'{"title":"\\ud800"}',
    "deep_nesting": b'{"title":' + b"[" * 8000 + b"]" * 8000 + b"}",
}


@pytest.mark.parametrize("metadata", NON_CANONICAL_METADATA.values(), ids=NON_CANONICAL_METADATA.keys())
def test_parse_header_non_canonical_metadata_rejected(metadata: bytes) -> None:
    data = spec_header(spec_core(metadata=metadata))

    with pytest.raises(IntegrityError):
        parse_header(data)


# --- Caller mistakes --------------------------------------------------------------

SEALER_MISTAKES: dict[str, tuple[type[Exception], dict[str, Any]]] = {
    "dek_31_bytes": (ValueError, {"dek": DEK[:31]}),
    "dek_33_bytes": (ValueError, {"dek": DEK + b"\x00"}),
    "dek_str": (TypeError, {"dek": DEK.hex()}),
    "artefact_id_15_bytes": (ValueError, {"artefact_id": ARTEFACT_ID[:15]}),
    "level_0": (ValueError, {"level": 0}),
    "level_3_tuyet_mat": (ValueError, {"level": 3}),
    "level_bool": (TypeError, {"level": True}),
    "segment_size_4095": (ValueError, {"segment_size": 4095}),
    "segment_size_over_8_mib": (ValueError, {"segment_size": 8 * MIB + 1}),
    "segment_size_float": (TypeError, {"segment_size": 4096.0}),
    "nonce_prefix_6_bytes": (ValueError, {"nonce_prefix": bytes(6)}),
    "no_slots": (ValueError, {"slots": ()}),
    "nine_slots": (ValueError, {"slots": (SLOT,) * 9}),
    "slot_not_keyslot": (TypeError, {"slots": (("kek", 1, "AES-KWP", WRAPPED_KEY),)}),
    "sealed_at_over_int64": (ValueError, {"sealed_at": 2**63}),
    "metadata_int_value": (TypeError, {"metadata": {"pages": 12}}),
    "metadata_not_mapping": (TypeError, {"metadata": [("title", "x")]}),
    "metadata_too_long": (ValueError, {"metadata": {"title": "a" * 16384}}),
    "metadata_keys_equal_after_nfc": (ValueError, {"metadata": {"chú": "a", unicodedata.normalize("NFD", "chú"): "b"}}),
    "metadata_lone_surrogate": (ValueError, {"metadata": {"title": "\ud800"}}),
}


@pytest.mark.parametrize("expected, arguments", SEALER_MISTAKES.values(), ids=SEALER_MISTAKES.keys())
def test_sealer_invalid_argument_raises(expected: type[Exception], arguments: dict[str, Any]) -> None:
    with pytest.raises(expected):
        make_sealer(**arguments)


KEY_SLOT_MISTAKES: dict[str, tuple[type[Exception], tuple[Any, ...]]] = {
    "key_id_empty": (ValueError, ("", 1, "AES-KWP", WRAPPED_KEY)),
    "key_id_65_chars": (ValueError, ("k" * 65, 1, "AES-KWP", WRAPPED_KEY)),
    "key_id_not_ascii": (ValueError, ("khóa", 1, "AES-KWP", WRAPPED_KEY)),
    "key_id_newline": (ValueError, ("kek\n", 1, "AES-KWP", WRAPPED_KEY)),
    "key_id_bytes": (TypeError, (b"kek", 1, "AES-KWP", WRAPPED_KEY)),
    "key_version_0": (ValueError, ("kek", 0, "AES-KWP", WRAPPED_KEY)),
    "key_version_over_u32": (ValueError, ("kek", 2**32, "AES-KWP", WRAPPED_KEY)),
    "wrap_algorithm_empty": (ValueError, ("kek", 1, "", WRAPPED_KEY)),
    "wrap_algorithm_33_chars": (ValueError, ("kek", 1, "A" * 33, WRAPPED_KEY)),
    "wrapped_key_empty": (ValueError, ("kek", 1, "AES-KWP", b"")),
    "wrapped_key_1025_bytes": (ValueError, ("kek", 1, "AES-KWP", bytes(1025))),
    "wrapped_key_str": (TypeError, ("kek", 1, "AES-KWP", WRAPPED_KEY.hex())),
}


@pytest.mark.parametrize("expected, arguments", KEY_SLOT_MISTAKES.values(), ids=KEY_SLOT_MISTAKES.keys())
def test_key_slot_invalid_argument_raises(expected: type[Exception], arguments: tuple[Any, ...]) -> None:
    with pytest.raises(expected):
        KeySlot(*arguments)


def test_sealer_update_after_finalize_raises() -> None:
    sealer = make_sealer()
    sealer.finalize()

    with pytest.raises(ValueError, match="already finalized"):
        sealer.update(b"abc")
    with pytest.raises(ValueError, match="already finalized"):
        sealer.finalize()


def test_sealer_segment_limit_exceeded_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "MAX_SEGMENTS", 2)
    sealer = make_sealer()

    with pytest.raises(ValueError, match="more than 2 segments"):
        sealer.update(make_plaintext(3 * SEGMENT + 1))


def test_sealer_accepts_level_enum() -> None:
    # daemon/levels.py passes an IntEnum; it must be stored as its number.
    import enum

    class Level(enum.IntEnum):
        TOI_MAT = 2

    data = seal(b"abc", level=Level.TOI_MAT)

    assert parse_header(data).level == LEVEL_TOI_MAT


# --- Lengths ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17])
def test_plaintext_length_matches_envelope(size: int) -> None:
    data = seal(make_plaintext(size))
    header = parse_header(data)

    assert plaintext_length(len(data), header.header_len, SEGMENT) == size


@pytest.mark.parametrize(
    "body_len",
    [0, TAG_LEN - 1, SEGMENT_LEN + TAG_LEN, SEGMENT_LEN + 1, 2 * SEGMENT_LEN + 15],
    ids=["empty", "shorter_than_tag", "empty_last_after_data", "last_shorter_than_tag", "last_15_bytes"],
)
def test_plaintext_length_impossible_returns_none(body_len: int) -> None:
    assert plaintext_length(200 + body_len, 200, SEGMENT) is None


def test_plaintext_length_body_before_header_returns_none() -> None:
    assert plaintext_length(100, 200, SEGMENT) is None


def test_plaintext_length_bad_segment_size_raises() -> None:
    with pytest.raises(ValueError):
        plaintext_length(10000, 200, 100)


# --- Keys never shown -------------------------------------------------------------


def test_repr_hides_key_material() -> None:
    data = seal(b"abc")
    header = parse_header(data)
    payload_key = spec_derive(DEK, ARTEFACT_ID, b"niemphong/v1 payload")
    header_key = spec_derive(DEK, ARTEFACT_ID, b"niemphong/v1 header")
    sealer = make_sealer()
    opener = Opener(header, DEK)
    secrets = [key_text for key in (DEK, payload_key, header_key) for key_text in (key.hex(), repr(key))]

    texts = {
        "sealer": repr(sealer) + repr(vars(sealer)),
        "opener": repr(opener) + repr(vars(opener)),
        "header": repr(header),
        "derived_keys": repr(envelope._DerivedKeys(DEK, ARTEFACT_ID)),
    }

    for name, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{name} repr shows key material"


def test_key_slot_repr_hides_wrapped_key() -> None:
    text = repr(SLOT)

    assert "wrapped_key" not in text
    assert repr(WRAPPED_KEY) not in text


def test_header_repr_hides_metadata() -> None:
    header = parse_header(seal(b"abc"))

    assert "Biên" not in repr(header)


# --- Memory -----------------------------------------------------------------------

BIG_PLAINTEXT_LEN = 64 * MIB
READ_CHUNK = 64 * 1024


def test_sealer_memory_stays_flat() -> None:
    block = make_plaintext(READ_CHUNK)
    sealed_len = 0

    tracemalloc.start()
    try:
        sealer = make_sealer(segment_size=DEFAULT_SEGMENT_SIZE)
        for _ in range(BIG_PLAINTEXT_LEN // READ_CHUNK):
            sealed_len += len(sealer.update(block))
        sealed_len += len(sealer.finalize())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert sealed_len == BIG_PLAINTEXT_LEN + TAG_LEN * (BIG_PLAINTEXT_LEN // DEFAULT_SEGMENT_SIZE)
    assert peak < 4 * MIB


def test_opener_memory_stays_flat(tmp_path: Path) -> None:
    path = tmp_path / "big.envelope"
    block = make_plaintext(READ_CHUNK)
    expected = hashlib.sha256()
    sealer = make_sealer(segment_size=DEFAULT_SEGMENT_SIZE)
    with path.open("wb") as file:
        file.write(sealer.header_bytes)
        for _ in range(BIG_PLAINTEXT_LEN // READ_CHUNK):
            expected.update(block)
            file.write(sealer.update(block))
        file.write(sealer.finalize())
    opened = hashlib.sha256()
    opened_len = 0

    tracemalloc.start()
    try:
        with path.open("rb") as file:
            reader = HeaderReader()
            result = None
            while result is None:
                chunk = file.read(1024)
                if not chunk:
                    reader.finish()
                result = reader.feed(chunk)
            header, leftover = result
            opener = Opener(header, DEK)
            chunk = leftover
            while chunk:
                plaintext = opener.update(chunk)
                opened.update(plaintext)
                opened_len += len(plaintext)
                chunk = file.read(READ_CHUNK)
            plaintext = opener.finalize()
            opened.update(plaintext)
            opened_len += len(plaintext)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert opened_len == BIG_PLAINTEXT_LEN
    assert opened.digest() == expected.digest()
    assert peak < 4 * MIB


# --- Rewrapping -------------------------------------------------------------------

RECOVERY_SLOT = KeySlot("niemphong-recovery", 1, "RSA-OAEP-SHA256", b"\xa5" * 256)


def test_rewrap_header_opens_old_body() -> None:
    plaintext = make_plaintext(2 * SEGMENT + 5)
    data = seal(plaintext)
    old_header = parse_header(data)

    new_header_bytes = rewrap_header(old_header, DEK, [RECOVERY_SLOT])
    new_data = new_header_bytes + data[old_header.header_len :]

    assert open_envelope(new_data) == plaintext
    assert spec_open(new_data, DEK) == plaintext


def test_rewrap_header_replaces_slots() -> None:
    data = seal(b"abc")
    old_header = parse_header(data)

    new_header = parse_header(rewrap_header(old_header, DEK, [RECOVERY_SLOT]))

    assert new_header.slots == (RECOVERY_SLOT,)
    assert WRAPPED_KEY not in new_header.header_bytes
    assert new_header.core_bytes == old_header.core_bytes


def test_rewrap_header_keeps_body_bytes() -> None:
    data = seal(make_plaintext(SEGMENT + 5))
    old_header = parse_header(data)
    body = data[old_header.header_len :]

    new_data = rewrap_header(old_header, DEK, [SLOT, RECOVERY_SLOT]) + body

    assert new_data.endswith(body)
    assert len(new_data) - parse_header(new_data).header_len == len(body)


def test_rewrap_header_wrong_dek_rejected() -> None:
    header = parse_header(seal(b"abc"))

    with pytest.raises(IntegrityError):
        rewrap_header(header, OTHER_DEK, [RECOVERY_SLOT])


def test_rewrap_header_no_slots_raises() -> None:
    header = parse_header(seal(b"abc"))

    with pytest.raises(ValueError):
        rewrap_header(header, DEK, [])


def test_rewrap_header_uses_header_bytes_not_fields() -> None:
    data = seal(b"abc")
    header = parse_header(data)
    edited = replace(header, core_bytes=b"forged core")

    new_header = parse_header(rewrap_header(edited, DEK, [RECOVERY_SLOT]))

    assert new_header.core_bytes == header.core_bytes


# --- Known-answer vectors ---------------------------------------------------------


def vector_slots(vector: dict[str, Any]) -> list[KeySlot]:
    return [
        KeySlot(slot["key_id"], slot["key_version"], slot["wrap_algorithm"], bytes.fromhex(slot["wrapped_key"]))
        for slot in vector["slots"]
    ]


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_vector_seal_matches(vector: dict[str, Any]) -> None:
    plaintext = bytes.fromhex(vector["plaintext"])

    data = seal(
        plaintext,
        dek=bytes.fromhex(vector["dek"]),
        artefact_id=bytes.fromhex(vector["artefact_id"]),
        nonce_prefix=bytes.fromhex(vector["nonce_prefix"]),
        level=vector["level"],
        segment_size=vector["segment_size"],
        sealed_at=vector["sealed_at"],
        metadata=vector["metadata"],
        slots=vector_slots(vector),
        chunk_size=1000,
    )

    assert data[: len(vector["header"]) // 2].hex() == vector["header"]
    assert data.hex() == vector["envelope"]
    assert hashlib.sha256(data).hexdigest() == vector["envelope_sha256"]


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_vector_open_pinned(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["envelope"])
    dek = bytes.fromhex(vector["dek"])

    header = parse_header(data)

    assert header.metadata == vector["metadata"]
    assert header.slots == tuple(vector_slots(vector))
    assert open_envelope(data, dek, chunk_size=777) == bytes.fromhex(vector["plaintext"])


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_vector_open_with_spec_decoder(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["envelope"])

    plaintext = spec_open(data, bytes.fromhex(vector["dek"]))

    assert plaintext == bytes.fromhex(vector["plaintext"])


def test_vector_contains_vietnamese_metadata() -> None:
    titles = {vector["metadata"].get("title") for vector in VECTORS}
    doc_numbers = {vector["metadata"].get("doc_number") for vector in VECTORS}

    assert "Biên bản họp" in titles
    assert "12/BB-TCT" in doc_numbers


# --- Second implementation, written from docs/format.md ---------------------------


class SpecRejected(Exception):
    """The reference decoder in this file rejected an envelope."""


class SpecPairs(list[tuple[str, Any]]):
    """Members of one decoded JSON object, in their stored order."""


@dataclass(frozen=True)
class SpecHeader:
    artefact_id: bytes
    segment_size: int
    nonce_prefix: bytes
    commitment: bytes
    core: bytes
    tagged: bytes
    tag: bytes
    end: int


def spec_require(condition: bool) -> None:
    if not condition:
        raise SpecRejected()


def spec_derive(dek: bytes, artefact_id: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=artefact_id, info=info).derive(dek)


def spec_hmac(key: bytes, data: bytes) -> bytes:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


class SpecReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def read(self, length: int) -> bytes:
        spec_require(self.position + length <= len(self.data))
        chunk = self.data[self.position : self.position + length]
        self.position += length
        return chunk

    def number(self, length: int, signed: bool = False) -> int:
        return int.from_bytes(self.read(length), "big", signed=signed)

    def at_end(self) -> bool:
        return self.position == len(self.data)


def spec_check_metadata(raw: bytes) -> None:
    try:
        pairs = json.loads(raw.decode("utf-8"), object_pairs_hook=SpecPairs)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SpecRejected() from None
    spec_require(isinstance(pairs, SpecPairs))
    keys = [key for key, _ in pairs]
    spec_require(len(set(keys)) == len(keys))
    for key, value in pairs:
        spec_require(isinstance(value, str))
        spec_require(unicodedata.is_normalized("NFC", key))
        spec_require(unicodedata.is_normalized("NFC", value))
    canonical = json.dumps(dict(pairs), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        spec_require(canonical.encode("utf-8") == raw)
    except UnicodeEncodeError:
        raise SpecRejected() from None


def spec_parse_header(data: bytes) -> SpecHeader:
    preamble = SpecReader(data)
    spec_require(preamble.read(8) == b"\x89NPHONG\n")
    spec_require(preamble.number(2) == 1)
    header_len = preamble.number(4)
    spec_require(64 <= header_len <= 65536)

    header = SpecReader(preamble.read(header_len))
    core_len = header.number(4)
    spec_require(core_len <= 32768)
    core = SpecReader(header.read(core_len))
    artefact_id = core.read(16)
    spec_require(core.number(1) in (1, 2))
    spec_require(core.number(1) == 1)
    segment_size = core.number(4)
    spec_require(4096 <= segment_size <= 8 * MIB)
    nonce_prefix = core.read(7)
    commitment = core.read(32)
    core.number(8, signed=True)
    metadata_len = core.number(4)
    spec_require(metadata_len <= 16384)
    spec_check_metadata(core.read(metadata_len))
    spec_require(core.at_end())

    slot_count = header.number(1)
    spec_require(1 <= slot_count <= 8)
    for _ in range(slot_count):
        key_id = header.read(header.number(1))
        spec_require(1 <= len(key_id) <= 64 and all(0x20 <= byte <= 0x7E for byte in key_id))
        spec_require(header.number(4) >= 1)
        algorithm = header.read(header.number(1))
        spec_require(1 <= len(algorithm) <= 32 and all(0x20 <= byte <= 0x7E for byte in algorithm))
        spec_require(1 <= len(header.read(header.number(2))) <= 1024)
    tagged_len = header.position
    tag = header.read(32)
    spec_require(header.at_end())

    return SpecHeader(
        artefact_id=artefact_id,
        segment_size=segment_size,
        nonce_prefix=nonce_prefix,
        commitment=commitment,
        core=core.data,
        tagged=data[: 14 + tagged_len],
        tag=tag,
        end=14 + header_len,
    )


def spec_open(data: bytes, dek: bytes) -> bytes:
    """Open a whole envelope by the steps of docs/format.md, raising SpecRejected."""
    header = spec_parse_header(data)
    spec_require(len(dek) == 32)
    payload_key = spec_derive(dek, header.artefact_id, b"niemphong/v1 payload")
    header_key = spec_derive(dek, header.artefact_id, b"niemphong/v1 header")
    commitment_key = spec_derive(dek, header.artefact_id, b"niemphong/v1 commitment")
    spec_require(hmac.compare_digest(commitment_key, header.commitment))
    spec_require(hmac.compare_digest(spec_hmac(header_key, header.tagged), header.tag))

    aead = AESGCM(payload_key)
    aad = hashlib.sha256(b"niemphong/v1 body" + header.core).digest()
    segment_len = header.segment_size + 16
    body = data[header.end :]
    plaintext = []
    index = 0
    position = 0
    try:
        while len(body) - position > segment_len:
            nonce = header.nonce_prefix + struct.pack(">IB", index, 0)
            plaintext.append(aead.decrypt(nonce, body[position : position + segment_len], aad))
            position += segment_len
            index += 1
        last = body[position:]
        spec_require(len(last) >= 16)
        spec_require(len(last) > 16 or index == 0)
        nonce = header.nonce_prefix + struct.pack(">IB", index, 1)
        plaintext.append(aead.decrypt(nonce, last, aad))
    except InvalidTag:
        raise SpecRejected() from None
    return b"".join(plaintext)


def spec_slot(
    key_id: bytes = b"niemphong-toi-mat",
    key_version: int = 1,
    algorithm: bytes = b"AES-KWP",
    wrapped: bytes = WRAPPED_KEY,
    *,
    wrapped_len: int | None = None,
) -> bytes:
    return (
        bytes([len(key_id)])
        + key_id
        + struct.pack(">I", key_version)
        + bytes([len(algorithm)])
        + algorithm
        + struct.pack(">H", len(wrapped) if wrapped_len is None else wrapped_len)
        + wrapped
    )


def spec_core(
    *,
    dek: bytes = DEK,
    artefact_id: bytes = ARTEFACT_ID,
    level: int = 2,
    aead: int = 1,
    segment_size: int = SEGMENT,
    nonce_prefix: bytes = NONCE_PREFIX,
    sealed_at: int = SEALED_AT,
    metadata: bytes | None = None,
    metadata_len: int | None = None,
    commitment: bytes | None = None,
    extra: bytes = b"",
) -> bytes:
    """Encode a core by the table in docs/format.md, by default with the commitment of ``dek``."""
    if commitment is None:
        commitment = spec_derive(dek, artefact_id, b"niemphong/v1 commitment")
    if metadata is None:
        metadata = json.dumps(METADATA, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return (
        artefact_id
        + bytes([level, aead])
        + struct.pack(">I", segment_size)
        + nonce_prefix
        + commitment
        + struct.pack(">qI", sealed_at, len(metadata) if metadata_len is None else metadata_len)
        + metadata
        + extra
    )


def spec_header(
    core: bytes,
    *,
    dek: bytes = DEK,
    artefact_id: bytes = ARTEFACT_ID,
    slots: list[bytes] | None = None,
    slot_count: int | None = None,
    core_len: int | None = None,
    core_len_delta: int = 0,
    magic: bytes = MAGIC,
    version: int = 1,
    header_len: int | None = None,
    header_len_delta: int = 0,
    extra: bytes = b"",
    omit_tag: bool = False,
) -> bytes:
    """Encode a preamble and header around ``core`` with a valid header tag."""
    if slots is None:
        slots = [spec_slot()]
    untagged = (
        struct.pack(">I", (len(core) if core_len is None else core_len) + core_len_delta)
        + core
        + bytes([len(slots) if slot_count is None else slot_count])
        + b"".join(slots)
        + extra
    )
    tag_len = 0 if omit_tag else 32
    header_len_value = (len(untagged) + tag_len if header_len is None else header_len) + header_len_delta
    preamble = struct.pack(">8sHI", magic, version, header_len_value)
    header_key = spec_derive(dek, artefact_id, b"niemphong/v1 header")
    tag = b"" if omit_tag else spec_hmac(header_key, preamble + untagged)
    return preamble + untagged + tag


def spec_seal_segments(header_bytes: bytes, segments: list[tuple[bytes, bool]], dek: bytes = DEK) -> bytes:
    """Encrypt each (plaintext, last) pair in order under the header's keys."""
    header = spec_parse_header(header_bytes)
    aead = AESGCM(spec_derive(dek, header.artefact_id, b"niemphong/v1 payload"))
    aad = hashlib.sha256(b"niemphong/v1 body" + header.core).digest()
    body = []
    for index, (plaintext, last) in enumerate(segments):
        nonce = header.nonce_prefix + struct.pack(">IB", index, 1 if last else 0)
        body.append(aead.encrypt(nonce, plaintext, aad))
    return b"".join(body)


@pytest.mark.parametrize("size", [0, 1, SEGMENT, 2 * SEGMENT + 3])
def test_spec_decoder_opens_sealed(size: int) -> None:
    plaintext = make_plaintext(size)

    assert spec_open(seal(plaintext), DEK) == plaintext


@pytest.mark.parametrize("size", [0, 1, SEGMENT, 2 * SEGMENT + 3])
def test_spec_encoder_matches_sealer(size: int) -> None:
    plaintext = make_plaintext(size)
    header = spec_header(spec_core())
    pieces = [plaintext[start : start + SEGMENT] for start in range(0, len(plaintext), SEGMENT)] or [b""]
    segments = [(piece, index == len(pieces) - 1) for index, piece in enumerate(pieces)]

    data = header + spec_seal_segments(header, segments)

    assert data == seal(plaintext)


def test_spec_decoder_rejects_wrong_dek() -> None:
    with pytest.raises(SpecRejected):
        spec_open(seal(b"abc"), OTHER_DEK)


def test_spec_decoder_rejects_flipped_body() -> None:
    data = seal(b"abc")

    with pytest.raises(SpecRejected):
        spec_open(flip(data, len(data) - 1), DEK)


def test_opener_header_of_wrong_type_raises() -> None:
    with pytest.raises(TypeError):
        Opener(parse_header(seal(b"abc")).header_bytes, DEK)  # type: ignore[arg-type]


def test_header_is_frozen() -> None:
    header: Header = parse_header(seal(b"abc"))

    with pytest.raises(AttributeError):
        header.level = LEVEL_MAT  # type: ignore[misc]
