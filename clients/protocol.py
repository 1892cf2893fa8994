"""Request messages for niemphongd, built from the user's arguments.

These functions do no I/O beyond reading the given file objects, so tests
can check what would be sent without a daemon. Every text argument a user
types (document number, title, purpose, reason) and the source file name are
normalized to Unicode NFC: macOS file names and some Vietnamese input
methods produce NFD, and the daemon compares and stores NFC.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterator
from typing import BinaryIO

from niemphong.v1 import niemphong_pb2 as pb

# The API bounds the envelope head sent to Inspect at 80 KiB, and the head
# must contain the whole header.
INSPECT_HEAD_BYTES = 80 * 1024

# The first 8 bytes of every envelope, fixed by docs/format.md ("Preamble").
# The client checks them itself so that a file of another kind gets a calm
# "not an envelope" message instead of the daemon's integrity failure.
ENVELOPE_MAGIC = b"\x89NPHONG\n"

LEVEL_BY_NAME: dict[str, int] = {
    "mat": pb.LEVEL_MAT,
    "toi-mat": pb.LEVEL_TOI_MAT,
    "tuyet-mat": pb.LEVEL_TUYET_MAT,
}
NAME_BY_LEVEL: dict[int, str] = {level: name for name, level in LEVEL_BY_NAME.items()}

# Protection periods counted from the issue date: Article 19 of the Law on
# Protection of State Secrets No. 29/2018/QH14.
PROTECTION_YEARS: dict[int, int] = {pb.LEVEL_MAT: 10, pb.LEVEL_TOI_MAT: 20, pb.LEVEL_TUYET_MAT: 30}

_ISO_DATE = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})$")
_VIETNAMESE_DATE = re.compile(r"^(?P<day>[0-9]{1,2})/(?P<month>[0-9]{1,2})/(?P<year>[0-9]{4})$")
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


class EmptyFieldError(ValueError):
    """A required text argument is empty after normalization."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} is empty")
        self.field = field


def normalize_text(text: str) -> str:
    """Return ``text`` in NFC with surrounding white space removed."""
    return unicodedata.normalize("NFC", text).strip()


def _strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def parse_level(text: str) -> int:
    """Return the Level for ``mat``, ``toi-mat`` or ``tuyet-mat``.

    Also accepts the Vietnamese names with or without diacritics, spaces or
    underscores, such as "Tối mật". Raises ValueError otherwise.
    """
    key = _strip_diacritics(normalize_text(text)).lower().replace(" ", "-").replace("_", "-")
    try:
        return LEVEL_BY_NAME[key]
    except KeyError:
        raise ValueError(f"unknown level {text!r}") from None


def level_name(level: int) -> str:
    """Return the command-line name of a Level, or "unspecified"."""
    return NAME_BY_LEVEL.get(level, "unspecified")


def parse_issued_date(text: str) -> dt.date:
    """Parse an issue date written YYYY-MM-DD or dd/mm/yyyy (d/m/yyyy too).

    Raises ValueError for any other form and for dates that do not exist,
    such as 2025-02-30.
    """
    value = text.strip()
    match = _ISO_DATE.match(value) or _VIETNAMESE_DATE.match(value)
    if match is None:
        raise ValueError(f"unrecognized date {text!r}")
    return dt.date(int(match["year"]), int(match["month"]), int(match["day"]))


def protection_end(level: int, issued_on: dt.date) -> dt.date | None:
    """Return the last day of a level's protection period, or None for an unknown level.

    NOTE: this counts the period as ending on the same calendar day N years
    after the issue date (28 February for a 29 February issue date). It is
    used only for a warning; the daemon applies the policy.
    """
    years = PROTECTION_YEARS.get(level)
    if years is None:
        return None
    try:
        return issued_on.replace(year=issued_on.year + years)
    except ValueError:
        return issued_on.replace(year=issued_on.year + years, day=28)


def parse_request_id(text: str) -> str:
    """Return a request id in lowercase. Raises ValueError unless it is 32 hex digits."""
    value = text.strip().lower()
    if not _REQUEST_ID.match(value):
        raise ValueError(f"invalid request id {text!r}")
    return value


def _required(field: str, text: str) -> str:
    value = normalize_text(text)
    if not value:
        raise EmptyFieldError(field)
    return value


def build_seal_metadata(
    level: int,
    doc_number: str,
    issued_on: dt.date,
    title: str,
    source_name: str,
) -> pb.SealMetadata:
    """Build the first Seal message. Raises EmptyFieldError for an empty document number."""
    document = pb.DocumentMetadata(
        doc_number=_required("doc_number", doc_number),
        issued_on=issued_on.isoformat(),
        title=normalize_text(title),
        source_name=normalize_text(source_name),
    )
    return pb.SealMetadata(level=level, document=document)  # type: ignore[arg-type]


def iter_seal_requests(metadata: pb.SealMetadata, source: BinaryIO, chunk_bytes: int) -> Iterator[pb.SealRequest]:
    """Yield the Seal stream: the metadata, then the document in chunks of at most ``chunk_bytes``."""
    yield pb.SealRequest(metadata=metadata)
    while chunk := source.read(chunk_bytes):
        yield pb.SealRequest(chunk=chunk)


def iter_open_requests(request_id: str, envelope: BinaryIO, chunk_bytes: int) -> Iterator[pb.OpenRequest]:
    """Yield the Open stream: the start message, then the envelope in chunks.

    An empty ``request_id`` lets the daemon pick the oldest usable grant.
    """
    yield pb.OpenRequest(start=pb.OpenStart(request_id=request_id))
    while chunk := envelope.read(chunk_bytes):
        yield pb.OpenRequest(chunk=chunk)


def starts_with_envelope_magic(envelope: BinaryIO) -> bool:
    """Return whether the file starts with ENVELOPE_MAGIC, and seek back to its start."""
    head = envelope.read(len(ENVELOPE_MAGIC))
    envelope.seek(0)
    return head == ENVELOPE_MAGIC


def build_inspect_request(envelope: BinaryIO, envelope_bytes: int) -> pb.InspectRequest:
    """Build an Inspect request from the first min(size, 80 KiB) bytes of the envelope."""
    head = envelope.read(min(envelope_bytes, INSPECT_HEAD_BYTES))
    return pb.InspectRequest(envelope_head=head, envelope_bytes=envelope_bytes)


def build_request_access(artefact_id: str, purpose: str) -> pb.RequestAccessRequest:
    """Build a RequestAccess message. Raises EmptyFieldError for an empty purpose."""
    return pb.RequestAccessRequest(artefact_id=artefact_id, purpose=_required("purpose", purpose))


def build_deny(request_id: str, reason: str) -> pb.DenyRequest:
    """Build a Deny message. Raises EmptyFieldError for an empty reason."""
    return pb.DenyRequest(request_id=request_id, reason=_required("reason", reason))
