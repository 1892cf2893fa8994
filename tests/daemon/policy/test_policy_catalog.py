"""Catalog files: read as agencies export them, rejected with file, line and column when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules_fixtures import catalog, rules  # noqa: F401  (fixtures)
from niemphong.daemon.errors import ConfigError
from niemphong.daemon.levels import Level
from niemphong.daemon.policy.basis import parse_basis
from niemphong.daemon.policy.catalog import Catalog, Lookup, load_catalog

HEADER = "Quyết định;Điều;Khoản;Điểm;Nội dung;Độ mật cao nhất\n"


def write(tmp_path: Path, text: str, encoding: str = "utf-8-sig") -> Path:
    path = tmp_path / "danh-muc.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_catalog_semicolons_bom_and_clause_item(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "Quyết định số 1722/QĐ-TTg;1;1;;Kế hoạch;Tối mật\n")

    catalog = load_catalog([path], [])
    result = catalog.lookup(parse_basis("Điểm c Khoản 1 Điều 1 QĐ 1722/QĐ-TTg"))

    assert result.outcome is Lookup.FOUND
    assert result.highest is Level.TOI_MAT


def test_sample_catalog_marked_sample(catalog: Catalog) -> None:
    assert catalog.sample_files == catalog.files
    assert len(catalog.items) == 4


def test_catalog_unknown_decision(catalog: Catalog) -> None:
    assert catalog.lookup(parse_basis("Khoản 1 Điều 1 QĐ 1/QĐ-TTg")).outcome is Lookup.UNKNOWN_DECISION


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("1722/QĐ-TTg;x;1;a;S;Mật", "Điều"),
        ("1722/QĐ-TTg;1;0;a;S;Mật", "Khoản"),
        ("1722/QĐ-TTg;1;1;ab;S;Mật", "Điểm"),
        ("1722/QĐ-TTg;1;;a;S;Mật", "Khoản is empty"),
        ("1722/QĐ-TTg;1;1;a;S;Bí mật", "Độ mật cao nhất"),
        (";1;1;a;S;Mật", "Quyết định"),
    ],
)
def test_catalog_bad_row_names_line_and_column(tmp_path: Path, row: str, problem: str) -> None:
    path = write(tmp_path, HEADER + row + "\n")

    with pytest.raises(ConfigError) as excinfo:
        load_catalog([path], [])

    assert f"{path}: line 2" in str(excinfo.value)
    assert problem in str(excinfo.value)


def test_catalog_duplicate_item_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1722/QĐ-TTg;1;1;a;S;Mật\nQĐ số 1722/QD-TTg;1;1;a;S;Mật\n")

    with pytest.raises(ConfigError, match="listed twice"):
        load_catalog([path], [])


def test_catalog_missing_column_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing column"):
        load_catalog([write(tmp_path, "Quyết định;Điều\n1;1\n")], [])


def test_catalog_not_utf8_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_catalog([write(tmp_path, HEADER + "QĐ 1;1;1;a;Kế hoạch;Mật\n", encoding="utf-16")], [])


def test_catalog_superseded_in_force_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "1722/QĐ-TTg;1;1;a;S;Mật\n")

    with pytest.raises(ConfigError, match="superseded"):
        load_catalog([path], ["Quyết định số 1722/QĐ-TTg"])
