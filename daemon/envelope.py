"""Envelope format v1: seal and open documents in authenticated, streamed segments.

An envelope is a preamble, a header and a body. The header names the
classification level, the document metadata and one or more wrapped copies of
the data key (DEK). The body is the plaintext cut into segments, each sealed
with AES-256-GCM. docs/format.md specifies every byte and the security
properties; this module implements it with ``cryptography`` and the standard
library only, so it needs no token.

Caller mistakes (wrong types, lengths or ranges of the inputs to seal) raise
``TypeError`` or ``ValueError``. Every defect in an envelope being opened, a
wrong data key included, raises :class:`IntegrityError` with the same message,
so an attacker who submits modified envelopes learns nothing about which check
failed.

Memory stays bounded while streaming: :class:`Sealer` and :class:`Opener`
buffer at most one segment plus the chunk passed to ``update()``.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import os
import struct
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# AESGCM.encrypt_into and decrypt_into write into a caller's buffer and save
# a copy per segment; older releases of cryptography lack them.
_HAVE_INTO = hasattr(AESGCM, "encrypt_into") and hasattr(AESGCM, "decrypt_into")

MAGIC = b"\x89NPHONG\n"
FORMAT_VERSION = 1
PREAMBLE_LEN = 14

# Bounds of the preamble's header_len field: the bytes after the preamble.
MIN_HEADER_LEN = 64
MAX_HEADER_LEN = 65536
MAX_CORE_LEN = 32768
MAX_METADATA_LEN = 16384

MIN_SEGMENT_SIZE = 4096
MAX_SEGMENT_SIZE = 8 * 1024 * 1024
DEFAULT_SEGMENT_SIZE = 65536
# The segment index is a u32 in the nonce, so an envelope has at most 2**32 segments.
MAX_SEGMENTS = 2**32

LEVEL_MAT = 1
LEVEL_TOI_MAT = 2
LEVELS = frozenset({LEVEL_MAT, LEVEL_TOI_MAT})
AEAD_HOST_AES256GCM = 1
# AES-256-GCM computed inside the token, with keys derived there (in-token mode).
AEAD_TOKEN_AES256GCM = 2
AEADS = frozenset({AEAD_HOST_AES256GCM, AEAD_TOKEN_AES256GCM})

DEK_LEN = 32
ARTEFACT_ID_LEN = 16
NONCE_PREFIX_LEN = 7
COMMITMENT_LEN = 32
HEADER_TAG_LEN = 32
TAG_LEN = 16

MAX_SLOTS = 8
MAX_KEY_ID_LEN = 64
MAX_WRAP_ALGORITHM_LEN = 32
MAX_WRAPPED_KEY_LEN = 1024
MAX_KEY_VERSION = 2**32 - 1

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_PAYLOAD_INFO = b"niemphong/v1 payload"
_HEADER_INFO = b"niemphong/v1 header"
_COMMITMENT_INFO = b"niemphong/v1 commitment"
_BODY_AAD_PREFIX = b"niemphong/v1 body"
_TOKEN_DERIVATION_PREFIX = b"niemphong/v1 token "

# magic, format version, header_len
_PREAMBLE = struct.Struct(">8sHI")
# artefact_id, level, aead, segment_size, nonce_prefix, commitment, sealed_at, metadata_len
_CORE_FIXED = struct.Struct(">16sBBI7s32sqI")
# nonce_prefix, segment index, last-segment flag
_NONCE = struct.Struct(">7sIB")

_INTEGRITY_MESSAGE = "envelope failed integrity check"


class IntegrityError(Exception):
    """Envelope rejected: malformed, modified, truncated, extended or opened with the wrong key.

    The message is the same for every cause, so it does not reveal which check failed.
    """

    def __init__(self) -> None:
        super().__init__(_INTEGRITY_MESSAGE)

    def __reduce__(self) -> tuple[type[IntegrityError], tuple[()]]:
        return (type(self), ())


@dataclass(frozen=True)
class KeySlot:
    """One wrapped copy of the data key and the key-encryption key that unwraps it.

    Attributes:
        key_id: Identifier of the key-encryption key, 1 to 64 printable ASCII
            characters (0x20 to 0x7E).
        key_version: Version of that key, 1 to 2**32 - 1.
        wrap_algorithm: Wrapping algorithm name such as "AES-KWP", 1 to 32
            printable ASCII characters.
        wrapped_key: The wrapped data key, 1 to 1024 bytes. Left out of repr.
    """

    key_id: str
    key_version: int
    wrap_algorithm: str
    wrapped_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_printable_ascii("key_id", self.key_id, MAX_KEY_ID_LEN)
        _check_int("key_version", self.key_version, 1, MAX_KEY_VERSION)
        _check_printable_ascii("wrap_algorithm", self.wrap_algorithm, MAX_WRAP_ALGORITHM_LEN)
        if not isinstance(self.wrapped_key, bytes):
            raise TypeError(f"wrapped_key must be bytes, not {type(self.wrapped_key).__name__}")
        if not 1 <= len(self.wrapped_key) <= MAX_WRAPPED_KEY_LEN:
            raise ValueError(
                f"wrapped_key must be 1 to {MAX_WRAPPED_KEY_LEN} bytes, got {len(self.wrapped_key)}"
            )


@dataclass(frozen=True)
class Header:
    """Parsed envelope header.

    The fields are unauthenticated until an :class:`Opener` or
    :func:`rewrap_header` has verified the header with the data key. Both
    re-parse ``header_bytes`` and ignore the other fields, so a Header changed
    with ``dataclasses.replace`` cannot steer them. Metadata, commitment and
    raw bytes are left out of repr because document titles may be classified.

    Attributes:
        artefact_id: 16 random bytes naming the sealed document.
        level: LEVEL_MAT or LEVEL_TOI_MAT.
        aead: AEAD_HOST_AES256GCM, or AEAD_TOKEN_AES256GCM for in-token mode.
        segment_size: Plaintext bytes per segment.
        nonce_prefix: 7 random bytes that start every segment nonce.
        commitment: HKDF output that binds the header to one data key.
        sealed_at: Seal time in Unix seconds.
        metadata: Document metadata, NFC-normalized strings.
        slots: Wrapped copies of the data key.
        core_bytes: The core exactly as stored. The body's AAD is a hash of it.
        header_bytes: Preamble and header including the header tag.
    """

    artefact_id: bytes
    level: int
    aead: int
    segment_size: int
    nonce_prefix: bytes
    commitment: bytes = field(repr=False)
    sealed_at: int
    metadata: dict[str, str] = field(repr=False)
    slots: tuple[KeySlot, ...]
    core_bytes: bytes = field(repr=False)
    header_bytes: bytes = field(repr=False)

    @property
    def header_len(self) -> int:
        """Length of preamble plus header in bytes, where the body starts.

        This is PREAMBLE_LEN more than the preamble's header_len field.
        """
        return len(self.header_bytes)


class SegmentAead(Protocol):
    """The AES-256-GCM of body segments: ``cryptography``'s AESGCM, or the token's (in-token mode).

    ``decrypt`` raises cryptography's InvalidTag when a segment fails to verify.
    """

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes) -> bytes: ...


class InTokenKey(abc.ABC):
    """A data key that never leaves the token (in-token mode, aead 2).

    The token derives the three envelope keys from it (docs/format.md,
    "In-token mode"): the payload key stays in the token, which runs the
    segment AES-GCM itself; the header key and the commitment are returned.
    """

    @abc.abstractmethod
    def derive(self, artefact_id: bytes) -> tuple[SegmentAead, bytes, bytes]:
        """Return the payload AEAD, the header key and the commitment for ``artefact_id``."""


def derivation_data(artefact_id: bytes, info: bytes) -> bytes:
    """Return the 32 bytes the token encrypts with AES-ECB under the data key to derive one key in in-token mode."""
    return hashlib.sha256(_TOKEN_DERIVATION_PREFIX + info + artefact_id).digest()


class _DerivedKeys:
    """The three derived keys of one data key. repr never shows them.

    For a data key on the host they are HKDF outputs. For an in-token key
    the payload key exists only in the token, and ``aead`` runs there.
    """

    __slots__ = ("aead", "header", "commitment", "aead_id")

    def __init__(self, dek: bytes | InTokenKey, artefact_id: bytes) -> None:
        self.aead: SegmentAead
        if isinstance(dek, InTokenKey):
            self.aead, self.header, self.commitment = dek.derive(artefact_id)
            self.aead_id = AEAD_TOKEN_AES256GCM
        else:
            self.aead = AESGCM(_hkdf(dek, artefact_id, _PAYLOAD_INFO))
            self.header = _hkdf(dek, artefact_id, _HEADER_INFO)
            self.commitment = _hkdf(dek, artefact_id, _COMMITMENT_INFO)
            self.aead_id = AEAD_HOST_AES256GCM

    def __repr__(self) -> str:
        return "_DerivedKeys(<hidden>)"


# --- Input validation (caller mistakes raise TypeError or ValueError) -----------


def _check_bytes(name: str, value: object, length: int) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
    return value


def _check_int(name: str, value: object, minimum: int, maximum: int) -> int:
    # bool is an int subclass, but True as a level or size is always a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return int(value)


def _check_printable_ascii(name: str, value: object, max_len: int) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= max_len:
        raise ValueError(f"{name} must be 1 to {max_len} characters, got {len(value)}")
    if not all(" " <= char <= "~" for char in value):
        raise ValueError(f"{name} must contain only printable ASCII (0x20 to 0x7E), got {value!r}")


def _check_level(level: object) -> int:
    if not isinstance(level, int) or isinstance(level, bool):
        raise TypeError(f"level must be an int, not {type(level).__name__}")
    if level not in LEVELS:
        raise ValueError(
            f"level must be {LEVEL_MAT} (Mật) or {LEVEL_TOI_MAT} (Tối mật), got {int(level)}"
        )
    return int(level)


def _check_slots(slots: Sequence[KeySlot]) -> tuple[KeySlot, ...]:
    checked = tuple(slots)
    if not 1 <= len(checked) <= MAX_SLOTS:
        raise ValueError(f"an envelope needs 1 to {MAX_SLOTS} key slots, got {len(checked)}")
    for slot in checked:
        if not isinstance(slot, KeySlot):
            raise TypeError(f"slots must contain KeySlot objects, not {type(slot).__name__}")
    return checked


def canonical_metadata(metadata: Mapping[str, str]) -> bytes:
    """Encode metadata in the one byte form that the header stores.

    Keys and values are NFC-normalized, then written as compact JSON with
    sorted keys and literal (unescaped) non-ASCII characters, in UTF-8.

    Args:
        metadata: A flat mapping of strings to strings.

    Returns:
        The canonical UTF-8 JSON bytes.

    Raises:
        TypeError: A key or value is not a str.
        ValueError: Two keys are equal after NFC normalization, a string
            contains a lone surrogate, or the result exceeds MAX_METADATA_LEN
            bytes.
    """
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, not {type(metadata).__name__}")

    normalized: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be str, not {type(key).__name__}")
        if not isinstance(value, str):
            raise TypeError(f"metadata value of {key!r} must be a str, not {type(value).__name__}")
        nfc_key = unicodedata.normalize("NFC", key)
        if nfc_key in normalized:
            raise ValueError(f"metadata has two keys that are both {nfc_key!r} after NFC normalization")
        normalized[nfc_key] = unicodedata.normalize("NFC", value)

    text = json.dumps(normalized, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("metadata contains a lone surrogate, which UTF-8 cannot encode") from exc

    if len(encoded) > MAX_METADATA_LEN:
        raise ValueError(
            f"metadata is {len(encoded)} bytes as canonical JSON, the maximum is {MAX_METADATA_LEN}"
        )
    return encoded


# --- Encoding ---------------------------------------------------------------


def _hkdf(dek: bytes, artefact_id: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=artefact_id, info=info).derive(dek)


def _header_tag(header_key: bytes, tagged_bytes: bytes) -> bytes:
    mac = HMAC(header_key, hashes.SHA256())
    mac.update(tagged_bytes)
    return mac.finalize()


def _body_aad(core: bytes) -> bytes:
    return hashlib.sha256(_BODY_AAD_PREFIX + core).digest()


def _segment_nonce(nonce_prefix: bytes, index: int, last: bool) -> bytes:
    return _NONCE.pack(nonce_prefix, index, 1 if last else 0)


def _encode_slot(slot: KeySlot) -> bytes:
    key_id = slot.key_id.encode("ascii")
    algorithm = slot.wrap_algorithm.encode("ascii")
    return b"".join(
        (
            struct.pack(">B", len(key_id)),
            key_id,
            struct.pack(">IB", slot.key_version, len(algorithm)),
            algorithm,
            struct.pack(">H", len(slot.wrapped_key)),
            slot.wrapped_key,
        )
    )


def _encode_header(core: bytes, slots: tuple[KeySlot, ...], header_key: bytes) -> bytes:
    """Lay out preamble and header around an encoded core and tag them."""
    untagged = b"".join(
        (
            struct.pack(">I", len(core)),
            core,
            struct.pack(">B", len(slots)),
            *(_encode_slot(slot) for slot in slots),
        )
    )
    header_len = len(untagged) + HEADER_TAG_LEN
    # Unreachable with the bounds above (a maximal header is 25,518 bytes), but
    # a future bound change must not produce envelopes that parse_header rejects.
    if not MIN_HEADER_LEN <= header_len <= MAX_HEADER_LEN:
        raise ValueError(f"header would be {header_len} bytes, outside {MIN_HEADER_LEN}..{MAX_HEADER_LEN}")

    preamble = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, header_len)
    tag = _header_tag(header_key, preamble + untagged)
    return preamble + untagged + tag


# --- Parsing (every defect raises IntegrityError) -----------------------------


class _Cursor:
    """Sequential reader of big-endian fields. Reading past the end raises IntegrityError."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self._data = data
        self._offset = offset

    @property
    def remaining(self) -> int:
        return len(self._data) - self._offset

    def take(self, length: int) -> bytes:
        if length > self.remaining:
            raise IntegrityError()
        chunk = self._data[self._offset : self._offset + length]
        self._offset += length
        return chunk

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        return layout.unpack(self.take(layout.size))

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")


