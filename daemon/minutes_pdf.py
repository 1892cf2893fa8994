"""The handover minutes (biên bản bàn giao) of a batch, as a Vietnamese PDF.

The minutes name the parties and the permission, list every document with
its number, issue date, sheets, pages, level, the pages counted in its scan
and what became of it, and end with the reconciliation of documents and
pages out against back and every difference found. The list's columns are
the ones the provincial guidance asks for (UBND tỉnh Đắk Lắk, công văn hướng
dẫn số hóa tài liệu BMNN, tháng 5/2025).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Set as AbstractSet

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable
from xml.sax.saxutils import escape

from niemphong.daemon.handover import (
    NEVER_DIGITIZED,
    NOT_SEALED,
    NOT_SECRET,
    PAGES_DIFFER,
    UNCONFIRMED,
    BatchView,
    outcome,
)
from niemphong.daemon.levels import Level
from niemphong.daemon.pdf_fonts import register_fonts
from niemphong.daemon.store_archive import BatchDocumentRecord, BatchRecord

VIETNAM = dt.timezone(dt.timedelta(hours=7))
_FLAG_BACKGROUND = colors.Color(1.0, 0.88, 0.88)

_LEGAL_BASIS = (
    "Căn cứ Luật Bảo vệ bí mật nhà nước số 29/2018/QH14 và công văn hướng dẫn số hóa tài liệu "
    "BMNN của UBND tỉnh Đắk Lắk (tháng 5/2025): việc mang tài liệu BMNN ra khỏi nơi lưu giữ phục vụ "
    "số hóa phải được người đứng đầu hoặc cấp phó được ủy quyền cho phép; khi bàn giao phải đối chiếu "
    "số lượng tài liệu, số trang trong từng tài liệu và kiểm tra sự nguyên vẹn của tài liệu."
)


def _time(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    return dt.datetime.fromtimestamp(seconds, VIETNAM).strftime("%H:%M ngày %d/%m/%Y")


def _date(iso: str) -> str:
    try:
        return dt.date.fromisoformat(iso).strftime("%d/%m/%Y")
    except ValueError:
        return iso or "—"


def _approver(batch: BatchRecord) -> str:
    if batch.approved_by is None:
        return "chưa có"
    named = ", ".join(part for part in (batch.approved_name, batch.approved_title) if part)
    return f"{named} ({batch.approved_by})" if named else batch.approved_by


def document_result(view: BatchView, document: BatchDocumentRecord) -> str:
    """Return the minutes' "Kết quả" cell for one document, in Vietnamese."""
    result = outcome(document)
    if result == NEVER_DIGITIZED:
        text = "Tuyệt mật: không số hóa"
    elif result == NOT_SEALED:
        text = "Chưa số hóa"
    elif result == UNCONFIRMED:
        text = "Chưa số hóa: đã niêm phong nhưng phong bì chưa được xác nhận là đã ghi"
    elif result == NOT_SECRET:
        text = "Không còn thuộc BMNN: số hóa như tài liệu thường, không niêm phong"
    elif result == PAGES_DIFFER:
        text = f"Lệch số trang: danh mục {document.pages}, bản quét {document.pages_scanned}"
    else:
        text = "Đã số hóa, khớp số trang"
    if view.closed and not document.returned:
        text += "; không được trả lại"
    elif view.closed and document.damaged:
        text += "; trả lại bị hư hỏng"
    return text


class _Styles:
    def __init__(self) -> None:
        regular, bold = register_fonts()
        self.body = ParagraphStyle("body", fontName=regular, fontSize=10, leading=13.5)
        self.small = ParagraphStyle("small", fontName=regular, fontSize=8.5, leading=11)
        self.cell_head = ParagraphStyle("head", fontName=bold, fontSize=8.5, leading=11, alignment=TA_CENTER)
        self.center_bold = ParagraphStyle("center", fontName=bold, fontSize=11, leading=14, alignment=TA_CENTER)
        self.title = ParagraphStyle("title", fontName=bold, fontSize=13, leading=17, alignment=TA_CENTER)
        self.heading = ParagraphStyle("heading", fontName=bold, fontSize=10.5, leading=14, spaceBefore=6)
        self.regular = regular


