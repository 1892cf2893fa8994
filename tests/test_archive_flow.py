"""The archivist's day through the command line, against a real daemon on a SoftHSM2 token.

Batches of scans with their handover list, the minutes PDF, printed copies
with their stamps, requests for another agency, incidents and removing
sources. PDFs are rendered to images with PDFium and their text layer is
read back, since no OCR is available.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import unicodedata
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pypdfium2 as pdfium
import pytest
from prometheus_client.parser import text_string_to_metric_families
from PIL import Image

from conftest import (
    BIN,
    SAMPLES,
    SHARED_SAMPLES,
    DaemonProcess,
    DevEnvironment,
    error_reason,
    grant_access,
    open_bytes,
    seal_bytes,
    state_query,
)
from niemphong.clients.manifest import ManifestRow, read_manifest
from niemphong.v1 import archive_pb2 as apb
from niemphong.v1 import archive_pb2_grpc as apb_grpc
from niemphong.v1 import niemphong_pb2 as pb
from niemphong.v1 import niemphong_pb2_grpc as pb_grpc

VIETNAM = dt.timezone(dt.timedelta(hours=7))


def sample_set() -> tuple[Path, Path]:
    """Return the scans folder and handover list: the shared samples when present, else the repository's."""
    if SHARED_SAMPLES.exists():
        return SHARED_SAMPLES, SHARED_SAMPLES / "danh-muc-ban-giao.csv"
    return SAMPLES, SAMPLES / "danh-muc-mau.csv"


def expected_status(row: ManifestRow) -> str:
    """Return the batch status the classification rules give a row of a sample list today."""
    if row.level == pb.LEVEL_TUYET_MAT:
        return "refused"
    # A protection stamp whose last day has passed makes the document no
    # longer secret; the sample lists have no other declassifying fact.
    if row.protected_until is not None and row.protected_until < dt.datetime.now(VIETNAM).date():
        return "not_secret"
    return "sealed"


def pdf_text(path: Path) -> list[str]:
    """Return the text layer of every page."""
    document = pdfium.PdfDocument(str(path))
    try:
        return [document[index].get_textpage().get_text_range() for index in range(len(document))]
    finally:
        document.close()


def render_pages(path: Path, folder: Path) -> list[Image.Image]:
    """Render every page to a PNG in ``folder`` (kept for a person to look at) and return the images."""
    document = pdfium.PdfDocument(str(path))
    images = []
    try:
        for index in range(len(document)):
            image = document[index].render(scale=1).to_pil().convert("RGB")
            image.save(folder / f"{path.stem}-page{index + 1}.png")
            images.append(image)
    finally:
        document.close()
    return images


