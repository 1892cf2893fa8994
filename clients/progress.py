"""A one-line progress bar on stderr for long runs over many files.

The bar is drawn only when stderr is a terminal, at most ten times a second,
and rewritten in place with a carriage return. Progress is counted in bytes,
because copying envelope bodies is what takes the time; files count too,
so a folder of small files still moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from niemphong.clients.i18n import Lang, format_bytes, format_count, translate

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def render_bar(done_bytes: int, total_bytes: int, done_files: int, total_files: int, lang: Lang) -> str:
    """Return the progress line, e.g. ``[██████░░░░]  45% 12/30 tệp 1,2 MiB/2,7 MiB``."""
    fraction = done_bytes / total_bytes if total_bytes else (done_files / total_files if total_files else 1.0)
    fraction = min(max(fraction, 0.0), 1.0)
    filled = int(fraction * BAR_WIDTH)
    bar = "█" * filled + "░" * (BAR_WIDTH - filled)
    return translate(
        lang,
        "progress.line",
        bar=bar,
        percent=f"{int(fraction * 100):3d}",
        files=format_count(done_files, lang),
        total_files=format_count(total_files, lang),
        bytes=short_size(done_bytes, lang),
        total_bytes=short_size(total_bytes, lang),
    )


def short_size(value: int, lang: Lang) -> str:
    """Format a size in the largest binary unit below it: "512 byte", "1,5 MiB"."""
    full = format_bytes(value, lang)
    # format_bytes appends "(1,5 MiB)" from 1 KiB on; keep only that part.
    if full.endswith(")") and " (" in full:
        return full[full.rindex(" (") + 2 : -1]
    return full


class ProgressBar:
    """Progress over a known number of files and bytes.

    Args:
        stream: Where to draw, normally stderr.
        lang: Language of the line.
        total_files: Files the run will look at.
        total_bytes: Their total size.
        enabled: Draw at all; callers pass whether ``stream`` is a terminal.
        clock: Monotonic seconds; tests pass their own.
    """

    def __init__(
        self,
        stream: TextIO,
        lang: Lang,
        total_files: int,
        total_bytes: int,
        *,
        enabled: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.lang = lang
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.enabled = enabled
        self.clock = clock
        self.done_files = 0
        self.done_bytes = 0
        self._last_draw = float("-inf")
        self._last_width = 0

    def advance(self, byte_count: int) -> None:
        """Count bytes of the current file as done."""
        self.done_bytes += byte_count
        self._draw(force=False)

    def file_done(self, remaining_bytes: int = 0) -> None:
        """Count one more file as done, with the bytes of it not yet counted."""
        self.done_files += 1
        self.done_bytes += remaining_bytes
        self._draw(force=self.done_files == self.total_files)

    def close(self) -> None:
        """Erase the bar so that the messages that follow start on a clean line."""
        if self.enabled and self._last_width:
            self.stream.write("\r" + " " * self._last_width + "\r")
            self.stream.flush()
            self._last_width = 0

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        line = render_bar(self.done_bytes, self.total_bytes, self.done_files, self.total_files, self.lang)
        padding = " " * max(0, self._last_width - len(line))
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._last_width = len(line)
