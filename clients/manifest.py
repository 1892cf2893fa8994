"""Handover lists (danh mục tài liệu bàn giao) as agencies export them from Excel.

Excel writes "CSV UTF-8" with a byte order mark, and plain "CSV" in the
system's code page, with commas or, under a Vietnamese or European locale,
semicolons. This reader accepts UTF-8 with or without BOM and UTF-16 with
BOM ("Unicode Text", tab-separated), picks the delimiter from the header
line, and finds the columns by their Vietnamese headers, compared without
case, diacritics, spacing, punctuation or NFC/NFD differences. A file in any
other encoding (Windows-1258, TCVN3) is rejected with a message saying how
to re-export it, because decoding it as UTF-8 would turn every Vietnamese
letter into mojibake.

Two commands read the list. ``policy check`` needs the document number,
issue date and level, and reads the classification facts (protection stamp,
extension, declassification, basis, kind). ``scan --manifest`` needs the
pages and the scan file too, and also reads sheets and title. A problem in
the file as a whole raises ClientError (usage); a row that cannot be used
keeps its place in the list with the problem that stops it, so that the
command reports it and goes on with the rest.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from niemphong.clients.errors import ClientError, ExitCode, os_error_text
from niemphong.clients.i18n import Lang, translate
from niemphong.clients.protocol import normalize_text, parse_issued_date, parse_level
from niemphong.clients.render import printable
from niemphong.v1 import niemphong_pb2 as pb

# A handover list is small; a larger file is almost certainly the wrong file.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_PAGES = 100_000

# Folded header -> field. Several spellings agencies use for the same column.
_HEADERS = {
    "stt": "row",
    "sothutu": "row",
    "sotailieu": "doc_number",
    "sovanban": "doc_number",
    "sokyhieu": "doc_number",
    "ngaybanhanh": "issued_on",
    "ngayvanban": "issued_on",
    "ngaythang": "issued_on",
    "soto": "sheets",
    "sotrang": "pages",
    "domat": "level",
    "thoihanbaovetu": "stamp_from",
    "thoihanbaoveden": "stamp_until",
    "thoihanbaove": "stamp_until",
    "cancuxacdinhdomat": "basis",
    "cancu": "basis",
    "giahanden": "extended_until",
    "quyetdinhgiahan": "extension_decision",
    "ngayquyetdinhgiahan": "extension_date",
    "quyetdinhgiaimat": "declassified_by",
    "ngaygiaimat": "declassified_on",
    "luutrulichsu": "historical_archive",
    "loaivanban": "kind",
    "trichyeu": "title",
    "trichyeunoidung": "title",
    "tieude": "title",
    "tep": "file",
    "tentep": "file",
    "tepquet": "file",
}
# Header as messages show it, for a column that is missing from the file.
COLUMN_LABELS = {
    "row": "STT",
    "doc_number": "Số tài liệu",
    "issued_on": "Ngày ban hành",
    "sheets": "Số tờ",
    "pages": "Số trang",
    "level": "Độ mật",
    "title": "Trích yếu",
    "file": "Tệp",
}
REQUIRED = ("doc_number", "issued_on", "level")
BATCH_REQUIRED = (*REQUIRED, "pages", "file")
_DATE_FIELDS = ("issued_on", "stamp_from", "stamp_until", "extended_until", "extension_date", "declassified_on")
_TRUE = {"co", "x", "yes", "true", "1"}
_FALSE = {"", "khong", "no", "false", "0"}


def fold_header(text: str) -> str:
    """Return a header without diacritics, case, spaces or punctuation."""
    text = unicodedata.normalize("NFC", text).replace("đ", "d").replace("Đ", "D")
    bare = "".join(char for char in unicodedata.normalize("NFD", text) if not unicodedata.combining(char))
    return "".join(char for char in bare.lower() if char.isalnum())


@dataclass(frozen=True)
class RowProblem:
    """Why a row cannot be used: the column as written, the cell value and a catalog message."""

    column: str
    value: str
    message_id: str
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ManifestRow:
    """One row of the list: the document to decide, or the problem that stops it.

    ``line`` is the row's line in the file (the header is line 1), ``row``
    its STT as written or else its position among the rows. ``sheets``,
    ``pages``, ``title`` and ``file`` are read for batch scanning only.
    """

    line: int
    row: str
    doc_number: str
    document: pb.DocumentToDecide | None
    problem: RowProblem | None = None
    sheets: int = 0
    pages: int = 0
    title: str = ""
    file: str = ""

    @property
    def number(self) -> int:
        """The STT as an integer, or 0 when it is not one."""
        return int(self.row) if self.row.isdigit() else 0

    @property
    def level(self) -> int:
        return self.document.level if self.document is not None else pb.LEVEL_UNSPECIFIED

    @property
    def issued_on(self) -> dt.date | None:
        return dt.date.fromisoformat(self.document.issued_on) if self.document is not None else None

    @property
    def basis(self) -> str:
        return self.document.classification.basis if self.document is not None else ""

    @property
    def protected_until(self) -> dt.date | None:
        """The last day of a protection-period stamp (Thời hạn bảo vệ đến), if the row has one."""
        if self.document is None or not self.document.classification.HasField("stamp"):
            return None
        return dt.date.fromisoformat(self.document.classification.stamp.ends_on)


@dataclass(frozen=True)
class Manifest:
    """Every data row of a list, in file order."""

    rows: list[ManifestRow]

    @property
    def valid_rows(self) -> list[ManifestRow]:
        return [row for row in self.rows if row.problem is None]

    @property
    def invalid_rows(self) -> list[ManifestRow]:
        return [row for row in self.rows if row.problem is not None]


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


def read_manifest(path: Path, *, batch: bool = False) -> Manifest:
    """Read a handover list; with ``batch`` the pages and scan file of each row are required too."""
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
        raise ClientError(ExitCode.USAGE, "usage.input_unreadable", path=str(path), error=os_error_text(exc)) from exc
    return parse_manifest(decode_manifest(data, path), path, batch=batch)


def parse_manifest(text: str, path: Path, *, batch: bool = False) -> Manifest:
    """Parse the decoded text of a handover list."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ClientError(ExitCode.USAGE, "manifest.empty", path=str(path))
    # The header decides the delimiter: its cells contain no commas, semicolons or tabs.
    delimiter = max(",;\t", key=lines[0].count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [normalize_text(cell) for cell in next(reader)]

    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        key = _HEADERS.get(fold_header(cell))
        if key is not None and key not in columns:
            columns[key] = index
    missing = [COLUMN_LABELS[key] for key in (BATCH_REQUIRED if batch else REQUIRED) if key not in columns]
    if missing:
        raise ClientError(
            ExitCode.USAGE, "manifest.missing_columns", path=str(path), columns=", ".join(missing),
            found=", ".join(header),
        )
    written = {key: header[index] for key, index in columns.items()}

    rows: list[ManifestRow] = []
    first_lines: dict[str, int] = {}
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        values = {key: normalize_text(cells[index]) if index < len(cells) else "" for key, index in columns.items()}
        row = _parse_row(values, written, reader.line_num, len(rows) + 1, batch)
        if row.problem is None and row.doc_number in first_lines:
            row = _with_problem(
                row, RowProblem(written["doc_number"], row.doc_number, "manifest.duplicate",
                                {"first_line": first_lines[row.doc_number]}),
            )
        if row.problem is None:
            first_lines[row.doc_number] = row.line
        rows.append(row)
    if not rows:
        raise ClientError(ExitCode.USAGE, "manifest.empty", path=str(path))
    return Manifest(rows)


def _with_problem(row: ManifestRow, problem: RowProblem) -> ManifestRow:
    return ManifestRow(row.line, row.row, row.doc_number, None, problem)


def _parse_row(values: dict[str, str], written: dict[str, str], line: int, position: int, batch: bool) -> ManifestRow:
    label = values.get("row") or str(position)
    doc_number = values.get("doc_number", "")

    def problem(key: str, message_id: str, **params: object) -> ManifestRow:
        column = written.get(key, COLUMN_LABELS.get(key, key))
        return ManifestRow(line, label, doc_number, None, RowProblem(column, values.get(key, ""), message_id, params))

    if not doc_number:
        return problem("doc_number", "manifest.missing_value")

    level_text = values.get("level", "")
    if not level_text and batch:
        return problem("level", "manifest.missing_value")
    try:
        # An empty level leaves it to a standing decision for the kind of document.
        level = parse_level(level_text) if level_text else pb.LEVEL_UNSPECIFIED
    except ValueError:
        return problem("level", "manifest.bad_level")

    dates: dict[str, str] = {}
    for key in _DATE_FIELDS:
        cell = values.get(key, "")
        if not cell:
            dates[key] = ""
            continue
        try:
            dates[key] = parse_issued_date(cell).isoformat()
        except ValueError:
            return problem(key, "manifest.bad_date")
    if not dates["issued_on"]:
        return problem("issued_on", "manifest.bad_date")

    archive = fold_header(values.get("historical_archive", ""))
    if archive not in _TRUE | _FALSE:
        return problem("historical_archive", "manifest.bad_flag")

    counts = {"sheets": 0, "pages": 0}
    file_name = ""
    if batch:
        for key in ("pages", "sheets"):
            text = values.get(key, "")
            if not text and key == "sheets":
                continue
            if not text.isdigit() or int(text) > MAX_PAGES or (key == "pages" and int(text) == 0):
                return problem(key, "manifest.bad_count")
            counts[key] = int(text)
        file_name = values.get("file", "")
        if file_name and ("/" in file_name or "\\" in file_name or file_name in (".", "..")):
            return problem("file", "manifest.bad_file_name")
        # Only a Tuyệt mật row may come without a scan: it is never digitized.
        if not file_name and level != pb.LEVEL_TUYET_MAT:
            return problem("file", "manifest.missing_value")

    document = pb.DocumentToDecide(
        row=label, level=level, doc_number=doc_number,  # type: ignore[arg-type]
        issued_on=dates["issued_on"], classification=_classification(values, dates, archive in _TRUE),
    )
    return ManifestRow(
        line, label, doc_number, document, None,
        sheets=counts["sheets"], pages=counts["pages"], title=values.get("title", ""), file=file_name,
    )


def _classification(values: dict[str, str], dates: dict[str, str], historical_archive: bool) -> pb.ClassificationFacts:
    facts = pb.ClassificationFacts(
        basis=values.get("basis", ""),
        historical_archive=historical_archive,
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
    return facts


def describe_problem(problem: RowProblem, lang: Lang) -> str:
    """Return 'cột "COLUMN": DETAIL' for a row problem, in ``lang``."""
    detail = translate(lang, problem.message_id, value=printable(problem.value), **problem.params)
    return translate(lang, "manifest.row_column", column=printable(problem.column), detail=detail)


def row_number(label: str) -> int | str:
    """Return the STT as an integer when it is one, else as written."""
    return int(label) if label.isdigit() else label
