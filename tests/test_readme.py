"""README.md and README.vi.md carry the same commands, word for word apart from placeholders."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from conftest import REPO

# Placeholders the Vietnamese README writes in Vietnamese, with their English form.
PLACEHOLDERS = {
    "MÃ_LÔ": "BATCH_ID",
    "MÃ_ĐỀ_XUẤT": "CHANGE_ID",
    "MÃ_TÀI_LIỆU": "ARTEFACT_ID",
    "NGÀY": "DATE",
    "TỆP": "FILE",
}
_FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`]+)`")
_COMMAND_START = ("niemphong ", "niemphongd ", "scripts/")


def _english_placeholders(text: str) -> str:
    for vietnamese, english in PLACEHOLDERS.items():
        text = text.replace(vietnamese, english)
    return text


def block_commands(readme: Path) -> list[str]:
    """Return the commands of the sh code blocks, one per logical line, without comments."""
    commands = []
    for block in _FENCE.findall(readme.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"(^|\s+)#\s.*$", "", line).strip()
            if command:
                commands.append(_english_placeholders(" ".join(command.split())))
    return commands


def inline_commands(readme: Path) -> Counter[str]:
    """Return the commands quoted inline in the prose, such as `niemphong keys due`."""
    text = _FENCE.sub("", readme.read_text(encoding="utf-8"))
    spans = (" ".join(span.split()) for span in _INLINE.findall(text))
    return Counter(_english_placeholders(span) for span in spans if span.startswith(_COMMAND_START))


def test_readme_code_blocks_same_commands() -> None:
    english = block_commands(REPO / "README.md")
    vietnamese = block_commands(REPO / "README.vi.md")

    assert english
    assert english == vietnamese


def test_readme_inline_commands_same() -> None:
    english = inline_commands(REPO / "README.md")
    vietnamese = inline_commands(REPO / "README.vi.md")

    assert english
    assert english == vietnamese


def test_readme_scan_inputs_exist() -> None:
    # Each single-file scan in the READMEs must work as written, on a file the repository has.
    scans = [command.split() for command in block_commands(REPO / "README.md") if command.startswith("niemphong scan ")]
    inputs = [words[2] for words in scans if not words[2].startswith("-")]

    assert inputs
    for source in inputs:
        assert (REPO / source).is_file(), source
