"""Find where an envelope's header ends, without any key and without the daemon's code.

The client never imports the daemon, so it reads the 14-byte preamble of
envelope format v1 itself (docs/format.md, Preamble): magic, u16 format
version, u32 header length. Everything after the preamble is for the daemon
to parse and verify.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

MAGIC = b"\x89NPHONG\n"
FORMAT_VERSION = 1
PREAMBLE_LEN = 14
MIN_HEADER_LEN = 64
MAX_HEADER_LEN = 65536

_PREAMBLE = struct.Struct(">8sHI")


class NotAnEnvelope(Exception):
    """The file does not start with the envelope magic."""


class DamagedEnvelope(Exception):
    """The file starts like an envelope, but its preamble or header is cut short or out of bounds."""


def header_length(preamble: bytes) -> int:
    """Return the length of preamble plus header from the first 14 bytes of an envelope.

    Raises:
        NotAnEnvelope: The bytes do not start with the magic.
        DamagedEnvelope: Too few bytes, another format version, or a header
            length outside 64 to 65,536.
    """
    if len(preamble) < len(MAGIC) or preamble[: len(MAGIC)] != MAGIC:
        raise NotAnEnvelope()
    if len(preamble) < PREAMBLE_LEN:
        raise DamagedEnvelope()
    _, version, length = _PREAMBLE.unpack(preamble[:PREAMBLE_LEN])
    if version != FORMAT_VERSION or not MIN_HEADER_LEN <= length <= MAX_HEADER_LEN:
        raise DamagedEnvelope()
    return PREAMBLE_LEN + int(length)


def read_header(handle: BinaryIO) -> bytes:
    """Read the preamble and header from the start of ``handle``; the file position ends after them.

    Raises:
        NotAnEnvelope, DamagedEnvelope: as :func:`header_length`, or the file
            ends inside the header.
    """
    preamble = handle.read(PREAMBLE_LEN)
    total = header_length(preamble)
    rest = handle.read(total - PREAMBLE_LEN)
    if len(rest) != total - PREAMBLE_LEN:
        raise DamagedEnvelope()
    return preamble + rest
