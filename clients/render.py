"""Human tables and JSON objects for what niemphongd returns.

Tables are in the user's language. JSON keys are English and stable, levels
use the command-line names (``mat``, ``toi-mat``), and times are ISO 8601 in
UTC with the Unix seconds beside them.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from niemphong.clients.i18n import Lang, format_bytes, format_date, format_timestamp, translate
from niemphong.clients.protocol import level_name
from niemphong.v1 import niemphong_pb2 as pb

# Width at which the pending table cuts a purpose; `show` prints it whole.
PURPOSE_COLUMN_WIDTH = 40

_STATE_NAMES = {
    pb.REQUEST_STATE_PENDING: "pending",
    pb.REQUEST_STATE_APPROVED: "approved",
    pb.REQUEST_STATE_DENIED: "denied",
}


# Unicode categories that json.dumps(ensure_ascii=False) writes unescaped but
# that must not reach a terminal: C1 controls and DEL (Cc), format characters
# such as the bidi marks, embeddings, overrides and isolates (Cf), line and
# paragraph separators (Zl, Zp), and the lone surrogates that stand for
# undecodable bytes in file names (Cs). json.dumps itself escapes C0 controls.
_JSON_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    # JSON writes characters outside the Basic Multilingual Plane as a UTF-16 surrogate pair.
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def dump_json(value: object) -> str:
    """Serialize ``value`` as indented UTF-8 JSON, keeping Vietnamese letters readable.

    Control, format and separator characters in strings are written as
    \\uXXXX escapes, so that a forged envelope header cannot move the cursor
    or reorder text on the terminal.
    """
    text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False)
    # Every character at or above U+007F of these categories is inside a
    # string, because the JSON structure itself is ASCII.
    return "".join(
        _json_escape(char)
        if ord(char) >= 0x7F and unicodedata.category(char) in _JSON_ESCAPED_CATEGORIES
        else char
        for char in text
    )


def level_label(level: int, lang: Lang) -> str:
    """Return the level as users write it, such as "Tối mật"."""
    return translate(lang, f"level.{level_name(level).replace('-', '_')}")


def _utc_iso(unix_seconds: int) -> str | None:
    if not unix_seconds:
        return None
    moment = dt.datetime.fromtimestamp(unix_seconds, tz=dt.timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def _time_or_unknown(unix_seconds: int, lang: Lang) -> str:
    if not unix_seconds:
        return translate(lang, "word.unknown")
    return format_timestamp(unix_seconds, lang)


def _issued_label(issued_on: str, lang: Lang) -> str:
    try:
        return format_date(dt.date.fromisoformat(issued_on), lang)
    except ValueError:
        # Unverified header text: show it as it is rather than fail.
        return issued_on or translate(lang, "word.unknown")


def _key_json(key: pb.KeyRef) -> dict[str, object]:
    return {"key_id": key.key_id, "version": key.version, "wrap_algorithm": key.wrap_algorithm}


def printable(text: str) -> str:
    """Replace control, format and separator characters and lone surrogates with U+FFFD.

    Strings from an envelope header or from another user (title, purpose,
    reason) reach the terminal. Escape sequences in them could rewrite the
    text shown to the user, and bidirectional overrides could reorder it.
    """
    return "".join("\ufffd" if unicodedata.category(char) in _JSON_ESCAPED_CATEGORIES else char for char in text)


def _labelled_lines(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows) + 2
    lines = []
    for label, value in rows:
        prefix = f"{label}:" if label else ""
        lines.append(f"{prefix.ljust(width)}{printable(value)}")
    return "\n".join(lines)


def seal_summary_json(summary: pb.SealSummary, envelope_path: Path, source_path: Path) -> dict[str, object]:
    """Return the JSON object printed by ``scan --json``."""
    return {
        "artefact_id": summary.artefact_id,
        "level": level_name(summary.level),
        "key": _key_json(summary.key),
        "plaintext_bytes": summary.plaintext_bytes,
        "envelope_bytes": summary.envelope_bytes,
        "envelope_sha256": summary.envelope_sha256,
        "envelope": str(envelope_path),
        "source": str(source_path),
    }


def inspect_json(response: pb.InspectResponse, envelope_bytes: int) -> dict[str, object]:
    """Return the JSON object printed by ``inspect --json``."""
    document = response.document
    return {
        "artefact_id": response.artefact_id,
        "level": level_name(response.level),
        "document": {
            "doc_number": document.doc_number,
            "issued_on": document.issued_on,
            "title": document.title,
            "source_name": document.source_name,
        },
        "keys": [_key_json(key) for key in response.keys],
        "plaintext_bytes": response.plaintext_bytes,
        "envelope_bytes": envelope_bytes,
        "sealed_at": _utc_iso(response.sealed_at),
        "sealed_at_unix": response.sealed_at,
        "format_version": response.format_version,
        "segment_bytes": response.segment_bytes,
        "header_bytes": response.header_bytes,
        "registered": response.registered,
        "registry_mismatch": response.registry_mismatch,
        # The header is authenticated only when the envelope is opened.
        "verified": False,
    }


def render_inspect(response: pb.InspectResponse, envelope_bytes: int, lang: Lang) -> str:
    """Return the ``inspect`` table, ending with the note that nothing is verified yet."""
    document = response.document
    unknown = translate(lang, "word.unknown")
    keys = [
        translate(lang, "inspect.key_value", key_id=key.key_id, version=key.version, algorithm=key.wrap_algorithm)
        for key in response.keys
    ] or [translate(lang, "word.none")]
    plaintext = format_bytes(response.plaintext_bytes, lang) if response.plaintext_bytes else unknown

    rows = [
        (translate(lang, "inspect.artefact_id"), response.artefact_id or unknown),
        (translate(lang, "inspect.level"), level_label(response.level, lang)),
        (translate(lang, "inspect.doc_number"), document.doc_number or unknown),
        (translate(lang, "inspect.issued_on"), _issued_label(document.issued_on, lang)),
        (translate(lang, "inspect.title"), document.title or translate(lang, "word.none")),
        (translate(lang, "inspect.source_name"), document.source_name or unknown),
    ]
    rows += [(translate(lang, "inspect.key"), key) for key in keys]
    rows += [
        (translate(lang, "inspect.plaintext_bytes"), plaintext),
        (translate(lang, "inspect.envelope_bytes"), format_bytes(envelope_bytes, lang)),
        (translate(lang, "inspect.sealed_at"), _time_or_unknown(response.sealed_at, lang)),
        (
            translate(lang, "inspect.registered"),
            translate(lang, "word.yes" if response.registered else "word.no"),
        ),
        (
            translate(lang, "inspect.format"),
            translate(
                lang,
                "inspect.format_value",
                version=response.format_version,
                segment=format_bytes(response.segment_bytes, lang),
                header=format_bytes(response.header_bytes, lang),
            ),
        ),
    ]
    table = _labelled_lines(rows) + "\n\n" + translate(lang, "inspect.unverified")
    if response.registry_mismatch:
        return translate(lang, "inspect.registry_mismatch") + "\n\n" + table
    return table


def access_request_json(request: pb.AccessRequest) -> dict[str, object]:
    """Return the JSON object for one access request."""
    grant: dict[str, object] | None = None
    if request.HasField("grant"):
        grant = {
            "expires_at": _utc_iso(request.grant.expires_at),
            "expires_at_unix": request.grant.expires_at,
            "opens_allowed": request.grant.opens_allowed,
            "opens_used": request.grant.opens_used,
            "copies_allowed": request.grant.copies_allowed,
            "copies_made": request.grant.copies_made,
            "suspended": request.grant.suspended,
        }
    return {
        "request_id": request.request_id,
        "artefact_id": request.artefact_id,
        "level": level_name(request.level),
        "doc_number": request.doc_number,
        "requester": request.requester,
        "purpose": request.purpose,
        "state": _STATE_NAMES.get(request.state, "unspecified"),
        "approvals": [
            {
                "approver": approval.approver,
                "approved_at": _utc_iso(approval.approved_at),
                "approved_at_unix": approval.approved_at,
                "head": approval.head,
            }
            for approval in request.approvals
        ],
        "approvals_required": request.approvals_required,
        "denied_by": request.denied_by or None,
        "deny_reason": request.deny_reason or None,
        "created_at": _utc_iso(request.created_at),
        "created_at_unix": request.created_at,
        "copies": request.copies,
        "recipient": request.recipient or None,
        "awaiting_head": request.awaiting_head,
        "grant": grant,
    }


def open_summary_json(summary: pb.OpenSummary, out_path: Path) -> dict[str, object]:
    """Return the JSON object printed by ``view --json``."""
    return {
        "artefact_id": summary.artefact_id,
        "plaintext_bytes": summary.plaintext_bytes,
        "opens_remaining": summary.opens_remaining,
        "out": str(out_path),
    }


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return flat[: width - 1] + "…"


def render_request_table(requests: Sequence[pb.AccessRequest], lang: Lang) -> str:
    """Return the ``pending`` table, one request per line."""
    header = [
        translate(lang, "column.request_id"),
        translate(lang, "column.level"),
        translate(lang, "column.doc_number"),
        translate(lang, "column.requester"),
        translate(lang, "column.approvals"),
        translate(lang, "column.created_at"),
        translate(lang, "column.purpose"),
    ]
    rows = [
        [
            request.request_id,
            level_label(request.level, lang),
            request.doc_number,
            request.requester,
            f"{len(request.approvals)}/{request.approvals_required}",
            _time_or_unknown(request.created_at, lang),
            _shorten(request.purpose, PURPOSE_COLUMN_WIDTH),
        ]
        for request in requests
    ]

    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def render_request_detail(request: pb.AccessRequest, lang: Lang) -> str:
    """Return the ``show`` table for one request."""
    state = _STATE_NAMES.get(request.state, "unspecified")
    rows = [
        (translate(lang, "show.request_id"), request.request_id),
        (translate(lang, "show.state"), translate(lang, f"state.{state}")),
        (translate(lang, "show.artefact_id"), request.artefact_id),
        (translate(lang, "show.level"), level_label(request.level, lang)),
        (translate(lang, "show.doc_number"), request.doc_number),
        (translate(lang, "show.requester"), request.requester),
        (translate(lang, "show.purpose"), " ".join(request.purpose.split())),
        (translate(lang, "show.created_at"), _time_or_unknown(request.created_at, lang)),
        (translate(lang, "show.approvals"), f"{len(request.approvals)}/{request.approvals_required}"),
    ]
    for approval in request.approvals:
        entry = translate(
            lang,
            "show.approval_entry",
            approver=approval.approver,
            time=_time_or_unknown(approval.approved_at, lang),
        )
        rows.append(("", entry))
    if request.denied_by:
        rows.append((translate(lang, "show.denied_by"), request.denied_by))
        rows.append((translate(lang, "show.deny_reason"), " ".join(request.deny_reason.split())))
    if request.HasField("grant"):
        grant_text = translate(
            lang,
            "show.grant_value",
            used=request.grant.opens_used,
            allowed=request.grant.opens_allowed,
            expires=_time_or_unknown(request.grant.expires_at, lang),
        )
        rows.append((translate(lang, "show.grant"), grant_text))
        if request.grant.copies_allowed:
            rows.append((translate(lang, "show.copies"), f"{request.grant.copies_made}/{request.grant.copies_allowed}"))
        if request.grant.suspended:
            rows.append((translate(lang, "show.suspended"), translate(lang, "word.yes")))
    elif request.copies:
        rows.append((translate(lang, "show.copies"), f"0/{request.copies}"))
    if request.recipient:
        rows.append((translate(lang, "show.recipient"), request.recipient))
    if request.awaiting_head:
        rows.append((translate(lang, "show.awaiting_head"), translate(lang, "word.yes")))
    return _labelled_lines(rows)