def read_header_length(preamble: bytes | bytearray | memoryview) -> int:
    """Check the preamble and return how many bytes the preamble and header span.

    Args:
        preamble: At least the first PREAMBLE_LEN bytes of an envelope. Bytes
            after the preamble are ignored.

    Returns:
        PREAMBLE_LEN plus the header_len field, which is where the body starts.

    Raises:
        IntegrityError: Too few bytes, wrong magic, unsupported version, or
            header_len outside MIN_HEADER_LEN..MAX_HEADER_LEN.
    """
    if len(preamble) < PREAMBLE_LEN:
        raise IntegrityError()
    magic, version, header_len = _PREAMBLE.unpack(bytes(preamble[:PREAMBLE_LEN]))
    if magic != MAGIC or version != FORMAT_VERSION:
        raise IntegrityError()
    if not MIN_HEADER_LEN <= header_len <= MAX_HEADER_LEN:
        raise IntegrityError()
    return PREAMBLE_LEN + int(header_len)


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in metadata JSON")
    return result


def _parse_metadata(raw: bytes) -> dict[str, str]:
    try:
        parsed = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: deeply nested arrays fit in 16 KiB.
        raise IntegrityError() from None

    if not isinstance(parsed, dict):
        raise IntegrityError()
    metadata: dict[str, str] = {}
    for key, value in parsed.items():
        if not isinstance(value, str):
            raise IntegrityError()
        metadata[key] = value

    # Any byte form other than the canonical one (whitespace, key order,
    # escapes, non-NFC text) is rejected, so that one metadata value has
    # exactly one encoding.
    try:
        canonical = canonical_metadata(metadata)
    except ValueError:
        raise IntegrityError() from None
    if canonical != raw:
        raise IntegrityError()
    return metadata


