"""Reports, tables and export files for the audit commands.

The CSV export is a file format for inspectors: its column names and labels
are always Vietnamese, whatever ``--lang`` says, so that every export has the
same header. Text cells that a spreadsheet would run as a formula get a
leading apostrophe. JSON Lines exports are the log's own entries, English
keys, one per line, so an inspector can recheck their hash links.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence

from niemphong.clients.catalog import CATALOG
from niemphong.clients.i18n import VIETNAM_TIME, Lang, format_count, translate
from niemphong.clients.render import level_label, printable
from niemphong.v1 import archive_pb2, audit_pb2, keys_pb2, niemphong_pb2, token_pb2

# Every method of the API, for the labels test: the client may read the
# generated descriptors but never imports the daemon.
API_FILES = (
    niemphong_pb2.DESCRIPTOR,
    keys_pb2.DESCRIPTOR,
    archive_pb2.DESCRIPTOR,
    audit_pb2.DESCRIPTOR,
    token_pb2.DESCRIPTOR,
)

CSV_COLUMNS = (
    "Số thứ tự",
    "Thời gian (giờ Việt Nam)",
    "Người thực hiện",
    "Vai trò",
    "Thao tác",
    "Mã thao tác",
    "Quyết định",
    "Mã lý do",
    "Mã tài liệu",
    "Số tài liệu",
    "Độ mật",
    "Mã yêu cầu khai thác",
    "Mục đích khai thác",
    "Lý do từ chối",
    "Kết quả phân loại",
    "Mã kết quả phân loại",
    "Điểm áp dụng",
    "Căn cứ xác định độ mật",
    "Quyết định làm căn cứ",
    "Bảo vệ đến ngày",
    "Số byte bản rõ",
    "Số byte phong bì",
    "Khóa",
    "Lượt mở đã dùng",
    "Lượt mở được phép",
    "Mã lượt gọi",
    "Mã băm",
)

DETAIL_COLUMN_WIDTH = 48

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PROBLEM_KINDS = {
    value: name.removeprefix("AUDIT_PROBLEM_")
    for name, value in audit_pb2.AuditProblemKind.items()
    if value != audit_pb2.AUDIT_PROBLEM_KIND_UNSPECIFIED
}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_VIETNAMESE_DATE = re.compile(r"^(?P<day>[0-9]{1,2})/(?P<month>[0-9]{1,2})/(?P<year>[0-9]{4})$")


def api_operations() -> list[str]:
    """Return the audit operation name of every API method, e.g. ``EnvelopeService/Seal``."""
    return [
        f"{service.name}/{method.name}"
        for file in API_FILES
        for service in file.services_by_name.values()
        for method in service.methods
    ]


def operation_label(operation: str, lang: Lang) -> str:
    """Return the user's name of an operation, or the operation itself when the catalog has none."""
    try:
        return translate(lang, f"audit.op.{operation}")
    except KeyError:
        return operation


def classification_label(outcome: str, lang: Lang) -> str:
    """Return the user's name of a classification outcome (``seal``, ``not_secret``, ``refuse``)."""
    if not outcome:
        return ""
    try:
        return translate(lang, f"audit.classification.{outcome}")
    except KeyError:
        return outcome


def _decision_document(facts: Mapping[str, str]) -> str:
    """Return the decision document a record rests on: an extension, a declassification or a standing decision."""
    for name in ("extension_decision", "declassification_decision", "standing_decision"):
        if facts.get(name):
            return facts[name]
    return ""


def decision_label(decision: str, lang: Lang) -> str:
    try:
        return translate(lang, f"audit.decision.{decision}")
    except KeyError:
        return decision


# Time bounds -------------------------------------------------------------------


def parse_time_bound(text: str, *, end_of_day: bool) -> dt.datetime:
    """Parse a --since or --until value into an aware datetime.

    Accepts YYYY-MM-DD and dd/mm/yyyy, meaning the start of that day in
    Vietnam (the end of it when ``end_of_day``), and ISO 8601 date-times;
    one without an offset is Vietnam time. Raises ValueError.
    """
    value = text.strip()
    match = _VIETNAMESE_DATE.match(value)
    if match:
        day = dt.date(int(match["year"]), int(match["month"]), int(match["day"]))
    elif _DATE.match(value):
        day = dt.date.fromisoformat(value)
    else:
        moment = dt.datetime.fromisoformat(value)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=VIETNAM_TIME)

    if end_of_day:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=VIETNAM_TIME)


