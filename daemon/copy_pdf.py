"""Printed copies: the decrypted scan as a PDF with the copy stamps on every page.

A printed copy of a state-secret document must carry the stamps "Bản sao
BMNN" and "Bản sao số" and the signature of the person allowed to authorize
copies (Article 11 of the Law on Protection of State Secrets No.
29/2018/QH14, as applied by UBND tỉnh Đắk Lắk, công văn hướng dẫn số hóa tài
liệu BMNN, tháng 5/2025). Each page gets a stamp box with the copy number,
the authorizer's name and title, the date and a line for the signature. The
stamp is text in an embedded font, so the PDF's text layer contains it. The
page keeps its size and its content is scaled down into the space below the
stamp, so that the stamp hides nothing of the document.

PDF scans keep their pages, with the stamp merged on top; TIFF (every
frame), JPEG and PNG scans become one PDF page per image at the image's
resolution. Everything happens in memory.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from PIL import Image, ImageSequence
from pypdf import PdfReader, PdfWriter, Transformation
from pypdf.errors import PdfReadError
from reportlab.lib.colors import Color, white
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from niemphong.daemon.pdf_fonts import register_fonts

# Scans are usually 150 to 300 dpi; a file without a resolution is taken as 150.
DEFAULT_DPI = 150.0
# Refuse images that would decode to more than this many pixels per page
# (A3 at 600 dpi is about 70 million).
MAX_PIXELS = 100_000_000
MAX_PAGES = 2000

STAMP_RED = Color(0.78, 0.0, 0.0)
_MARGIN = 14.0
_PADDING = 6.0
_TITLE_SIZE = 11.0
_LINE_SIZE = 8.5


class UnprintableDocument(Exception):
    """The plaintext is not a PDF, TIFF, JPEG or PNG this module can read; the message says why."""


@dataclass(frozen=True)
class CopyStamp:
    """What the stamp on every page of one copy says."""

    copy_number: int
    authorized_name: str
    authorized_title: str
    printed_on: dt.date
    doc_number: str

    def lines(self) -> list[tuple[str, bool]]:
        """Return the stamp's lines, each with whether it is set in bold."""
        lines = [
            ("BẢN SAO BMNN", True),
            (f"Bản sao số: {self.copy_number}", True),
            (f"Tài liệu số: {self.doc_number}", False),
            (f"Người cho phép sao: {self.authorized_name}", False),
        ]
        if self.authorized_title:
            lines.append((f"Chức vụ: {self.authorized_title}", False))
        lines += [
            (f"Ngày sao: {self.printed_on.strftime('%d/%m/%Y')}", False),
            ("Chữ ký:", False),
        ]
        return lines