def _parse_slot(cursor: _Cursor) -> KeySlot:
    key_id = cursor.take(cursor.u8())
    key_version = cursor.u32()
    algorithm = cursor.take(cursor.u8())
    wrapped_key = cursor.take(cursor.u16())
    try:
        return KeySlot(key_id.decode("ascii"), key_version, algorithm.decode("ascii"), wrapped_key)
    except ValueError:
        # Covers UnicodeDecodeError and every bound that KeySlot checks.
        raise IntegrityError() from None


def parse_header(data: bytes | bytearray | memoryview) -> Header:
    """Parse the preamble and header at the start of an envelope.

    Parsing checks structure and bounds only. The header tag and the
    commitment need the data key and are verified by :class:`Opener`.

    Args:
        data: Envelope bytes from offset 0, holding at least the whole header.
            Bytes after the header are ignored.

    Returns:
        The parsed header.

    Raises:
        IntegrityError: The bytes are not a well-formed v1 header.
    """
    total_len = read_header_length(data)
    if len(data) < total_len:
        raise IntegrityError()
    header_bytes = bytes(data[:total_len])
    cursor = _Cursor(header_bytes, PREAMBLE_LEN)

    core_len = cursor.u32()
    if core_len > MAX_CORE_LEN:
        raise IntegrityError()
    core = cursor.take(core_len)
    core_cursor = _Cursor(core)
    (artefact_id, level, aead, segment_size, nonce_prefix, commitment, sealed_at, metadata_len) = (
        core_cursor.unpack(_CORE_FIXED)
    )
    if level not in LEVELS or aead not in AEADS:
        raise IntegrityError()
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise IntegrityError()
    if metadata_len > MAX_METADATA_LEN:
        raise IntegrityError()
    metadata = _parse_metadata(core_cursor.take(metadata_len))
    if core_cursor.remaining:
        raise IntegrityError()

    slot_count = cursor.u8()
    if not 1 <= slot_count <= MAX_SLOTS:
        raise IntegrityError()
    slots = tuple(_parse_slot(cursor) for _ in range(slot_count))
    cursor.take(HEADER_TAG_LEN)
    if cursor.remaining:
        raise IntegrityError()

    return Header(
        artefact_id=artefact_id,
        level=level,
        aead=aead,
        segment_size=segment_size,
        nonce_prefix=nonce_prefix,
        commitment=commitment,
        sealed_at=sealed_at,
        metadata=metadata,
        slots=slots,
        core_bytes=core,
        header_bytes=header_bytes,
    )


