"""The TrueType fonts that the daemon's PDFs embed, for Vietnamese text.

The PDF standard fonts cover Latin-1 only, which lacks most Vietnamese
letters (ạ, ề, ữ, đ ...). The minutes and copy stamps therefore embed DejaVu
Sans, which covers them; Debian ships it in the fonts-dejavu-core package.
NIEMPHONG_FONT_DIR names another folder holding DejaVuSans.ttf and
DejaVuSans-Bold.ttf.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

REGULAR = "NiemPhongSans"
BOLD = "NiemPhongSans-Bold"

_FILES = {REGULAR: "DejaVuSans.ttf", BOLD: "DejaVuSans-Bold.ttf"}
DEFAULT_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


class FontUnavailable(Exception):
    """The font files are missing or unreadable; the message names the path."""


def _font_folder() -> Path:
    return Path(os.environ.get("NIEMPHONG_FONT_DIR") or DEFAULT_FONT_DIR)


def check_fonts() -> None:
    """Check that the font files can be read, without parsing them; raise FontUnavailable otherwise.

    Parsing both fonts costs the daemon about 10 MiB of memory, so it waits
    for the first PDF (register_fonts); this check lets start-up report
    missing fonts at once.
    """
    for file_name in _FILES.values():
        path = _font_folder() / file_name
        try:
            with path.open("rb") as handle:
                handle.read(4)
        except OSError as exc:
            raise FontUnavailable(
                f"cannot read font {path} (install fonts-dejavu-core or set NIEMPHONG_FONT_DIR): {exc.strerror or exc}"
            ) from exc


@functools.lru_cache(maxsize=1)
def register_fonts() -> tuple[str, str]:
    """Register the regular and bold fonts with reportlab once and return their names."""
    folder = _font_folder()
    for name, file_name in _FILES.items():
        path = folder / file_name
        try:
            pdfmetrics.registerFont(TTFont(name, str(path)))
        except Exception as exc:  # reportlab raises TTFError, OSError or its own errors
            raise FontUnavailable(
                f"cannot load font {path} (install fonts-dejavu-core or set NIEMPHONG_FONT_DIR): {exc}"
            ) from exc
    return REGULAR, BOLD