def detect_format(data: bytes) -> str | None:
    """Return "pdf", "tiff", "jpeg" or "png" from the file's first bytes, or None."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return None


@dataclass
class SourceDocument:
    """A parsed scan, ready to stamp; building it checks that every page can be read."""

    kind: str
    pages: int
    _reader: PdfReader | None = None
    _image: Image.Image | None = None

    @classmethod
    def parse(cls, data: bytes) -> SourceDocument:
        kind = detect_format(data)
        if kind is None:
            raise UnprintableDocument("the document is not a PDF, TIFF, JPEG or PNG file")
        if kind == "pdf":
            return cls._parse_pdf(data)
        return cls._parse_image(kind, data)

    @classmethod
    def _parse_pdf(cls, data: bytes) -> SourceDocument:
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise UnprintableDocument("the PDF is password-protected")
            pages = len(reader.pages)
        except (PdfReadError, ValueError, KeyError) as exc:
            raise UnprintableDocument(f"the PDF cannot be read: {exc}") from exc
        if not 1 <= pages <= MAX_PAGES:
            raise UnprintableDocument(f"the PDF has {pages} pages; 1 to {MAX_PAGES} can be printed")
        return cls("pdf", pages, _reader=reader)

    @classmethod
    def _parse_image(cls, kind: str, data: bytes) -> SourceDocument:
        try:
            image = Image.open(io.BytesIO(data))
            pages = getattr(image, "n_frames", 1)
            for frame in ImageSequence.Iterator(image):
                width, height = frame.size
                if width * height > MAX_PIXELS:
                    raise UnprintableDocument(f"a page of {width}x{height} pixels is too large to print")
                # Decode every page now, so that a damaged one fails before a copy number is taken.
                frame.load()
        # Pillow's format plugins raise any of these on a damaged file.
        except (OSError, ValueError, TypeError, SyntaxError, EOFError, IndexError, KeyError,
                Image.DecompressionBombError) as exc:
            raise UnprintableDocument(f"the {kind.upper()} image cannot be read: {exc}") from exc
        if not 1 <= pages <= MAX_PAGES:
            raise UnprintableDocument(f"the image has {pages} pages; 1 to {MAX_PAGES} can be printed")
        return cls(kind, pages, _image=image)

    def render(self, stamp: CopyStamp) -> bytes:
        """Return the PDF of the stamped copy."""
        register_fonts()
        if self._reader is not None:
            return _stamp_pdf(self._reader, stamp)
        assert self._image is not None
        return _image_pages(self._image, stamp)


def _stamp_pdf(reader: PdfReader, stamp: CopyStamp) -> bytes:
    writer = PdfWriter(clone_from=reader)
    for page in writer.pages:
        # Put a rotated page's content upright first, so that the stamp
        # lands in the top right corner as the page is read.
        if page.rotation:
            page.transfer_rotation_to_content()
        box = page.mediabox
        left, bottom = float(box.left), float(box.bottom)
        width, height = float(box.width), float(box.height)
        scale = content_scale(width, height, stamp)
        page.add_transformation(
            Transformation().translate(-left, -bottom).scale(scale, scale)
            .translate(left + width * (1 - scale) / 2, bottom)
        )
        overlay = io.BytesIO()
        canvas = Canvas(overlay, pagesize=(width, height))
        canvas.translate(left, bottom)
        draw_stamp(canvas, width, height, stamp)
        canvas.showPage()
        canvas.save()
        page.merge_page(PdfReader(overlay).pages[0])

    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _image_pages(image: Image.Image, stamp: CopyStamp) -> bytes:
    out = io.BytesIO()
    canvas = Canvas(out)
    for frame in ImageSequence.Iterator(image):
        dpi_x, dpi_y = _resolution(frame)
        width = frame.size[0] * 72.0 / dpi_x
        height = frame.size[1] * 72.0 / dpi_y
        # Bilevel and palette frames go in as greyscale or RGB, which every
        # PDF reader draws the same way.
        picture = frame.convert("L" if frame.mode in ("1", "L", "I;16") else "RGB")
        canvas.setPageSize((width, height))
        scale = content_scale(width, height, stamp)
        canvas.drawImage(ImageReader(picture), width * (1 - scale) / 2, 0, width * scale, height * scale)
        draw_stamp(canvas, width, height, stamp)
        canvas.showPage()
    canvas.save()
    return out.getvalue()


def _resolution(frame: Image.Image) -> tuple[float, float]:
    dpi = frame.info.get("dpi")
    try:
        x, y = float(dpi[0]), float(dpi[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return DEFAULT_DPI, DEFAULT_DPI
    if x < 10 or y < 10:
        return DEFAULT_DPI, DEFAULT_DPI
    return x, y


@dataclass(frozen=True)
class _StampLayout:
    title_size: float
    line_size: float
    padding: float
    margin: float
    box_width: float
    box_height: float


def _layout(page_width: float, stamp: CopyStamp) -> _StampLayout:
    regular, bold = register_fonts()
    # Small pages (a receipt-sized scan) get a proportionally smaller stamp.
    scale = min(1.0, page_width / 420.0)
    title_size, line_size = _TITLE_SIZE * scale, _LINE_SIZE * scale
    padding = _PADDING * scale
    lines = stamp.lines()
    widths = [stringWidth(text, bold if strong else regular, title_size if strong else line_size)
              for text, strong in lines]
    signature_room = 3 * line_size
    box_height = sum((title_size if strong else line_size) * 1.3 for _, strong in lines) + 2 * padding + signature_room
    return _StampLayout(title_size, line_size, padding, _MARGIN * scale, max(widths) + 2 * padding, box_height)


def content_scale(page_width: float, page_height: float, stamp: CopyStamp) -> float:
    """Return the factor that shrinks a page's content into the space below the stamp."""
    layout = _layout(page_width, stamp)
    band = layout.box_height + 2 * layout.margin
    return max(0.5, (page_height - band) / page_height)


def draw_stamp(canvas: Canvas, page_width: float, page_height: float, stamp: CopyStamp) -> None:
    """Draw the stamp box in the top right corner of a page of the given size, in points."""
    regular, bold = register_fonts()
    lines = stamp.lines()
    layout = _layout(page_width, stamp)
    title_size, line_size, padding = layout.title_size, layout.line_size, layout.padding
    margin, box_width, box_height = layout.margin, layout.box_width, layout.box_height
    left = max(0.0, page_width - margin - box_width)
    bottom = max(0.0, page_height - margin - box_height)

    canvas.saveState()
    canvas.setFillColor(white)
    canvas.setStrokeColor(STAMP_RED)
    canvas.setLineWidth(1.2 * layout.line_size / _LINE_SIZE)
    canvas.rect(left, bottom, box_width, box_height, stroke=1, fill=1)
    canvas.setFillColor(STAMP_RED)
    y = bottom + box_height - padding
    for text, strong in lines:
        size = title_size if strong else line_size
        y -= size * 1.3
        canvas.setFont(bold if strong else regular, size)
        canvas.drawString(left + padding, y + size * 0.25, text)
    canvas.restoreState()
