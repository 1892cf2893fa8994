"""Labels, CSV rows, time bounds and problem sentences of the audit commands."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from niemphong.clients.audit_render import (
    CSV_COLUMNS,
    api_operations,
    csv_row,
    describe_problem,
    parse_time_bound,
    reason_label,
    render_history,
    write_csv,
)
from niemphong.clients.errors import REASON_RULES
from niemphong.clients.i18n import VIETNAM_TIME, translate
from niemphong.v1 import audit_pb2
from niemphong.v1 import niemphong_pb2 as pb


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_audit_labels_cover_every_operation(lang: str) -> None:
    for operation in api_operations():
        assert translate(lang, f"audit.op.{operation}"), operation


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_audit_problem_sentences_cover_every_kind(lang: str) -> None:
    for name, value in audit_pb2.AuditProblemKind.items():
        if value == audit_pb2.AUDIT_PROBLEM_KIND_UNSPECIFIED:
            continue
        kind = name.removeprefix("AUDIT_PROBLEM_")
        problem = audit_pb2.AuditProblem(kind=value, seq=7, line=8, expected_seq=5, end_seq=9)
        sentence = describe_problem(problem, lang)
        assert sentence != translate(lang, "audit.problem.OTHER", kind=kind, seq="7", line="8"), name
        assert "7" in sentence, name


def sealed_record(**facts: str) -> audit_pb2.AuditRecord:
    return audit_pb2.AuditRecord(
        seq=12, time="2025-06-01T03:04:05.123456Z", request_id="0123456789abcdef", identity="scanner",
        roles=["scanner"], operation="EnvelopeService/Seal", decision="allowed", status="OK",
        artefact_id="ab" * 16, level=pb.LEVEL_MAT, facts=facts, hash="cd" * 32,
    )


def row_by_column(record: audit_pb2.AuditRecord) -> dict[str, str]:
    return dict(zip(CSV_COLUMNS, csv_row(record), strict=True))


def test_audit_csv_row_vietnamese_time_and_labels() -> None:
    row = row_by_column(sealed_record(doc_number="15/UBND-VP", plaintext_bytes="1000"))

    assert row["Thời gian (giờ Việt Nam)"] == "2025-06-01 10:04:05"
    assert row["Thao tác"] == "Niêm phong"
    assert row["Quyết định"] == "Cho phép"
    assert row["Độ mật"] == "Mật"
    assert row["Số tài liệu"] == "15/UBND-VP"
    assert row["Số byte bản rõ"] == "1000"


def test_audit_csv_row_classification_grounds() -> None:
    row = row_by_column(sealed_record(
        decision="seal", decision_code="SEALED", basis="Điểm a Khoản 2 Điều 1 Quyết định 1722/QĐ-TTg",
        protected_until="2035-05-20",
    ))

    assert row["Kết quả phân loại"] == "Niêm phong"
    assert row["Mã kết quả phân loại"] == "SEALED"
    assert row["Căn cứ xác định độ mật"] == "Điểm a Khoản 2 Điều 1 Quyết định 1722/QĐ-TTg"
    assert row["Bảo vệ đến ngày"] == "2035-05-20"


def test_audit_csv_row_extension_decision() -> None:
    record = sealed_record(extension_decision="Quyết định 05/QĐ-UBND", protected_until="2040-01-01")
    record.operation = "PolicyService/RecordExtension"
    row = row_by_column(record)

    assert row["Thao tác"] == "Ghi gia hạn bảo vệ"
    assert row["Quyết định làm căn cứ"] == "Quyết định 05/QĐ-UBND"


def test_audit_csv_formula_cell_neutralized() -> None:
    row = row_by_column(sealed_record(doc_number="=HYPERLINK(\"x\")", purpose="+1"))

    assert row["Số tài liệu"] == "'=HYPERLINK(\"x\")"
    assert row["Mục đích khai thác"] == "'+1"


def test_audit_csv_header_and_count() -> None:
    out = io.StringIO()

    count = write_csv([sealed_record(), sealed_record()], out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))

    assert count == 2
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 3


@pytest.mark.parametrize(
    ("text", "end_of_day", "expected"),
    [
        ("2025-06-01", False, dt.datetime(2025, 6, 1, tzinfo=VIETNAM_TIME)),
        ("2025-06-01", True, dt.datetime(2025, 6, 2, tzinfo=VIETNAM_TIME)),
        ("01/06/2025", False, dt.datetime(2025, 6, 1, tzinfo=VIETNAM_TIME)),
        ("2025-06-01T08:30", False, dt.datetime(2025, 6, 1, 8, 30, tzinfo=VIETNAM_TIME)),
        ("2025-06-01T01:30:00+00:00", False, dt.datetime(2025, 6, 1, 1, 30, tzinfo=dt.timezone.utc)),
    ],
)
def test_audit_time_bound_forms(text: str, end_of_day: bool, expected: dt.datetime) -> None:
    assert parse_time_bound(text, end_of_day=end_of_day) == expected


@pytest.mark.parametrize("text", ["hôm qua", "2025-13-01", "32/01/2025", ""])
def test_audit_time_bound_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_bound(text, end_of_day=False)


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_audit_reason_labels_cover_every_reason(lang: str) -> None:
    for reason in REASON_RULES:
        assert reason_label(reason, lang) != reason, reason


def test_audit_history_reason_column_localized() -> None:
    denied = audit_pb2.AuditRecord(
        seq=13, time="2025-06-01T03:04:05Z", identity="viewer", operation="EnvelopeService/Open",
        decision="denied", status="PERMISSION_DENIED", reason="NOT_APPROVED", artefact_id="ab" * 16,
    )

    vietnamese = render_history([denied], "vi")
    english = render_history([denied], "en")

    assert "NOT_APPROVED" not in vietnamese
    assert "chưa được phê duyệt" in vietnamese
    assert "not approved" in english


def test_audit_reason_label_unknown_code_kept() -> None:
    assert reason_label("SOMETHING_NEW", "vi") == "SOMETHING_NEW"
