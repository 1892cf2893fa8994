"""Handover lists as Excel exports them, and page counts of scans."""

from __future__ import annotations

import datetime as dt
import io
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from conftest import SAMPLES, SHARED_SAMPLES
from niemphong.clients.errors import ClientError, ExitCode
from niemphong.clients.manifest import describe_problem, read_manifest
from niemphong.clients.pages import PageCountError, count_pages
from niemphong.v1 import niemphong_pb2 as pb

HEADER = "STT;Số tài liệu;Ngày ban hành;Số tờ;Số trang;Độ mật;Thời hạn bảo vệ đến;Căn cứ xác định độ mật;Tệp"
ROWS = [
    "1;1479/UBND-NC;20/05/2025;2;4;Mật;;Điểm a Khoản 2 Điều 1;cong-van.pdf",
    "2;12/BB-TCT;02/11/2024;1;2;Tối mật;30/09/2026;Khoản 1 Điều 1;bien-ban.tiff",
    "3;03/BC-TM;10/01/2024;3;5;Tuyệt mật;;Khoản 1 Điều 1;",
]


def write_list(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "danh-muc.csv"
    path.write_bytes(text.encode(encoding))
    return path


needs_shared = pytest.mark.skipif(
    not SHARED_SAMPLES.exists(), reason="the shared samples folder is not beside this clone"
)


@needs_shared
def test_manifest_shared_sample_read() -> None:
    manifest = read_manifest(SHARED_SAMPLES / "danh-muc-ban-giao.csv", batch=True)

    assert manifest.invalid_rows == []
    assert [row.doc_number for row in manifest.valid_rows] == ["1479/UBND-NC", "12/BB-TCT", "07/GĐN", "03/BC-TM"]
    assert [row.pages for row in manifest.valid_rows] == [4, 2, 1, 5]
    assert [row.level for row in manifest.valid_rows] == [pb.LEVEL_MAT, pb.LEVEL_TOI_MAT, pb.LEVEL_MAT, pb.LEVEL_TUYET_MAT]
    assert manifest.valid_rows[2].protected_until == dt.date(2026, 9, 30)
    assert manifest.valid_rows[0].basis == "Điểm a Khoản 2 Điều 1 danh mục mẫu"
    assert manifest.valid_rows[3].file == ""


def test_manifest_repository_sample_read() -> None:
    manifest = read_manifest(SAMPLES / "danh-muc-mau.csv", batch=True)

    assert manifest.invalid_rows == []
    assert [row.pages for row in manifest.valid_rows] == [3, 2, 1, 4]
    assert manifest.valid_rows[3].level == pb.LEVEL_TUYET_MAT


@pytest.mark.parametrize(
    ("prefix", "delimiter", "newline"),
    [("\ufeff", ";", "\r\n"), ("", ";", "\n"), ("\ufeff", ",", "\r\n"), ("", ",", "\n")],
)
def test_manifest_bom_and_delimiters_accepted(tmp_path: Path, prefix: str, delimiter: str, newline: str) -> None:
    text = prefix + newline.join(line.replace(";", delimiter) for line in [HEADER, *ROWS]) + newline

    manifest = read_manifest(write_list(tmp_path, text), batch=True)

    assert [row.doc_number for row in manifest.valid_rows] == ["1479/UBND-NC", "12/BB-TCT", "03/BC-TM"]
    assert manifest.valid_rows[1].issued_on == dt.date(2024, 11, 2)


def test_manifest_utf16_unicode_text_accepted(tmp_path: Path) -> None:
    text = "\n".join(line.replace(";", "\t") for line in [HEADER, *ROWS]) + "\n"

    manifest = read_manifest(write_list(tmp_path, "\ufeff" + text, "utf-16-le"), batch=True)

    assert len(manifest.valid_rows) == 3


def test_manifest_nfd_headers_and_values_accepted(tmp_path: Path) -> None:
    text = unicodedata.normalize("NFD", "\n".join([HEADER, *ROWS]))

    manifest = read_manifest(write_list(tmp_path, text), batch=True)

    assert manifest.valid_rows[1].level == pb.LEVEL_TOI_MAT
    assert manifest.valid_rows[1].basis == unicodedata.normalize("NFC", "Khoản 1 Điều 1")


# Grave, acute, tilde, hook above and dot below: the five Vietnamese tone marks.
TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def encode_windows_1258(text: str) -> bytes:
    """Encode as Excel does under a Vietnamese Windows locale: a base letter, then a combining tone mark."""
    out = bytearray()
    for char in unicodedata.normalize("NFC", text):
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", char)
            tones = "".join(mark for mark in decomposed if mark in TONE_MARKS)
            base = unicodedata.normalize("NFC", "".join(mark for mark in decomposed if mark not in TONE_MARKS))
            out += (base + tones).encode("cp1258")
    return bytes(out)


def test_manifest_windows_1258_rejected_without_mojibake(tmp_path: Path) -> None:
    path = tmp_path / "danh-muc.csv"
    path.write_bytes(encode_windows_1258("\n".join([HEADER, *ROWS])))

    with pytest.raises(ClientError) as error:
        read_manifest(path)

    assert error.value.exit_code == ExitCode.USAGE
    message = error.value.localize("vi")
    assert "không ở dạng UTF-8" in message
    assert "CSV UTF-8" in message
    assert "Ã" not in message


def test_manifest_missing_column_named(tmp_path: Path) -> None:
    path = write_list(tmp_path, "STT;Số tài liệu;Ngày ban hành;Số trang;Tệp\n1;1/A;01/01/2025;2;a.pdf\n")

    with pytest.raises(ClientError) as error:
        read_manifest(path)

    assert "Độ mật" in error.value.localize("vi")


def test_manifest_batch_needs_pages_and_file_columns(tmp_path: Path) -> None:
    path = write_list(tmp_path, "STT;Số tài liệu;Ngày ban hành;Độ mật\n1;1/A;01/01/2025;Mật\n")

    assert read_manifest(path).valid_rows[0].doc_number == "1/A"
    with pytest.raises(ClientError) as error:
        read_manifest(path, batch=True)

    message = error.value.localize("vi")
    assert "Số trang" in message
    assert "Tệp" in message


def test_manifest_row_classification_facts_read(tmp_path: Path) -> None:
    text = "\n".join([
        "STT;Số tài liệu;Ngày ban hành;Số trang;Độ mật;Thời hạn bảo vệ từ;Thời hạn bảo vệ đến;Gia hạn đến;"
        "Quyết định gia hạn;Quyết định giải mật;Ngày giải mật;Lưu trữ lịch sử;Căn cứ;Tệp",
        "1;1/A;01/01/2020;2;Mật;01/01/2020;31/12/2024;31/12/2030;QĐ 5/QĐ-UBND;;;;Khoản 1 Điều 1;a.pdf",
        "2;2/B;01/01/2015;1;Tối mật;;;;;QĐ 9/QĐ-UBND;02/03/2025;có;;b.pdf",
    ])

    rows = read_manifest(write_list(tmp_path, text), batch=True).valid_rows

    first = rows[0].document.classification
    assert first.stamp.starts_on == "2020-01-01"
    assert first.stamp.ends_on == "2024-12-31"
    assert first.extension.ends_on == "2030-12-31"
    assert first.extension.decision == "QĐ 5/QĐ-UBND"
    assert first.basis == "Khoản 1 Điều 1"
    assert rows[0].protected_until == dt.date(2024, 12, 31)
    second = rows[1].document.classification
    assert second.declassification.decision == "QĐ 9/QĐ-UBND"
    assert second.declassification.decided_on == "2025-03-02"
    assert second.historical_archive is True
    assert not second.HasField("stamp")


def test_manifest_problem_described_with_column(tmp_path: Path) -> None:
    row = "4;4/X;31/02/2025;1;1;Mật;;;x.pdf"
    manifest = read_manifest(write_list(tmp_path, "\n".join([HEADER, row]) + "\n"), batch=True)

    problem = manifest.invalid_rows[0].problem
    assert problem is not None
    assert describe_problem(problem, "vi") == 'cột "Ngày ban hành": ngày không hợp lệ: "31/02/2025"; dùng dd/mm/yyyy hoặc YYYY-MM-DD'
    assert describe_problem(problem, "en").startswith('column "Ngày ban hành": invalid date')


def test_manifest_empty_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ClientError) as error:
        read_manifest(write_list(tmp_path, "\ufeff"))

    assert error.value.message_id == "manifest.empty"