def _paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text), style)


def _document_table(view: BatchView, styles: _Styles) -> Table:
    headers = ["STT", "Số tài liệu", "Ngày ban hành", "Số tờ", "Số trang", "Độ mật", "Số trang quét", "Kết quả"]
    rows: list[list[Flowable | str]] = [[_paragraph(text, styles.cell_head) for text in headers]]
    flagged_rows = []
    for index, document in enumerate(view.documents, start=1):
        scanned = str(document.pages_scanned) if document.artefact_id or document.record_id else "—"
        rows.append([
            _paragraph(str(document.number), styles.small),
            _paragraph(document.doc_number, styles.small),
            _paragraph(_date(document.issued_on), styles.small),
            _paragraph(str(document.sheets), styles.small),
            _paragraph(str(document.pages), styles.small),
            _paragraph(Level(document.level).vietnamese_name, styles.small),
            _paragraph(scanned, styles.small),
            _paragraph(document_result(view, document), styles.small),
        ])
        if view.flagged(document):
            flagged_rows.append(index)

    widths = [12 * mm, 42 * mm, 26 * mm, 14 * mm, 16 * mm, 22 * mm, 20 * mm, 95 * mm]
    table = Table(rows, colWidths=widths, repeatRows=1)
    commands = [
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    commands += [("BACKGROUND", (0, row), (-1, row), _FLAG_BACKGROUND) for row in flagged_rows]
    table.setStyle(TableStyle(commands))
    return table


def _reconciliation(view: BatchView, styles: _Styles, stamp_required: AbstractSet[str]) -> list[Flowable]:
    summary = view.reconcile()
    lines = [
        f"Số tài liệu giao: {summary.documents_out}; tổng số trang theo danh mục: {summary.pages_out}.",
        f"Số tài liệu đã số hóa (niêm phong): {summary.documents_sealed}; "
        f"tổng số trang đếm được trong bản quét: {summary.pages_scanned}.",
    ]
    if summary.documents_unconfirmed:
        lines.append(
            f"Số tài liệu đã niêm phong nhưng phong bì chưa được xác nhận là đã ghi, chưa tính là đã số hóa: "
            f"{summary.documents_unconfirmed}."
        )
    if summary.documents_not_secret:
        lines.append(
            f"Số tài liệu không còn thuộc BMNN (hết thời hạn bảo vệ hoặc đã giải mật), không niêm phong: "
            f"{summary.documents_not_secret}."
        )
    if view.closed:
        lines.append(
            f"Số tài liệu nhận lại: {summary.documents_back}; "
            f"tổng số trang của tài liệu nhận lại (theo danh mục): {summary.pages_back}."
        )
    else:
        lines.append("Tài liệu chưa được bàn giao trả lại kho lưu trữ.")
    flowables: list[Flowable] = [_paragraph("Đối chiếu", styles.heading)]
    flowables += [_paragraph(line, styles.body) for line in lines]

    flowables.append(_paragraph("Chênh lệch cần xử lý", styles.heading))
    flagged = [document for document in view.documents if view.flagged(document)]
    if not flagged:
        flowables.append(_paragraph("Không có chênh lệch.", styles.body))
    for document in flagged:
        flowables.append(_paragraph(f"- Tài liệu số {document.doc_number}: {document_result(view, document)}.", styles.body))
    for document in view.documents:
        if outcome(document) == NOT_SECRET:
            # The same instruction as the decision's own explanation, from its stamp-required flag.
            if document.record_id in stamp_required:
                stamp = "phải đóng dấu \"Giải mật\" lên tài liệu trước khi sử dụng như tài liệu thường"
            else:
                stamp = "sử dụng như tài liệu thường, không cần đóng dấu \"Giải mật\""
            flowables.append(_paragraph(
                f"Ghi chú: tài liệu số {document.doc_number} không còn thuộc BMNN theo thời hạn bảo vệ hoặc quyết "
                f"định giải mật (Điều 19, 20, 22 Luật Bảo vệ bí mật nhà nước); {stamp}.", styles.body,
            ))
    never = [document for document in view.documents if outcome(document) == NEVER_DIGITIZED]
    for document in never:
        flowables.append(_paragraph(
            f"Ghi chú: tài liệu số {document.doc_number} độ Tuyệt mật không được số hóa theo quy định.", styles.body,
        ))
    return flowables


def _signatures(styles: _Styles) -> Table:
    heads = ["BÊN GIAO", "BÊN NHẬN", "NGƯỜI CHO PHÉP"]
    notes = ["(Ký, ghi rõ họ tên)"] * 3
    table = Table(
        [[_paragraph(text, styles.center_bold) for text in heads],
         [_paragraph(text, ParagraphStyle("sign", parent=styles.small, alignment=TA_CENTER)) for text in notes]],
        colWidths=[82 * mm] * 3,
    )
    return table


def render_minutes(view: BatchView, rendered_at: int, stamp_required: AbstractSet[str] = frozenset()) -> bytes:
    """Return the minutes of ``view`` as PDF bytes; ``rendered_at`` is printed in the footer (epoch seconds).

    ``stamp_required`` holds the record ids of the not-secret documents whose
    decision requires the "Giải mật" stamp.
    """
    styles = _Styles()
    batch = view.batch
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=landscape(A4), leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm, bottomMargin=16 * mm,
        title=f"Biên bản bàn giao lô {batch.batch_id}", author="niemphongd",
    )

    story: list[Flowable] = [
        _paragraph("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", styles.center_bold),
        _paragraph("Độc lập - Tự do - Hạnh phúc", styles.center_bold),
        Spacer(1, 6 * mm),
        _paragraph("BIÊN BẢN BÀN GIAO TÀI LIỆU BÍ MẬT NHÀ NƯỚC PHỤC VỤ SỐ HÓA", styles.title),
        _paragraph(f"Mã lô: {batch.batch_id}", ParagraphStyle("id", parent=styles.body, alignment=TA_CENTER)),
        Spacer(1, 4 * mm),
        _paragraph(_LEGAL_BASIS, styles.small),
        Spacer(1, 3 * mm),
        _paragraph(f"Bên giao (người quản lý, lưu giữ tài liệu): {batch.handed_over_by}", styles.body),
        _paragraph(f"Bên nhận (người thực hiện số hóa): {batch.taken_out_by}", styles.body),
        _paragraph(
            f"Người cho phép mang tài liệu ra khỏi nơi lưu giữ: {_approver(batch)}"
            f" (lúc {_time(batch.approved_at)})", styles.body,
        ),
        _paragraph(f"Lập danh mục giao lúc: {_time(batch.opened_at)}", styles.body),
    ]
    if view.closed:
        story.append(_paragraph(f"Nhận lại lúc: {_time(batch.closed_at)}, người ghi nhận: {batch.closed_by}", styles.body))
    if batch.note:
        story.append(_paragraph(f"Ghi chú khi giao: {batch.note}", styles.body))
    if batch.close_note:
        story.append(_paragraph(f"Ghi chú khi nhận lại: {batch.close_note}", styles.body))

    story += [_paragraph("Danh mục tài liệu", styles.heading), _document_table(view, styles)]
    story += _reconciliation(view, styles, stamp_required)
    story += [Spacer(1, 8 * mm), _signatures(styles)]

    footer = f"Biên bản lô {batch.batch_id}, lập bởi niemphongd lúc {_time(rendered_at)}"

    def draw_footer(canvas, doc) -> None:  # type: ignore[no-untyped-def]
        canvas.saveState()
        canvas.setFont(styles.regular, 7.5)
        canvas.drawString(15 * mm, 8 * mm, footer)
        canvas.drawRightString(landscape(A4)[0] - 15 * mm, 8 * mm, f"Trang {doc.page}")
        canvas.restoreState()

    document.build(story, onFirstPage=draw_footer, onLaterPages=draw_footer)
    return out.getvalue()
