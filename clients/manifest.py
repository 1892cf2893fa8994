"""Handover lists (danh mục bàn giao) as agencies export them from Excel.

Excel writes "CSV UTF-8" with a byte order mark, and plain "CSV" in the
system's code page, with commas or, under a Vietnamese or European locale,
semicolons. This reader accepts UTF-8 with or without BOM and UTF-16 with
BOM ("Unicode Text", tab-separated), picks the delimiter from the header
line, and finds the columns by their Vietnamese headers with or without
diacritics. A file in any other encoding (Windows-1258, TCVN3) is rejected
with a message saying how to re-export it, because decoding it as UTF-8
would turn every Vietnamese letter into mojibake.

A file-level problem raises ClientError (usage). A bad row is collected with
its line number and the reason, so that the batch goes on with the rest.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from niemphong.clients.errors import ClientError, ExitCode
from niemphong.clients.protocol import normalize_text, parse_issued_date, parse_level
from niemphong.v1 import niemphong_pb2 as pb

# A handover list is small; a larger file is almost certainly the wrong file.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_PAGES = 100_000

# Column key -> accepted headers, compared without diacritics, case or spacing.
COLUMNS: dict[str, tuple[str, ...]] = {
    "number": ("STT", "Số thứ tự"),
    "doc_number": ("Số tài liệu", "Số, ký hiệu", "Số ký hiệu"),
    "issued_on": ("Ngày ban hành", "Ngày tháng"),
    "sheets": ("Số tờ",),
    "pages": ("Số trang",),
    "level": ("Độ mật",),
    "protected_until": ("Thời hạn bảo vệ đến", "Thời hạn bảo vệ"),
    "basis": ("Căn cứ xác định độ mật", "Căn cứ"),
    "title": ("Trích yếu", "Trích yếu nội dung", "Tiêu đề"),
    "file": ("Tệp", "Tên tệp", "Tệp quét"),
}
REQUIRED_COLUMNS = ("doc_number", "issued_on", "pages", "level", "file")
# Header as the error message shows it, when a required column is missing.
COLUMN_LABELS = {key: headers[0] for key, headers in COLUMNS.items()}


@dataclass(frozen=True)
class ManifestRow:
    """One valid row of a handover list."""

    line: int
    number: int
    doc_number: str
    issued_on: dt.date
    sheets: int
    pages: int
    level: int
    title: str
    basis: str
    protected_until: dt.date | None
    file: str


@dataclass(frozen=True)
class RowError:
    """A row that cannot be used: its line, document number if known, and a catalog message."""

    line: int
    doc_number: str
    message_id: str
    params: dict[str, object] = field(default_factory=dict)


@dataclass
class Manifest:
    rows: list[ManifestRow]
    errors: list[RowError]


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", normalize_text(text).replace("đ", "d").replace("Đ", "D"))
    letters = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(letters.lower().replace(",", " ").split())


_HEADER_KEYS = {_fold(header): key for key, headers in COLUMNS.items() for header in headers}


def decode_manifest(data: bytes, path: Path) -> str:
    """Return the text of a handover list, or raise ClientError (usage) for an encoding it cannot read."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ClientError(ExitCode.USAGE, "manifest.bad_encoding", path=str(path), line=1) from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ClientError(ExitCode.USAGE, "manifest.bad_encoding", path=str(path), line=line) from exc


def read_manifest(path: Path) -> Manifest:
    """Read and check a handover list; see the module docstring for what it accepts."""
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ClientError(ExitCode.USAGE, "manifest.too_large", path=str(path), max=MAX_MANIFEST_BYTES)
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_missing", path=str(path)) from exc
    except IsADirectoryError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_not_file", path=str(path)) from exc
    except OSError as exc:
        raise ClientError(ExitCode.USAGE, "usage.input_unreadable", path=str(path), error=exc.strerror) from exc
    return parse_manifest(decode_manifest(data, path), path)


def parse_manifest(text: str, path: Path) -> Manifest:
    """Parse the decoded text of a handover list."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ClientError(ExitCode.USAGE, "manifest.empty", path=str(path))
    header_line = lines[0]
    # The header decides the delimiter: its cells hold no commas, semicolons or tabs.
    delimiter = max(",;\t", key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader)

    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _HEADER_KEYS.get(_fold(cell))
        if key is not None and key not in columns:
            columns[key] = index
    missing = [COLUMN_LABELS[key] for key in REQUIRED_COLUMNS if key not in columns]
    if missing:
        raise ClientError(
            ExitCode.USAGE, "manifest.missing_columns", path=str(path), columns=", ".join(missing),
            found=", ".join(cell.strip() for cell in header),
        )

    manifest = Manifest(rows=[], errors=[])
    seen: dict[str, int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        row_or_error = _parse_row(cells, columns, line, len(manifest.rows) + len(manifest.errors) + 1)
        if isinstance(row_or_error, ManifestRow) and row_or_error.doc_number in seen:
            row_or_error = RowError(
                line, row_or_error.doc_number, "manifest.duplicate", {"first_line": seen[row_or_error.doc_number]},
            )
        if isinstance(row_or_error, ManifestRow):
            seen[row_or_error.doc_number] = line
            manifest.rows.append(row_or_error)
        else:
            manifest.errors.append(row_or_error)
    if not manifest.rows and not manifest.errors:
        raise ClientError(ExitCode.USAGE, "manifest.empty", path=str(path))
    return manifest


def _parse_row(cells: list[str], columns: dict[str, int], line: int, position: int) -> ManifestRow | RowError:
    def cell(key: str) -> str:
        index = columns.get(key)
        if index is None or index >= len(cells):
            return ""
        return normalize_text(cells[index])

    doc_number = cell("doc_number")
    if not doc_number:
        return RowError(line, "", "manifest.missing_value", {"column": COLUMN_LABELS["doc_number"]})

    def fail(message_id: str, **params: object) -> RowError:
        return RowError(line, doc_number, message_id, params)

    try:
        issued_on = parse_issued_date(cell("issued_on"))
    except ValueError:
        return fail("manifest.bad_date", column=COLUMN_LABELS["issued_on"], value=cell("issued_on"))

    protected_text = cell("protected_until")
    protected_until = None
    if protected_text:
        try:
            protected_until = parse_issued_date(protected_text)
        except ValueError:
            return fail("manifest.bad_date", column=COLUMN_LABELS["protected_until"], value=protected_text)

    try:
        level = parse_level(cell("level"))
    except ValueError:
        return fail("manifest.bad_level", value=cell("level"))

    counts: dict[str, int] = {}
    for key in ("pages", "sheets", "number"):
        text = cell(key)
        if not text and key != "pages":
            counts[key] = 0
            continue
        if not text.isdigit() or int(text) > MAX_PAGES or (key == "pages" and int(text) == 0):
            return fail("manifest.bad_count", column=COLUMN_LABELS[key], value=text)
        counts[key] = int(text)

    file_name = cell("file")
    if file_name and ("/" in file_name or "\\" in file_name or file_name in (".", "..")):
        return fail("manifest.bad_file_name", value=file_name)
    if not file_name and level != pb.LEVEL_TUYET_MAT:
        return fail("manifest.missing_value", column=COLUMN_LABELS["file"])

    return ManifestRow(
        line=line,
        number=counts["number"] or position,
        doc_number=doc_number,
        issued_on=issued_on,
        sheets=counts["sheets"],
        pages=counts["pages"],
        level=level,
        title=cell("title"),
        basis=cell("basis"),
        protected_until=protected_until,
        file=file_name,
    )
