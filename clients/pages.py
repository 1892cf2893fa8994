"""Counting the pages of a scan: PDF, multi-page TIFF, JPEG and PNG.

Only the file's structure is read (the PDF page tree, the TIFF directory
chain), never the page images, so counting a large scan is quick.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PdfReadError

log = logging.getLogger(__name__)

IMAGE_FORMATS = {"TIFF": "tiff", "JPEG": "jpeg", "PNG": "png", "MPO": "jpeg"}


class PageCountError(Exception):
    """The pages of a scan cannot be counted; ``kind`` is "format" (not a supported type) or "damaged"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def count_pages(path: Path) -> int:
    """Return the number of pages of the scan at ``path``; raise PageCountError otherwise."""
    with path.open("rb") as handle:
        head = handle.read(8)

    if head.startswith(b"%PDF-"):
        return _count_pdf_pages(path)
    return _count_image_pages(path)


def _count_pdf_pages(path: Path) -> int:
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PageCountError("damaged", "the PDF is password-protected")
        pages = len(reader.pages)
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        log.debug("cannot count pages of %s: %r", path, exc)
        raise PageCountError("damaged", f"the PDF cannot be read: {exc}") from exc
    if pages < 1:
        raise PageCountError("damaged", "the PDF has no pages")
    return pages


def _count_image_pages(path: Path) -> int:
    try:
        with Image.open(path) as image:
            if image.format not in IMAGE_FORMATS:
                raise PageCountError("format", f"{image.format} images are not scans this command counts")
            return int(getattr(image, "n_frames", 1))
    except UnidentifiedImageError as exc:
        raise PageCountError("format", "not a PDF, TIFF, JPEG or PNG file") from exc
    # Pillow's format plugins raise any of these on a damaged file.
    except (OSError, ValueError, TypeError, SyntaxError, EOFError, IndexError, KeyError,
            Image.DecompressionBombError) as exc:
        log.debug("cannot count pages of %s: %r", path, exc)
        raise PageCountError("damaged", f"the image cannot be read: {exc}") from exc