@pytest.mark.parametrize(
    ("row", "message_id"),
    [
        ("4;4/X;31/02/2025;1;1;Mật;;;x.pdf", "manifest.bad_date"),
        ("4;4/X;2025/05/01;1;1;Mật;;;x.pdf", "manifest.bad_date"),
        ("4;4/X;01/05/2025;1;1;Mật;hôm qua;;x.pdf", "manifest.bad_date"),
        ("4;4/X;01/05/2025;1;1;Bí mật;;;x.pdf", "manifest.bad_level"),
        ("4;4/X;01/05/2025;1;hai;Mật;;;x.pdf", "manifest.bad_count"),
        ("4;4/X;01/05/2025;1;0;Mật;;;x.pdf", "manifest.bad_count"),
        ("4;4/X;01/05/2025;-1;1;Mật;;;x.pdf", "manifest.bad_count"),
        ("4;4/X;01/05/2025;1;1;Mật;;;", "manifest.missing_value"),
        ("4;;01/05/2025;1;1;Mật;;;x.pdf", "manifest.missing_value"),
        ("4;4/X;01/05/2025;1;1;Mật;;;../x.pdf", "manifest.bad_file_name"),
        ("4;12/BB-TCT;01/05/2025;1;1;Mật;;;x.pdf", "manifest.duplicate"),
    ],
)
def test_manifest_bad_row_reported_and_rest_kept(tmp_path: Path, row: str, message_id: str) -> None:
    manifest = read_manifest(write_list(tmp_path, "\n".join([HEADER, *ROWS, row]) + "\n"), batch=True)

    assert len(manifest.valid_rows) == 3
    assert [bad.problem.message_id for bad in manifest.invalid_rows if bad.problem] == [message_id]
    assert manifest.invalid_rows[0].line == 5
    assert manifest.rows[3] == manifest.invalid_rows[0]


