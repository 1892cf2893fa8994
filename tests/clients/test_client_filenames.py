"""Finding listed scans whose names on disk are in the other Unicode normalization form."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from niemphong.clients.errors import ClientError
from niemphong.clients.filenames import find_normalized, find_normalized_path

NAME = "công văn số hóa.pdf"
FOLDER = "Hồ sơ mật"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def test_nfd_file_found_by_nfc_name(tmp_path: Path) -> None:
    (tmp_path / nfd(NAME)).write_bytes(b"%PDF")

    found = find_normalized(tmp_path, nfc(NAME))

    assert found.name == nfd(NAME)
    assert found.read_bytes() == b"%PDF"


def test_nfc_file_found_by_nfd_name(tmp_path: Path) -> None:
    (tmp_path / nfc(NAME)).write_bytes(b"%PDF")

    assert find_normalized(tmp_path, nfd(NAME)).name == nfc(NAME)


def test_nfd_folder_and_file_found(tmp_path: Path) -> None:
    folder = tmp_path / nfd(FOLDER)
    folder.mkdir()
    (folder / nfd(NAME)).write_bytes(b"%PDF")

    scans = find_normalized_path(tmp_path / nfc(FOLDER))
    found = find_normalized(scans, nfc(NAME))

    assert scans == folder
    assert found.is_file()


def test_relative_nfd_folder_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / nfd(FOLDER)).mkdir()
    monkeypatch.chdir(tmp_path)

    assert find_normalized_path(Path(nfc(FOLDER))).is_dir()


def test_both_forms_present_ambiguous(tmp_path: Path) -> None:
    (tmp_path / nfc(NAME)).write_bytes(b"one")
    (tmp_path / nfd(NAME)).write_bytes(b"two")

    with pytest.raises(ClientError) as raised:
        find_normalized(tmp_path, nfc(NAME))

    assert raised.value.message_id == "usage.name_ambiguous"
    assert "NFC" in raised.value.localize("vi")
    assert "2" in raised.value.localize("en")


def test_missing_file_keeps_listed_name(tmp_path: Path) -> None:
    found = find_normalized(tmp_path, nfc(NAME))

    assert found == tmp_path / nfc(NAME)
    assert not found.exists()


def test_plain_ascii_name_unchanged(tmp_path: Path) -> None:
    (tmp_path / "scan-01.pdf").write_bytes(b"%PDF")

    assert find_normalized(tmp_path, "scan-01.pdf") == tmp_path / "scan-01.pdf"
    assert os.path.basename(find_normalized_path(tmp_path)) == tmp_path.name