def _verify_header(header: Header, dek: object) -> tuple[Header, _DerivedKeys]:
    """Re-parse ``header.header_bytes``, check the commitment, then the header tag.

    Returns:
        The re-parsed header and the keys derived from ``dek``.
    """
    if not isinstance(dek, (bytes, InTokenKey)):
        raise TypeError(f"dek must be bytes or an InTokenKey, not {type(dek).__name__}")
    if not isinstance(header, Header):
        raise TypeError(f"header must be a Header, not {type(header).__name__}")
    # The data key comes from unwrapping a slot that an attacker may have
    # replaced, so a wrong length is an integrity failure, not a caller mistake.
    if isinstance(dek, bytes) and len(dek) != DEK_LEN:
        raise IntegrityError()

    trusted = parse_header(header.header_bytes)
    # A host key for an in-token envelope, or the reverse, cannot verify.
    expected_aead = AEAD_TOKEN_AES256GCM if isinstance(dek, InTokenKey) else AEAD_HOST_AES256GCM
    if trusted.aead != expected_aead:
        raise IntegrityError()
    keys = _DerivedKeys(dek, trusted.artefact_id)
    if not hmac.compare_digest(keys.commitment, trusted.commitment):
        raise IntegrityError()

    tagged_len = trusted.header_len - HEADER_TAG_LEN
    mac = HMAC(keys.header, hashes.SHA256())
    mac.update(trusted.header_bytes[:tagged_len])
    try:
        mac.verify(trusted.header_bytes[tagged_len:])
    except InvalidSignature:
        raise IntegrityError() from None
    return trusted, keys