def unix_seconds(moment: dt.datetime) -> int:
    """Return the Unix time of ``moment`` in whole seconds; the API's bounds have no finer unit."""
    return int(moment.timestamp())


def record_time(record: audit_pb2.AuditRecord) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(record.time)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _local_time(record: audit_pb2.AuditRecord) -> str:
    moment = record_time(record)
    if moment is None:
        return record.time
    return moment.astimezone(VIETNAM_TIME).strftime("%Y-%m-%d %H:%M:%S")


# CSV and JSON Lines -------------------------------------------------------------


def _cell(value: object) -> str:
    text = str(value)
    if text.startswith(_FORMULA_START):
        # A spreadsheet would run "=..." as a formula (CSV injection).
        return "'" + text
    return text


def csv_row(record: audit_pb2.AuditRecord) -> list[str]:
    """Return the CSV cells of one record, in the order of CSV_COLUMNS."""
    facts = record.facts
    key = f"{facts['key_id']} v{facts.get('key_version', '?')}" if "key_id" in facts else ""
    cells: list[object] = [
        record.seq,
        _local_time(record),
        record.identity,
        ", ".join(record.roles),
        operation_label(record.operation, "vi"),
        record.operation,
        decision_label(record.decision, "vi"),
        record.reason,
        record.artefact_id,
        facts.get("doc_number", ""),
        level_label(record.level, "vi") if record.level else "",
        record.access_request_id,
        facts.get("purpose", ""),
        facts.get("deny_reason", ""),
        classification_label(facts.get("decision", ""), "vi"),
        facts.get("decision_code", ""),
        facts.get("rule", ""),
        facts.get("basis", ""),
        _decision_document(facts),
        facts.get("protected_until", ""),
        facts.get("plaintext_bytes", ""),
        facts.get("envelope_bytes", ""),
        key,
        facts.get("opens_used", ""),
        facts.get("opens_allowed", ""),
        record.request_id,
        record.hash,
    ]
    return [_cell(cell) for cell in cells]


def write_csv(records: Iterable[audit_pb2.AuditRecord], out: io.TextIOBase) -> int:
    """Write the header and one row per record; return the number of records."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for record in records:
        writer.writerow(csv_row(record))
        count += 1
    return count


def write_jsonl(records: Iterable[audit_pb2.AuditRecord], out: io.TextIOBase) -> int:
    """Write each record's entry, as stored, one per line; return the number of records."""
    count = 0
    for record in records:
        out.write(record.entry + "\n")
        count += 1
    return count


def record_json(record: audit_pb2.AuditRecord) -> object:
    """Return a record as JSON: the stored entry when it parses, else its fields."""
    try:
        return json.loads(record.entry)
    except json.JSONDecodeError:
        return {"seq": record.seq, "time": record.time, "operation": record.operation, "entry": record.entry}


# Verify -------------------------------------------------------------------------


def problem_kind(problem: audit_pb2.AuditProblem) -> str:
    return _PROBLEM_KINDS.get(problem.kind, "UNKNOWN")


def describe_problem(problem: audit_pb2.AuditProblem, lang: Lang) -> str:
    """Return one sentence naming the problem and the first bad entry."""
    kind = problem_kind(problem)
    message_id = f"audit.problem.{kind}"
    if kind == "TRUNCATED" and not problem.end_seq:
        message_id = "audit.problem.TRUNCATED_LINE"
    params = {
        "seq": format_count(problem.seq, lang),
        "line": format_count(problem.line, lang),
        "expected": format_count(problem.expected_seq, lang),
        "end": format_count(problem.end_seq, lang),
    }
    try:
        return translate(lang, message_id, **params)
    except KeyError:
        return translate(lang, "audit.problem.OTHER", kind=kind, seq=params["seq"], line=params["line"])


