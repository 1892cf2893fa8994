"""Handover lists (danh mục tài liệu bàn giao) read as the documents to decide.

Agencies export the list from a spreadsheet: UTF-8, usually with a BOM,
comma- or semicolon-separated, dates written dd/mm/yyyy, Vietnamese headers.
Headers are matched without regard to case, diacritics or NFC/NFD, and
columns the rules do not use (Số tờ, Số trang, Tệp) are ignored. A row whose
cells cannot be read is reported as refused by the client, naming the
column, and is not sent.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from niemphong.clients.errors import ClientError, ExitCode
from niemphong.clients.protocol import normalize_text, parse_issued_date, parse_level
from niemphong.v1 import niemphong_pb2 as pb

# Folded header -> field. Several spellings agencies use for the same column.
_HEADERS = {
    "stt": "row",
    "sotailieu": "doc_number",
    "sovanban": "doc_number",
    "sokyhieu": "doc_number",
    "ngaybanhanh": "issued_on",
    "ngayvanban": "issued_on",
    "domat": "level",
    "thoihanbaovetu": "stamp_from",
    "thoihanbaoveden": "stamp_until",
    "cancuxacdinhdomat": "basis",
    "cancu": "basis",
    "giahanden": "extended_until",
    "quyetdinhgiahan": "extension_decision",
    "ngayquyetdinhgiahan": "extension_date",
    "quyetdinhgiaimat": "declassified_by",
    "ngaygiaimat": "declassified_on",
    "luutrulichsu": "historical_archive",
    "loaivanban": "kind",
}
REQUIRED = ("doc_number", "issued_on", "level")
_COLUMN_NAMES = {
    "doc_number": "Số tài liệu",
    "issued_on": "Ngày ban hành",
    "level": "Độ mật",
}
_TRUE = {"co", "x", "yes", "true", "1"}
_FALSE = {"", "khong", "no", "false", "0"}


def fold_header(text: str) -> str:
    """Return a header without diacritics, case, spaces or punctuation."""
    text = unicodedata.normalize("NFC", text).replace("đ", "d").replace("Đ", "D")
    bare = "".join(char for char in unicodedata.normalize("NFD", text) if not unicodedata.combining(char))
    return "".join(char for char in bare.lower() if char.isalnum())


@dataclass(frozen=True)
class RowProblem:
    """Why the client could not read a row: the column as written and the cell value."""

    column: str
    value: str
    message_id: str


@dataclass(frozen=True)
class ManifestRow:
    """One row: its label, and either the document to decide or the problem that stops it."""

    row: str
    doc_number: str
    document: pb.DocumentToDecide | None
    problem: RowProblem | None = None


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read a handover list. Raises ClientError (usage) when the file as a whole cannot be used."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_missing", path=str(path)) from exc
    except OSError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_unreadable", path=str(path), error=exc.strerror) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ClientError(ExitCode.USAGE, "manifest.not_utf8", path=str(path)) from exc

    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ClientError(ExitCode.USAGE, "manifest.empty", path=str(path))
    header_line = lines[0]
    delimiter = max((";", ",", "\t"), key=header_line.count)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))

    written = [normalize_text(name) for name in rows[0]]
    fields = [_HEADERS.get(fold_header(name)) for name in written]
    missing = [_COLUMN_NAMES[name] for name in REQUIRED if name not in fields]
    if missing:
        raise ClientError(ExitCode.USAGE, "manifest.missing_columns", path=str(path), columns=", ".join(missing))
    columns = {field: written[index] for index, field in enumerate(fields) if field}

    result = []
    for number, cells in enumerate(rows[1:], 1):
        values = {field: normalize_text(cell) for field, cell in zip(fields, cells) if field}
        result.append(_row(values, columns, number))
    return result


def _row(values: dict[str, str], columns: dict[str, str], number: int) -> ManifestRow:
    row = values.get("row") or str(number)
    doc_number = values.get("doc_number", "")

    def problem(field: str, message_id: str) -> ManifestRow:
        return ManifestRow(row, doc_number, None, RowProblem(columns[field], values.get(field, ""), message_id))

    level_text = values.get("level", "")
    try:
        level = parse_level(level_text) if level_text else pb.LEVEL_UNSPECIFIED
    except ValueError:
        return problem("level", "manifest.bad_level")

    dates: dict[str, str] = {}
    for field in ("issued_on", "stamp_from", "stamp_until", "extended_until", "extension_date", "declassified_on"):
        cell = values.get(field, "")
        if not cell:
            dates[field] = ""
            continue
        try:
            dates[field] = parse_issued_date(cell).isoformat()
        except ValueError:
            return problem(field, "manifest.bad_date")
    if not dates["issued_on"]:
        return problem("issued_on", "manifest.bad_date")

    archive = fold_header(values.get("historical_archive", ""))
    if archive not in _TRUE | _FALSE:
        return problem("historical_archive", "manifest.bad_flag")

    facts = pb.ClassificationFacts(
        basis=values.get("basis", ""),
        historical_archive=archive in _TRUE,
        standing_decision=values.get("kind", ""),
    )
    if dates["stamp_until"]:
        facts.stamp.CopyFrom(pb.ProtectionStamp(starts_on=dates["stamp_from"], ends_on=dates["stamp_until"]))
    if dates["extended_until"]:
        facts.extension.CopyFrom(pb.ProtectionExtension(
            ends_on=dates["extended_until"], decision=values.get("extension_decision", ""),
            decided_on=dates["extension_date"],
        ))
    if values.get("declassified_by"):
        facts.declassification.CopyFrom(pb.Declassification(
            decision=values["declassified_by"], decided_on=dates["declassified_on"],
        ))

    document = pb.DocumentToDecide(
        row=row, level=level, doc_number=doc_number,  # type: ignore[arg-type]
        issued_on=dates["issued_on"], classification=facts,
    )
    return ManifestRow(row, doc_number, document)


def row_number(label: str) -> int | str:
    """Return the STT as an integer when it is one, else as written."""
    return int(label) if label.isdigit() else label