# Page counts -------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    ("name", "pages"), [("cong-van-so-hoa.pdf", 4), ("bien-ban-hop.tiff", 2), ("giay-de-nghi.jpg", 1)],
)
def test_pages_of_shared_samples(name: str, pages: int) -> None:
    assert count_pages(SHARED_SAMPLES / name) == pages


@pytest.mark.parametrize(
    ("name", "pages"), [("cong-van-mau.pdf", 3), ("bien-ban-mau.tiff", 2), ("giay-de-nghi-mau.jpg", 1)],
)
def test_pages_of_repository_samples(name: str, pages: int) -> None:
    assert count_pages(SAMPLES / name) == pages


def test_pages_of_png(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    Image.new("L", (20, 30), 255).save(path)

    assert count_pages(path) == 1


def test_pages_of_unknown_format_rejected(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("không phải bản quét")

    with pytest.raises(PageCountError) as error:
        count_pages(path)

    assert error.value.kind == "format"


def test_pages_of_gif_rejected(tmp_path: Path) -> None:
    path = tmp_path / "scan.gif"
    Image.new("L", (20, 30), 255).save(path)

    with pytest.raises(PageCountError) as error:
        count_pages(path)

    assert error.value.kind == "format"


def test_pages_of_damaged_pdf_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n" + b"\x00" * 200)

    with pytest.raises(PageCountError) as error:
        count_pages(path)

    assert error.value.kind == "damaged"


def test_pages_of_truncated_tiff_rejected(tmp_path: Path) -> None:
    data = (SAMPLES / "bien-ban-mau.tiff").read_bytes()
    buffer = io.BytesIO(data[: len(data) // 2])
    path = tmp_path / "cut.tiff"
    path.write_bytes(buffer.getvalue())

    with pytest.raises(PageCountError):
        count_pages(path)
