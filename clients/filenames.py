"""Find a file named in NFC text when the name on disk may be NFD, or the other way round.

Vietnamese letters can be stored precomposed (NFC, as Windows and Excel
write them) or decomposed (NFD, as macOS and some scanners write them). Both
look the same on screen, but Linux compares file names byte by byte, so a
handover list that names "công văn.pdf" in NFC does not open a scan stored
under the NFD spelling. These helpers match each path component in either
form, and reject a match that two entries differing only in normalization
make ambiguous rather than guess between them.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from niemphong.clients.errors import ClientError, ExitCode


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _match_entry(folder: Path, name: str) -> str:
    """Return the entry of ``folder`` spelled as ``name`` in either normalization form, or ``name`` itself.

    ``name`` is returned unchanged when no entry matches (the caller then
    reports the file as not found) or when the folder cannot be listed.
    Raises ClientError (usage) when several entries match.
    """
    if name in ("", ".", ".."):
        return name
    try:
        entries = os.listdir(folder)
    except OSError:
        return name

    wanted = _nfc(name)
    matches = sorted(entry for entry in entries if _nfc(entry) == wanted)
    if len(matches) > 1:
        raise ClientError(ExitCode.USAGE, "usage.name_ambiguous", path=str(folder / wanted), count=len(matches))
    return matches[0] if matches else name


def find_normalized(base: Path, relative: str | Path) -> Path:
    """Return ``base / relative`` with each component of ``relative`` spelled as it is on disk.

    A component that exists under its own spelling is still checked, because
    a second entry spelled in the other form would make the name ambiguous.
    """
    path = base
    for part in Path(relative).parts:
        if part == os.sep:
            path = Path(part)
            continue
        path = path / _match_entry(path, part)
    return path


def find_normalized_path(path: Path) -> Path:
    """Return ``path`` with each component spelled as it is on disk (see :func:`find_normalized`)."""
    if path.is_absolute():
        return find_normalized(Path(path.anchor), path.relative_to(path.anchor))
    return find_normalized(Path("."), path) if path.parts else path