def red_pixels(image: Image.Image) -> int:
    """Count stamp-red pixels in the top right quarter of a page."""
    width, height = image.size
    corner = image.crop((width // 2, 0, width, height // 4))
    data = corner.tobytes()
    return sum(1 for i in range(0, len(data), 3) if data[i] > 150 and data[i + 1] < 80 and data[i + 2] < 80)


class Batch:
    """One batch run through the command line: open, permit, scan, close, minutes."""

    def __init__(self, env: DevEnvironment, tmp_path: Path, manifest: Path, scans: Path) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.manifest = manifest
        self.scans = scans
        self.out = tmp_path / "out"
        self.batch_id = ""

    def scan(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.env.cli(
            "scanner", "scan", "--manifest", str(self.manifest), "--dir", str(self.scans),
            "--out-dir", str(self.out), *extra,
        )

    def open_and_permit(self) -> None:
        opened = self.scan("--handed-over-by", "Phạm Thị Dung")
        assert opened.returncode == 4, opened.stderr
        self.batch_id = opened.stdout.strip()
        assert len(self.batch_id) == 32
        permitted = self.env.cli("approver-1", "batch", "approve", self.batch_id)
        assert permitted.returncode == 0, permitted.stderr

    def close_and_minutes(self) -> tuple[dict, Path]:
        closed = self.env.cli("scanner", "batch", "close", self.batch_id, "--note", "Trả đủ tài liệu")
        assert closed.returncode == 0, closed.stderr
        minutes = self.tmp_path / "bien-ban.pdf"
        result = self.env.cli("approver-1", "batch", "minutes", self.batch_id, "--out", str(minutes), "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout), minutes


def test_batch_minutes_list_every_row(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    scans, manifest = sample_set()
    rows = read_manifest(manifest, batch=True).valid_rows
    batch = Batch(dev_env, tmp_path, manifest, scans)
    batch.open_and_permit()

    scanned = batch.scan("--json")
    batch_json, minutes = batch.close_and_minutes()

    # The Tuyệt mật row is refused (exit 3), a row whose protection stamp
    # has ended is scanned but not sealed (exit 3), the others are sealed.
    assert scanned.returncode == 3, scanned.stderr
    report = {row["doc_number"]: row for row in json.loads(scanned.stdout)["rows"]}
    for row in rows:
        expected = expected_status(row)
        assert report[row.doc_number]["status"] == expected, report[row.doc_number]
        if expected in ("sealed", "not_secret"):
            assert report[row.doc_number]["pages_counted"] == row.pages
        assert (batch.out / f"{row.file}.npe").is_file() == (expected == "sealed")
    assert report[next(r.doc_number for r in rows if r.level == pb.LEVEL_TUYET_MAT)]["exit_code"] == 3

    documents = {document["doc_number"]: document for document in batch_json["documents"]}
    for row in rows:
        if row.level != pb.LEVEL_TUYET_MAT:
            assert documents[row.doc_number]["pages_scanned"] == row.pages
            assert documents[row.doc_number]["outcome"] == expected_status(row)
    reconciliation = batch_json["reconciliation"]
    assert reconciliation["documents_out"] == reconciliation["documents_back"] == len(rows)
    assert reconciliation["pages_out"] == sum(row.pages for row in rows)
    assert reconciliation["documents_flagged"] == 0

    images = render_pages(minutes, tmp_path)
    assert images and all(image.getbbox() is not None for image in images)
    text = "\n".join(pdf_text(minutes))
    assert text == unicodedata.normalize("NFC", text)
    assert "BIÊN BẢN BÀN GIAO TÀI LIỆU BÍ MẬT NHÀ NƯỚC PHỤC VỤ SỐ HÓA" in text
    # PDFium returns each table row as one line: number, document number, date,
    # sheets, pages, level, pages scanned, result.
    lines = text.splitlines()
    for row in rows:
        assert row.issued_on is not None
        cells = f"{row.number} {row.doc_number} {row.issued_on.strftime('%d/%m/%Y')} {row.sheets} {row.pages}"
        level = {pb.LEVEL_TUYET_MAT: "Tuyệt mật", pb.LEVEL_TOI_MAT: "Tối mật", pb.LEVEL_MAT: "Mật"}[row.level]
        expected = expected_status(row)
        if expected == "refused":
            assert f"{cells} Tuyệt mật — Tuyệt mật: không số hóa" in lines
        elif expected == "not_secret":
            assert any(line.startswith(f"{cells} {level} {row.pages} Không còn thuộc BMNN") for line in lines), lines
        else:
            assert f"{cells} {level} {row.pages} Đã số hóa, khớp số trang" in lines
    assert f"Số tài liệu giao: {len(rows)}; tổng số trang theo danh mục: {sum(r.pages for r in rows)}." in text
    assert "Không có chênh lệch." in text
    assert "Người cho phép mang tài liệu ra khỏi nơi lưu giữ: Trần Thị Bình, Phó Chánh Văn phòng (approver-1)" in text
    assert (batch_json["approved_name"], batch_json["approved_title"]) == ("Trần Thị Bình", "Phó Chánh Văn phòng")


def test_batch_page_mismatch_flagged(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    scans, manifest = sample_set()
    rows = read_manifest(manifest, batch=True).valid_rows
    tiff = next(row for row in rows if row.file.endswith(".tiff"))
    # The list claims one page more than the scan has.
    lines = manifest.read_text(encoding="utf-8-sig").splitlines()
    delimiter = ";" if ";" in lines[0] else ","
    pages_column = lines[0].split(delimiter).index("Số trang")
    changed = []
    for line in lines:
        cells = line.split(delimiter)
        if tiff.doc_number in cells:
            cells[pages_column] = str(tiff.pages + 1)
        changed.append(delimiter.join(cells))
    edited = tmp_path / "danh-muc.csv"
    edited.write_text("\n".join(changed) + "\n", encoding="utf-8")
    batch = Batch(dev_env, tmp_path, edited, scans)
    batch.open_and_permit()

    scanned = batch.scan("--json")
    batch_json, minutes = batch.close_and_minutes()

    report = {row["doc_number"]: row for row in json.loads(scanned.stdout)["rows"]}
    assert report[tiff.doc_number]["status"] == "sealed"
    assert report[tiff.doc_number]["pages_differ"] is True
    assert "LỆCH SỐ TRANG" in scanned.stderr
    document = next(d for d in batch_json["documents"] if d["doc_number"] == tiff.doc_number)
    assert document["outcome"] == "pages_differ"
    assert batch_json["reconciliation"]["documents_flagged"] == 1
    text = "\n".join(pdf_text(minutes))
    assert f"Lệch số trang: danh mục {tiff.pages + 1}, bản quét {tiff.pages}" in text
    assert f"Tài liệu số {tiff.doc_number}: Lệch số trang" in text
    render_pages(minutes, tmp_path)


def test_batch_scan_resumes_without_sealing_twice(
    dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path
) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(SAMPLES / "cong-van-mau.pdf", scans / "a.pdf")
    shutil.copy(SAMPLES / "bien-ban-mau.tiff", scans / "c.tiff")
    # A large JPEG keeps the second seal busy long enough to interrupt it:
    # Pillow reads only the header, so the padding after the image is harmless.
    with (scans / "b.jpg").open("wb") as handle:
        handle.write((SAMPLES / "giay-de-nghi-mau.jpg").read_bytes())
        handle.write(b"\0" * (96 * 1024 * 1024))
    manifest = tmp_path / "danh-muc.csv"
    manifest.write_text(
        "\ufeffSTT;Số tài liệu;Ngày ban hành;Số tờ;Số trang;Độ mật;Tệp\r\n"
        "1;1/RS;12/03/2025;2;3;Mật;a.pdf\r\n"
        "2;2/RS;20/08/2025;1;1;Mật;b.jpg\r\n"
        "3;3/RS;04/11/2024;1;2;Tối mật;c.tiff\r\n",
        encoding="utf-8",
    )
    batch = Batch(dev_env, tmp_path, manifest, scans)
    batch.open_and_permit()

    env = {k: v for k, v in os.environ.items() if not k.startswith("NIEMPHONG_")}
    env.update(PYTHONFAULTHANDLER="1", LANG="vi_VN.UTF-8", NIEMPHONG_SERVER=dev_env.unix_target, NIEMPHONG_IDENTITY=str(dev_env.identity("scanner")))
    command = [str(BIN / "niemphong"), "scan", "--manifest", str(manifest), "--dir", str(scans), "--out-dir", str(batch.out)]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (batch.out / "a.pdf.npe").exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.005)
    first.send_signal(signal.SIGINT)
    try:
        _, first_err = first.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        # PYTHONFAULTHANDLER makes the stuck client print every thread's stack.
        first.send_signal(signal.SIGABRT)
        _, first_err = first.communicate(timeout=30)
        raise AssertionError(f"the interrupted scan did not stop:\n{first_err}") from None

    assert first.returncode == 1, first_err
    assert (batch.out / "a.pdf.npe").is_file()
    assert not (batch.out / "b.jpg.npe").exists()
    assert not [path.name for path in batch.out.iterdir() if path.name.endswith(".part")]

    second = batch.scan("--json")

    assert second.returncode == 0, second.stderr
    statuses = [row["status"] for row in json.loads(second.stdout)["rows"]]
    assert statuses == ["already_sealed", "sealed", "sealed"]
    third = batch.scan("--json")
    assert [row["status"] for row in json.loads(third.stdout)["rows"]] == ["already_sealed"] * 3
    rows = state_query(dev_env, "SELECT COUNT(*) AS n FROM artefacts WHERE batch_id = ?", (batch.batch_id,))
    assert rows[0]["n"] == 3
    assert sorted(path.name for path in batch.out.glob("*.npe")) == ["a.pdf.npe", "b.jpg.npe", "c.tiff.npe"]


def test_batch_expired_stamp_row_not_sealed(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(SAMPLES / "cong-van-mau.pdf", scans / "a.pdf")
    shutil.copy(SAMPLES / "giay-de-nghi-mau.jpg", scans / "g.jpg")
    # The second row's "Thời hạn bảo vệ" stamp ended in 2025, so it is no longer secret.
    manifest = tmp_path / "danh-muc.csv"
    manifest.write_text(
        "STT,Số tài liệu,Ngày ban hành,Số tờ,Số trang,Độ mật,Thời hạn bảo vệ đến,Tệp\n"
        "1,1/NS,12/03/2025,2,3,Mật,,a.pdf\n"
        "2,2/NS,10/01/2025,1,1,Mật,31/03/2025,g.jpg\n",
        encoding="utf-8",
    )
    batch = Batch(dev_env, tmp_path, manifest, scans)
    batch.open_and_permit()

    first = batch.scan("--json")
    second = batch.scan("--json")
    batch_json, minutes = batch.close_and_minutes()

    assert first.returncode == 3, first.stderr
    rows = json.loads(first.stdout)["rows"]
    assert [row["status"] for row in rows] == ["sealed", "not_secret"]
    assert rows[1]["exit_code"] == 3
    assert len(rows[1]["record_id"]) == 32
    assert rows[1]["pages_counted"] == 1
    assert not (batch.out / "g.jpg.npe").exists()
    assert [row["status"] for row in json.loads(second.stdout)["rows"]] == ["already_sealed", "not_secret"]
    assert "lần chạy trước" in second.stderr
    document = next(d for d in batch_json["documents"] if d["doc_number"] == "2/NS")
    assert document["outcome"] == "not_secret"
    assert document["record_id"] == rows[1]["record_id"]
    assert document["artefact_id"] is None
    assert batch_json["reconciliation"]["documents_not_secret"] == 1
    assert batch_json["reconciliation"]["documents_sealed"] == 1
    assert batch_json["reconciliation"]["documents_flagged"] == 0
    text = "\n".join(pdf_text(minutes))
    assert "Không còn thuộc BMNN" in text
    assert "tài liệu số 2/NS không còn thuộc BMNN" in text


def test_batch_scan_needs_permission_first(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    scans, manifest = sample_set()
    batch = Batch(dev_env, tmp_path, manifest, scans)

    opened = batch.scan("--handed-over-by", "Phạm Thị Dung")
    again = batch.scan()

    assert opened.returncode == 4
    assert again.returncode == 4
    assert "chưa được cho phép" in again.stderr
    assert not list(batch.out.glob("*.npe"))


def test_batch_existing_envelope_not_overwritten(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(SAMPLES / "giay-de-nghi-mau.jpg", scans / "g.jpg")
    manifest = tmp_path / "danh-muc.csv"
    manifest.write_text("Số tài liệu,Ngày ban hành,Số trang,Độ mật,Tệp\n9/OW,20/08/2025,1,Mật,g.jpg\n", encoding="utf-8")
    batch = Batch(dev_env, tmp_path, manifest, scans)
    batch.open_and_permit()
    (batch.out / "g.jpg.npe").write_bytes(b"someone else's file")

    result = batch.scan("--json")

    assert result.returncode == 2, result.stderr
    assert json.loads(result.stdout)["rows"][0]["status"] == "failed"
    assert (batch.out / "g.jpg.npe").read_bytes() == b"someone else's file"
    assert (scans / "g.jpg").read_bytes() == (SAMPLES / "giay-de-nghi-mau.jpg").read_bytes()


def test_batch_bad_encoding_rejected(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "danh-muc.csv"
    manifest.write_bytes("Số tài liệu;Độ mật\n1/A;Mật\n".encode("utf-16-le"))
    batch = Batch(dev_env, tmp_path, manifest, SAMPLES)

    result = batch.scan("--handed-over-by", "Phạm Thị Dung")

    assert result.returncode == 2
    assert "UTF-8" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "extra",
    [["--level", "mat"], ["--out", "x.npe"], ["--remove-source"], ["--kind", "bao-cao-tuan"],
     ["--stamp-until", "01/01/2030"]],
)
def test_batch_scan_mixed_forms_rejected(dev_env: DevEnvironment, tmp_path: Path, extra: list[str]) -> None:
    result = dev_env.cli("scanner", "scan", "--manifest", "l.csv", "--dir", ".", "--out-dir", "o", *extra)

    assert result.returncode == 2
    assert "không dùng được cùng với --manifest" in result.stderr


def test_batch_scan_without_dir_rejected(dev_env: DevEnvironment) -> None:
    result = dev_env.cli("scanner", "scan", "--manifest", "l.csv")

    assert result.returncode == 2
    assert "--dir" in result.stderr


# Printed copies ------------------------------------------------------------------------------


def test_print_tiff_copies_stamped_and_numbered(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    scans, manifest = sample_set()
    tiff = next(row for row in read_manifest(manifest, batch=True).valid_rows if row.file.endswith(".tiff"))
    assert tiff.issued_on is not None
    envelope = tmp_path / "bien-ban.npe"
    sealed = dev_env.cli(
        "scanner", "scan", str(scans / tiff.file), "--level", "toi-mat", "--doc-number", tiff.doc_number,
        "--issued", tiff.issued_on.isoformat(), "--out", str(envelope),
    )
    assert sealed.returncode == 0, sealed.stderr
    requested = dev_env.cli("viewer", "request", str(envelope), "--purpose", "In phục vụ họp", "--copies", "3")
    request_id = requested.stdout.strip()
    for approver in ("approver-1", "head"):
        assert dev_env.cli(approver, "approve", request_id).returncode == 0

    copies = []
    for number in (1, 2, 3):
        out = tmp_path / f"ban-sao-{number}.pdf"
        printed = dev_env.cli("viewer", "print", str(envelope), "--out", str(out))
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.strip() == str(number)
        copies.append(out)
    refused = dev_env.cli("viewer", "print", str(envelope), "--out", str(tmp_path / "ban-sao-4.pdf"))

    today = dt.datetime.now(VIETNAM).strftime("%d/%m/%Y")
    for number, copy in enumerate(copies, start=1):
        pages = pdf_text(copy)
        assert len(pages) == tiff.pages
        for text in pages:
            assert text == unicodedata.normalize("NFC", text)
            assert "BẢN SAO BMNN" in text
            assert f"Bản sao số: {number}" in text
            assert "Người cho phép sao: Nguyễn Văn An" in text
            assert "Chức vụ: Giám đốc" in text
            assert f"Ngày sao: {today}" in text
            assert f"Tài liệu số: {tiff.doc_number}" in text
        for image in render_pages(copy, tmp_path):
            assert red_pixels(image) > 500
    assert refused.returncode == 4
    assert "chưa được phép in" in refused.stderr
    assert not (tmp_path / "ban-sao-4.pdf").exists()
    register = dev_env.cli("auditor", "copies", str(envelope), "--json")
    assert [entry["copy_number"] for entry in json.loads(register.stdout)] == [1, 2, 3]
    assert {entry["state"] for entry in json.loads(register.stdout)} == {"issued"}


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (200, 280), 240).save(buffer, format="PNG", dpi=(72, 72))
    return buffer.getvalue()


def _print(env: DevEnvironment, envelope: bytes, request_id: str = "") -> tuple[apb.PrintSummary, bytes]:
    def requests() -> Iterator[apb.PrintRequest]:
        yield apb.PrintRequest(start=apb.PrintStart(request_id=request_id))
        yield apb.PrintRequest(chunk=envelope)

    pdf = bytearray()
    summary = None
    with env.channel("viewer") as channel:
        for response in apb_grpc.CopyServiceStub(channel).Print(requests(), timeout=60):
            if response.WhichOneof("payload") == "chunk":
                pdf += response.chunk
            else:
                summary = response.summary
    assert summary is not None
    return summary, bytes(pdf)


def _grant_copies(env: DevEnvironment, artefact_id: str, copies: int) -> str:
    with env.channel("viewer") as channel:
        request = pb_grpc.AccessServiceStub(channel).RequestAccess(
            pb.RequestAccessRequest(artefact_id=artefact_id, purpose="in bản sao", copies=copies), timeout=10)
    with env.channel("approver-1") as channel:
        pb_grpc.AccessServiceStub(channel).Approve(pb.ApproveRequest(request_id=request.request_id), timeout=10)
    return request.request_id


def test_print_copy_numbers_distinct_under_concurrency(dev_env: DevEnvironment, daemon: DaemonProcess) -> None:
    envelope, summary = seal_bytes(dev_env, _png_bytes(), doc_number="5/CC")
    _grant_copies(dev_env, summary.artefact_id, 6)
    numbers: list[int] = []
    lock = threading.Lock()

    def print_one() -> None:
        copy, pdf = _print(dev_env, envelope)
        assert pdf.startswith(b"%PDF-")
        with lock:
            numbers.append(copy.copy_number)

    threads = [threading.Thread(target=print_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]


def test_print_needs_grant_with_copies(dev_env: DevEnvironment, daemon: DaemonProcess) -> None:
    envelope, summary = seal_bytes(dev_env, _png_bytes(), doc_number="6/NG")
    grant_access(dev_env, summary.artefact_id, ["approver-1"])

    with pytest.raises(grpc.RpcError) as error:
        _print(dev_env, envelope)

    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(error.value) == "NOT_APPROVED_FOR_PRINTING"
    assert open_bytes(dev_env, envelope) == _png_bytes()


def test_print_unprintable_document_takes_no_number(dev_env: DevEnvironment, daemon: DaemonProcess) -> None:
    envelope, summary = seal_bytes(dev_env, b"plain text, not a scan", doc_number="7/TX")
    _grant_copies(dev_env, summary.artefact_id, 2)

    with pytest.raises(grpc.RpcError) as error:
        _print(dev_env, envelope)

    assert error_reason(error.value) == "UNPRINTABLE_DOCUMENT"
    with dev_env.channel("auditor") as channel:
        listed = apb_grpc.CopyServiceStub(channel).ListCopies(apb.ListCopiesRequest(artefact_id=summary.artefact_id))
    assert list(listed.copies) == []


def test_print_altered_envelope_rejected(dev_env: DevEnvironment, daemon: DaemonProcess) -> None:
    envelope, summary = seal_bytes(dev_env, _png_bytes(), doc_number="8/AL")
    _grant_copies(dev_env, summary.artefact_id, 1)
    altered = bytearray(envelope)
    altered[-40] ^= 1

    with pytest.raises(grpc.RpcError) as error:
        _print(dev_env, bytes(altered))

    assert error_reason(error.value) == "INTEGRITY_FAILURE"


# Another agency, incidents ------------------------------------------------------------------


def test_recipient_request_waits_for_head(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    envelope = tmp_path / "g.npe"
    data, _ = seal_bytes(dev_env, _png_bytes(), doc_number="9/RC")
    envelope.write_bytes(data)
    requested = dev_env.cli(
        "viewer", "request", str(envelope), "--purpose", "Cung cấp cho Sở Tư pháp", "--recipient", "Sở Tư pháp tỉnh",
    )
    request_id = requested.stdout.strip()

    deputy = dev_env.cli("approver-1", "approve", request_id)
    early = dev_env.cli("viewer", "view", str(envelope), "--out", str(tmp_path / "early.png"))
    head = dev_env.cli("head", "approve", request_id)
    shown = dev_env.cli("viewer", "show", request_id, "--json")
    viewed = dev_env.cli("viewer", "view", str(envelope), "--out", str(tmp_path / "g.png"))

    assert deputy.returncode == 0
    assert "chờ người đứng đầu cơ quan" in deputy.stderr
    assert early.returncode == 4
    assert head.returncode == 0
    assert json.loads(shown.stdout)["recipient"] == "Sở Tư pháp tỉnh"
    assert json.loads(shown.stdout)["state"] == "approved"
    assert viewed.returncode == 0, viewed.stderr


def incident_metrics(env: DevEnvironment) -> dict[str, float]:
    """Return the incident samples of the daemon's /metrics."""
    with urllib.request.urlopen(f"http://{env.config['metrics']['listen']}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "incident" in sample.name
    }


def test_incident_suspends_until_closed(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    envelope = tmp_path / "i.npe"
    data, summary = seal_bytes(dev_env, _png_bytes(), doc_number="10/IN")
    envelope.write_bytes(data)
    grant_access(dev_env, summary.artefact_id, ["approver-1"])

    before = incident_metrics(dev_env)
    reported = dev_env.cli("viewer", "incident", "report", "--artefact", str(envelope), "--text", "Nghi lộ bản in")
    incident_id = reported.stdout.strip()
    while_open = incident_metrics(dev_env)
    suspended = dev_env.cli("viewer", "view", str(envelope), "--out", str(tmp_path / "s.png"))
    viewer_close = dev_env.cli("viewer", "incident", "close", incident_id, "--resolution", "Xong")
    closed = dev_env.cli("approver-1", "incident", "close", incident_id, "--resolution", "Không lộ")
    after = incident_metrics(dev_env)
    viewed = dev_env.cli("viewer", "view", str(envelope), "--out", str(tmp_path / "v.png"))

    assert reported.returncode == 0, reported.stderr
    assert while_open["niemphong_incidents_open"] == before["niemphong_incidents_open"] + 1
    assert while_open["niemphong_incidents_reported_total"] == before["niemphong_incidents_reported_total"] + 1
    assert while_open["niemphong_incident_grants_suspended_total"] == (
        before["niemphong_incident_grants_suspended_total"] + 1
    )
    assert after["niemphong_incidents_open"] == before["niemphong_incidents_open"]
    assert after["niemphong_incidents_closed_total"] == before["niemphong_incidents_closed_total"] + 1
    assert "1 quyền khai thác bị tạm dừng" in reported.stderr
    assert suspended.returncode == 4
    assert "tạm dừng" in suspended.stderr
    assert not (tmp_path / "s.png").exists()
    assert viewer_close.returncode == 4
    assert closed.returncode == 0, closed.stderr
    assert viewed.returncode == 0, viewed.stderr
    listed = dev_env.cli("auditor", "incident", "list", "--json")
    entry = next(item for item in json.loads(listed.stdout) if item["incident_id"] == incident_id)
    assert entry["state"] == "closed"
    assert entry["artefact_ids"] == [summary.artefact_id]


# Removing sources -----------------------------------------------------------------------------


def test_scan_remove_source_after_verify(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    source = tmp_path / "scan.jpg"
    shutil.copy(SAMPLES / "giay-de-nghi-mau.jpg", source)
    envelope = tmp_path / "scan.jpg.npe"

    result = dev_env.cli(
        "scanner", "scan", str(source), "--level", "mat", "--doc-number", "11/RM", "--issued", "2025-08-20",
        "--out", str(envelope), "--remove-source",
    )

    assert result.returncode == 0, result.stderr
    assert not source.exists()
    assert "đã xóa tệp quét" in result.stderr
    with dev_env.channel("scanner") as channel:
        inspected = pb_grpc.EnvelopeServiceStub(channel).Inspect(
            pb.InspectRequest(envelope_head=envelope.read_bytes()[:80 * 1024]), timeout=10)
    grant_access(dev_env, inspected.artefact_id, ["approver-1"])
    assert open_bytes(dev_env, envelope.read_bytes()) == (SAMPLES / "giay-de-nghi-mau.jpg").read_bytes()


def test_verify_by_other_scanner_rejected(dev_env: DevEnvironment, daemon: DaemonProcess) -> None:
    dev_env.add_identity("scanner-verify", "scanner")
    envelope, _ = seal_bytes(dev_env, _png_bytes(), doc_number="12/VF")

    with dev_env.channel("scanner-verify") as channel, pytest.raises(grpc.RpcError) as error:
        pb_grpc.EnvelopeServiceStub(channel).Verify(iter([pb.VerifyRequest(chunk=envelope)]), timeout=10)

    assert error_reason(error.value) == "NOT_YOUR_ARTEFACT"


def test_batch_nfd_scan_names_found(dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path) -> None:
    # The list is NFC as Excel writes it; the folder and the scan were copied from macOS, so both are NFD.
    name = "công văn số hóa.pdf"
    scans = tmp_path / unicodedata.normalize("NFD", "Bản quét")
    scans.mkdir()
    shutil.copyfile(SAMPLES / "cong-van-mau.pdf", scans / unicodedata.normalize("NFD", name))
    manifest = tmp_path / "danh-muc.csv"
    manifest.write_text(f"STT;Số tài liệu;Ngày ban hành;Số tờ;Số trang;Độ mật;Tệp\n1;31/NFD-VP;12/03/2025;2;3;Mật;{name}\n",
                        encoding="utf-8")
    batch = Batch(dev_env, tmp_path, manifest, tmp_path / "Bản quét")
    batch.open_and_permit()

    scanned = batch.scan("--json")
    closed = dev_env.cli("scanner", "batch", "close", batch.batch_id, "--note", "Trả đủ tài liệu")
    minutes = dev_env.cli("approver-1", "batch", "minutes", batch.batch_id, "--out", str(tmp_path / "bien-ban.pdf"))

    assert scanned.returncode == 0, scanned.stderr
    assert json.loads(scanned.stdout)["rows"][0]["status"] == "sealed"
    assert (batch.out / f"{name}.npe").is_file()
    assert closed.returncode == 0, closed.stderr
    assert minutes.returncode == 0, minutes.stderr
    size = (tmp_path / "bien-ban.pdf").stat().st_size
    assert f"({size:,} byte)".replace(",", ".") in minutes.stderr


def test_batch_minutes_rule_d_stamp_note_matches_decision(
    dev_env: DevEnvironment, daemon: DaemonProcess, tmp_path: Path,
) -> None:
    # A Mật document whose protection stamp has ended is not secret under
    # rule d, and the decision does not require the "Giải mật" stamp.
    ended = dt.datetime.now(VIETNAM).date() - dt.timedelta(days=30)
    issued = ended - dt.timedelta(days=200)
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copyfile(SAMPLES / "giay-de-nghi-mau.jpg", scans / "giay.jpg")
    manifest = tmp_path / "danh-muc.csv"
    manifest.write_text(
        "STT;Số tài liệu;Ngày ban hành;Số tờ;Số trang;Độ mật;Thời hạn bảo vệ đến;Tệp\n"
        f"1;41/GĐN-D;{issued:%d/%m/%Y};1;1;Mật;{ended:%d/%m/%Y};giay.jpg\n", encoding="utf-8",
    )
    checked = dev_env.cli("scanner", "policy", "check", "--manifest", str(manifest), "--json")
    batch = Batch(dev_env, tmp_path, manifest, scans)
    batch.open_and_permit()

    scanned = batch.scan("--json")
    _, minutes = batch.close_and_minutes()

    decision = json.loads(checked.stdout)[0]
    assert (decision["rule"], decision["stamp_required"]) == ("d", False)
    assert json.loads(scanned.stdout)["rows"][0]["status"] == "not_secret", scanned.stdout
    text = " ".join(" ".join(pdf_text(minutes)).split())
    assert "tài liệu số 41/GĐN-D không còn thuộc BMNN" in text
    assert 'không cần đóng dấu "Giải mật"' in text
    assert "nếu quy định yêu cầu" not in text