def render_verify(report: audit_pb2.VerifyAuditResponse, lang: Lang) -> str:
    """Return the verify report in the user's language."""
    counts = translate(
        lang,
        "audit.verify.counts",
        entries=format_count(report.entries, lang),
        records=format_count(report.records, lang),
        checkpoints=format_count(report.checkpoints, lang),
        last_checkpoint=format_count(report.last_checkpoint_seq, lang),
        log_id=report.log_id or translate(lang, "word.unknown"),
    )
    lines = []
    if report.intact:
        lines.append(translate(lang, "audit.verify.intact"))
        lines.append(counts)
    else:
        lines.append(translate(lang, "audit.verify.not_intact", problem=describe_problem(report.problem, lang)))
        lines.append(counts)
        lines.append(translate(lang, "audit.verify.advice"))
    lines += [translate(lang, "audit.verify.warning", message=describe_problem(w, lang)) for w in report.warnings]
    return "\n".join(lines)


def _problem_json(problem: audit_pb2.AuditProblem) -> dict[str, object]:
    return {
        "kind": problem_kind(problem).lower(),
        "seq": problem.seq,
        "line": problem.line,
        "expected_seq": problem.expected_seq,
        "end_seq": problem.end_seq,
        "detail": problem.detail,
    }


def verify_json(report: audit_pb2.VerifyAuditResponse) -> dict[str, object]:
    """Return the JSON object printed by ``audit verify --json``."""
    return {
        "intact": report.intact,
        "log_id": report.log_id,
        "entries": report.entries,
        "records": report.records,
        "checkpoints": report.checkpoints,
        "last_seq": report.last_seq,
        "last_checkpoint_seq": report.last_checkpoint_seq,
        "problem": _problem_json(report.problem) if report.HasField("problem") else None,
        "warnings": [_problem_json(warning) for warning in report.warnings],
    }


# History ------------------------------------------------------------------------


def _shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _detail(record: audit_pb2.AuditRecord, lang: Lang) -> str:
    facts = record.facts
    parts = []
    if "purpose" in facts:
        parts.append(translate(lang, "audit.detail.purpose", purpose=facts["purpose"]))
    if "deny_reason" in facts:
        parts.append(translate(lang, "audit.detail.deny_reason", reason=facts["deny_reason"]))
    if "approvals" in facts and "approvals_required" in facts:
        parts.append(translate(lang, "audit.detail.approvals", count=facts["approvals"], required=facts["approvals_required"]))
    if "opens_used" in facts and "opens_allowed" in facts:
        parts.append(translate(lang, "audit.detail.opens", used=facts["opens_used"], allowed=facts["opens_allowed"]))
    if record.access_request_id and not parts:
        parts.append(translate(lang, "audit.detail.request", request_id=record.access_request_id[:8]))
    if "doc_number" in facts:
        parts.append(translate(lang, "audit.detail.doc_number", doc_number=facts["doc_number"]))
    return _shorten("; ".join(parts), DETAIL_COLUMN_WIDTH)


def reason_label(reason: str, lang: Lang) -> str:
    """Return the short label of niemphongd's error reason in ``lang``, or the code when it has none."""
    message_id = f"reason_label.{reason}"
    if message_id in CATALOG:
        return translate(lang, message_id)
    return reason


def render_history(records: Sequence[audit_pb2.AuditRecord], lang: Lang) -> str:
    """Return the ``audit show`` table, one record per line, oldest first."""
    header = [
        translate(lang, "audit.column.seq"),
        translate(lang, "audit.column.time"),
        translate(lang, "audit.column.operation"),
        translate(lang, "audit.column.identity"),
        translate(lang, "audit.column.decision"),
        translate(lang, "audit.column.reason"),
        translate(lang, "audit.column.detail"),
    ]
    rows = [
        [
            str(record.seq),
            _local_time(record),
            operation_label(record.operation, lang),
            record.identity,
            decision_label(record.decision, lang),
            reason_label(record.reason, lang),
            _detail(record, lang),
        ]
        for record in records
    ]

    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)
