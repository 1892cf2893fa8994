"""Checks on request fields: Unicode normal form, length bounds, formats.

Text arrives NFC or NFD (macOS and some Vietnamese input methods send NFD);
it is stored and bound into envelopes as NFC only. Bounds are counted in
characters after normalization and are the ones documented in the proto.
"""

from __future__ import annotations

import datetime
import re
import unicodedata

from niemphong.daemon.errors import ServiceError

MAX_DOC_NUMBER = 128
MAX_TITLE = 512
MAX_SOURCE_NAME = 255
MAX_PURPOSE = 2000
MAX_REASON = 2000
MAX_COPIES = 20
MAX_AGENCY = 512
MAX_PERSON = 200
MAX_PAGES = 100_000

_HEX_ID = re.compile(r"[0-9a-f]{32}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Control, format (bidi overrides, zero-width), surrogate, private-use,
# unassigned, and line and paragraph separators (U+2028, U+2029).
_REJECTED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def text(field: str, value: str, maximum: int, required: bool = True) -> str:
    """Return ``value`` in NFC with surrounding whitespace removed, or raise INVALID_FIELD/FIELD_TOO_LONG."""
    normalized = unicodedata.normalize("NFC", value).strip()
    if required and not normalized:
        raise ServiceError("INVALID_FIELD", f"{field} is missing", {"field": field})
    if len(normalized) > maximum:
        raise ServiceError(
            "FIELD_TOO_LONG", f"{field} has {len(normalized)} characters; the maximum is {maximum}",
            {"field": field, "max": str(maximum)},
        )
    if any(unicodedata.category(ch) in _REJECTED_CATEGORIES for ch in normalized):
        raise ServiceError("INVALID_FIELD", f"{field} contains control or unassigned characters", {"field": field})
    return normalized


def source_name(value: str) -> str:
    name = text("source_name", value, MAX_SOURCE_NAME, required=False)
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise ServiceError("INVALID_FIELD", "source_name must be a file name without folders", {"field": "source_name"})
    return name


def iso_date(field: str, value: str, not_after: datetime.date | None = None) -> str:
    """Return ``value`` if it is a real calendar date written YYYY-MM-DD, and not after ``not_after`` if given.

    Pass today in Vietnam as ``not_after`` for dates that cannot lie in the
    future, such as the issue date of a document being scanned.
    """
    parsed = None
    if _ISO_DATE.fullmatch(value):
        try:
            parsed = datetime.date.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise ServiceError("INVALID_FIELD", f"{field} must be a date written YYYY-MM-DD", {"field": field})

    if not_after is not None and parsed > not_after:
        raise ServiceError("INVALID_FIELD", f"{field} {value} is after today ({not_after})", {"field": field})
    return parsed.isoformat()


def hex_id(field: str, value: str) -> str:
    """Return ``value`` lower-cased if it is 32 hex digits."""
    lowered = value.strip().lower()
    if not _HEX_ID.fullmatch(lowered):
        raise ServiceError("INVALID_FIELD", f"{field} must be 32 hexadecimal digits", {"field": field})
    return lowered


def bounded(field: str, value: int, maximum: int) -> int:
    """Return ``value`` if it is at most ``maximum``, or raise INVALID_FIELD naming the bound."""
    if value > maximum:
        raise ServiceError(
            "INVALID_FIELD", f"{field} is {value}; the maximum is {maximum}", {"field": field, "max": str(maximum)}
        )
    return value