class HeaderReader:
    """Buffer for the start of a streamed envelope that parses the header once it is complete.

    Before the header completes it buffers at most PREAMBLE_LEN +
    MAX_HEADER_LEN bytes plus the last chunk fed.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._total_len: int | None = None
        self._done = False

    def feed(self, data: bytes) -> tuple[Header, bytes] | None:
        """Add a chunk and parse the header once all of it is here.

        Returns:
            None while more bytes are needed. Then, once, the parsed header
            and the bytes after it (the start of the body, possibly b"").

        Raises:
            IntegrityError: The preamble or header is malformed.
            ValueError: The header was already returned.
        """
        if self._done:
            raise ValueError("header already read; pass the remaining bytes to an Opener")
        self._buffer += data

        if self._total_len is None:
            if len(self._buffer) < PREAMBLE_LEN:
                return None
            self._total_len = read_header_length(self._buffer)
        if len(self._buffer) < self._total_len:
            return None

        header = parse_header(self._buffer)
        leftover = bytes(self._buffer[self._total_len :])
        self._buffer = bytearray()
        self._done = True
        return header, leftover

    def finish(self) -> None:
        """Raise IntegrityError if the input ended before the header was complete."""
        if not self._done:
            raise IntegrityError()


# --- Sealing and opening ----------------------------------------------------------


class SegmentCipher:
    """AES-256-GCM of body segments by index, for callers that seal or open segments out of order.

    A file sealed on several threads at once hands each thread its own range
    of indexes. The nonce is derived from the index, so each index must be
    sealed at most once: sealing two plaintexts at one index would reuse a
    GCM nonce. Get one from :meth:`Sealer.take_segment_cipher` or
    :meth:`Opener.take_segment_cipher`.
    """

    __slots__ = ("_aead", "_aad", "_nonce_prefix", "segment_size")

    def __init__(self, aead: SegmentAead, aad: bytes, nonce_prefix: bytes, segment_size: int) -> None:
        # One AESGCM object serves every thread: each call of cryptography's
        # AEAD classes is independent and runs without the GIL.
        self._aead = aead
        self._aad = aad
        self._nonce_prefix = nonce_prefix
        self.segment_size = segment_size

    def __repr__(self) -> str:
        return f"SegmentCipher(segment_size={self.segment_size})"

    @property
    def shareable(self) -> bool:
        """Whether several threads may seal or open segments at once: true on the host, not in a token.

        An in-token key runs on one PKCS#11 session, which takes one call at a time.
        """
        return isinstance(self._aead, AESGCM)

    def seal_into(self, index: int, plaintext: bytes | memoryview, out: memoryview, *, last: bool) -> None:
        """Seal segment ``index`` into ``out``, which must be exactly ``len(plaintext) + TAG_LEN`` bytes."""
        if not 0 <= index < MAX_SEGMENTS:
            raise ValueError(f"segment index must be below {MAX_SEGMENTS}, got {index}")
        nonce = _segment_nonce(self._nonce_prefix, index, last)
        if _HAVE_INTO and isinstance(self._aead, AESGCM):
            self._aead.encrypt_into(nonce, plaintext, self._aad, out)
        else:
            out[:] = self._aead.encrypt(nonce, bytes(plaintext), self._aad)

    def open_into(self, index: int, segment: bytes | memoryview, out: memoryview, *, last: bool) -> None:
        """Open segment ``index`` into ``out`` (``len(segment) - TAG_LEN`` bytes); IntegrityError if its tag fails."""
        if not 0 <= index < MAX_SEGMENTS or len(segment) < TAG_LEN:
            raise IntegrityError()
        nonce = _segment_nonce(self._nonce_prefix, index, last)
        try:
            if _HAVE_INTO and isinstance(self._aead, AESGCM):
                self._aead.decrypt_into(nonce, segment, self._aad, out)
            else:
                out[:] = self._aead.decrypt(nonce, bytes(segment), self._aad)
        except InvalidTag:
            raise IntegrityError() from None



class Sealer:
    """Streaming encoder of one plaintext into one envelope.

    Write ``header_bytes``, then every ``update()`` result, then the
    ``finalize()`` result. The sealer holds back up to one segment because
    only the final segment is flagged last, and a full segment may turn out
    to be the final one.

    Args:
        dek: The 32-byte data key, from the token's random generator, or an
            InTokenKey for in-token mode (aead 2).
        artefact_id: 16 random bytes naming the document; also the HKDF salt.
        level: LEVEL_MAT or LEVEL_TOI_MAT.
        metadata: Flat str-to-str document metadata, stored NFC-normalized.
        slots: 1 to 8 wrapped copies of ``dek``.
        sealed_at: Seal time in Unix seconds, a signed 64-bit value.
        segment_size: Plaintext bytes per segment, 4096 to 8 MiB.
        nonce_prefix: 7 bytes; None draws them from os.urandom. Pass a fixed
            value only for known-answer tests.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: An argument is out of range.
    """

    def __init__(
        self,
        dek: bytes | InTokenKey,
        *,
        artefact_id: bytes,
        level: int,
        metadata: Mapping[str, str],
        slots: Sequence[KeySlot],
        sealed_at: int,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        nonce_prefix: bytes | None = None,
    ) -> None:
        if not isinstance(dek, InTokenKey):
            _check_bytes("dek", dek, DEK_LEN)
        _check_bytes("artefact_id", artefact_id, ARTEFACT_ID_LEN)
        level = _check_level(level)
        metadata_bytes = canonical_metadata(metadata)
        checked_slots = _check_slots(slots)
        sealed_at = _check_int("sealed_at", sealed_at, _INT64_MIN, _INT64_MAX)
        segment_size = _check_int("segment_size", segment_size, MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE)
        if nonce_prefix is None:
            nonce_prefix = os.urandom(NONCE_PREFIX_LEN)
        _check_bytes("nonce_prefix", nonce_prefix, NONCE_PREFIX_LEN)

        keys = _DerivedKeys(dek, artefact_id)
        core = (
            _CORE_FIXED.pack(
                artefact_id,
                level,
                keys.aead_id,
                segment_size,
                nonce_prefix,
                keys.commitment,
                sealed_at,
                len(metadata_bytes),
            )
            + metadata_bytes
        )

        self._header_bytes = _encode_header(core, checked_slots, keys.header)
        self._aead = keys.aead
        self._aad = _body_aad(core)
        self._nonce_prefix = nonce_prefix
        self._segment_size = segment_size
        self._buffer = bytearray()
        self._index = 0
        self._finalized = False

    @property
    def header_bytes(self) -> bytes:
        """Preamble and header, the first bytes of the envelope."""
        return self._header_bytes

    def update(self, data: bytes) -> bytes:
        """Add plaintext and return the sealed segments that are complete.

        Returns:
            Zero or more whole non-last segments, possibly b"".

        Raises:
            ValueError: The sealer was finalized, or the plaintext needs more
                than MAX_SEGMENTS segments.
        """
        if self._finalized:
            raise ValueError("sealer already finalized; create a new Sealer")
        view = memoryview(data)
        size = self._segment_size

        # A segment is sealed only once a later byte shows it is not the
        # last. First top up the segment buffered by the previous call.
        sealed = []
        if self._buffer:
            take = min(len(view), size - len(self._buffer))
            self._buffer += view[:take]
            view = view[take:]
            if not view:
                return b""
            sealed.append(self._seal_segment(bytes(self._buffer), last=False))
            self._buffer = bytearray()

        # Then whole segments straight from the caller's buffer, without
        # copying them, keeping at least one byte back.
        count = (len(view) - 1) // size if view else 0
        for index in range(count):
            sealed.append(self._seal_segment(view[index * size:(index + 1) * size], last=False))
        self._buffer += view[count * size:]
        return b"".join(sealed)

    def finalize(self) -> bytes:
        """Seal the buffered rest as the last segment and return it.

        The last segment is empty only when the whole plaintext is empty.

        Raises:
            ValueError: The sealer was already finalized, or the plaintext
                needs more than MAX_SEGMENTS segments.
        """
        if self._finalized:
            raise ValueError("sealer already finalized; create a new Sealer")
        sealed = self._seal_segment(bytes(self._buffer), last=True)
        self._buffer = bytearray()
        self._finalized = True
        return sealed

    def take_segment_cipher(self) -> SegmentCipher:
        """Return a cipher that seals segments by index, and finalize this sealer.

        For writers that know the plaintext length and seal segments in
        parallel. The body is the same as update() and finalize() would
        produce. This sealer accepts no further update() or finalize().

        Raises:
            ValueError: The sealer was already finalized or has sealed segments.
        """
        if self._finalized or self._index or self._buffer:
            raise ValueError("take_segment_cipher() must be the only use of a new Sealer")
        self._finalized = True
        return SegmentCipher(self._aead, self._aad, self._nonce_prefix, self._segment_size)

    def _seal_segment(self, plaintext: bytes | memoryview, *, last: bool) -> bytes:
        if self._index >= MAX_SEGMENTS:
            raise ValueError(f"plaintext needs more than {MAX_SEGMENTS} segments of {self._segment_size} bytes")
        nonce = _segment_nonce(self._nonce_prefix, self._index, last)
        self._index += 1
        return self._aead.encrypt(nonce, plaintext, self._aad)


class Opener:
    """Streaming decoder that verifies the header with the data key, then decrypts the body.

    ``update()`` returns plaintext only for segments whose tag verified, but
    the envelope as a whole is confirmed only when ``finalize()`` returns: a
    truncated envelope yields a correct prefix before finalize raises. Callers
    must hold or discard the output until then. After an IntegrityError every
    further call raises IntegrityError.

    Args:
        header: The parsed header. Only ``header.header_bytes`` is used.
        dek: The data key unwrapped from one of the header's slots.

    Attributes:
        header: The header re-parsed from its bytes and verified.

    Raises:
        TypeError: ``header`` or ``dek`` has the wrong type.
        IntegrityError: The commitment or the header tag does not match the
            data key, or ``dek`` is not 32 bytes.
    """

    def __init__(self, header: Header, dek: bytes | InTokenKey) -> None:
        self.header, keys = _verify_header(header, dek)

        self._aead = keys.aead
        self._aad = _body_aad(self.header.core_bytes)
        self._segment_len = self.header.segment_size + TAG_LEN
        self._buffer = bytearray()
        self._index = 0
        self._failed = False
        self._finalized = False

    def update(self, data: bytes) -> bytes:
        """Add body bytes and return the plaintext of the segments verified so far.

        A full segment is decrypted only once a byte after it has arrived,
        because until then it may be the last segment.

        Raises:
            IntegrityError: A segment failed to verify.
            ValueError: The opener was finalized.
        """
        self._check_usable()
        self._buffer += data

        plaintext = []
        while len(self._buffer) > self._segment_len:
            segment = bytes(self._buffer[: self._segment_len])
            del self._buffer[: self._segment_len]
            plaintext.append(self._open_segment(segment, last=False))
        return b"".join(plaintext)

    def finalize(self) -> bytes:
        """Decrypt the buffered bytes as the last segment and return its plaintext.

        Raises:
            IntegrityError: The last segment is missing, too short, an empty
                segment after data, altered, or followed by extra bytes.
            ValueError: The opener was already finalized.
        """
        self._check_usable()
        remaining = len(self._buffer)
        if remaining < TAG_LEN or (remaining == TAG_LEN and self._index > 0):
            raise self._fail()
        plaintext = self._open_segment(bytes(self._buffer), last=True)
        self._buffer = bytearray()
        self._finalized = True
        return plaintext

    def take_segment_cipher(self) -> SegmentCipher:
        """Return a cipher that opens segments by index, and finalize this opener.

        The caller must check the body length with :func:`plaintext_length`,
        flag only the final segment as last, and treat the envelope as
        confirmed only after every segment opened.

        Raises:
            ValueError: The opener was already used.
        """
        if self._finalized or self._failed or self._index or self._buffer:
            raise ValueError("take_segment_cipher() must be the only use of a new Opener")
        self._finalized = True
        return SegmentCipher(self._aead, self._aad, self.header.nonce_prefix, self.header.segment_size)

    def _check_usable(self) -> None:
        if self._failed:
            raise IntegrityError()
        if self._finalized:
            raise ValueError("opener already finalized; create a new Opener")

    def _open_segment(self, segment: bytes, *, last: bool) -> bytes:
        if self._index >= MAX_SEGMENTS:
            raise self._fail()
        nonce = _segment_nonce(self.header.nonce_prefix, self._index, last)
        try:
            plaintext = self._aead.decrypt(nonce, segment, self._aad)
        except InvalidTag:
            raise self._fail() from None
        self._index += 1
        return plaintext

    def _fail(self) -> IntegrityError:
        self._failed = True
        self._buffer = bytearray()
        return IntegrityError()


def plaintext_length(envelope_len: int, header_len: int, segment_size: int) -> int | None:
    """Compute the plaintext length from the envelope's size, without any key.

    Args:
        envelope_len: Total envelope size in bytes.
        header_len: Preamble plus header in bytes (``Header.header_len``).
        segment_size: The header's segment size.

    Returns:
        The plaintext length, or None if no valid body has this length.

    Raises:
        ValueError: ``segment_size`` is out of range or a length is negative.
    """
    _check_int("segment_size", segment_size, MIN_SEGMENT_SIZE, MAX_SEGMENT_SIZE)
    if envelope_len < 0 or header_len < 0:
        raise ValueError(f"lengths must not be negative, got {envelope_len} and {header_len}")

    body_len = envelope_len - header_len
    if body_len < TAG_LEN:
        return None
    segment_len = segment_size + TAG_LEN
    full_segments, last_len = divmod(body_len, segment_len)
    if last_len == 0:
        # The last segment is full.
        segment_count = full_segments
        last_len = segment_len
        full_segments -= 1
    else:
        segment_count = full_segments + 1
    if last_len < TAG_LEN or (last_len == TAG_LEN and full_segments > 0):
        return None
    if segment_count > MAX_SEGMENTS:
        return None
    return full_segments * segment_size + last_len - TAG_LEN


def rewrap_header(header: Header, dek: bytes | InTokenKey, slots: Sequence[KeySlot]) -> bytes:
    """Build a new preamble and header that carry ``slots`` in place of the old ones.

    The core is copied unchanged, so the old body stays valid after the new
    header. The old header is verified with ``dek`` first.

    Args:
        header: The current header.
        dek: Its data key.
        slots: The new key slots, 1 to 8.

    Returns:
        The new preamble and header, with a new header tag.

    Raises:
        IntegrityError: The old header does not verify with ``dek``.
        TypeError, ValueError: ``slots`` is invalid.
    """
    checked_slots = _check_slots(slots)
    trusted, keys = _verify_header(header, dek)
    return _encode_header(trusted.core_bytes, checked_slots, keys.header)
