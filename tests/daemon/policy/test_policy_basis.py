"""Bases written as agencies write them: parsed tolerantly, rejected when they cite no article or decision."""

from __future__ import annotations

import unicodedata

import pytest

from niemphong.daemon.policy.basis import decision_key, parse_basis


@pytest.mark.parametrize(
    "text",
    [
        "Điểm a Khoản 2 Điều 1 Quyết định số 1722/QĐ-TTg",
        "điểm a, khoản 2, Điều 1 của Quyết định số 1722/QĐ-TTg ngày 05/11/2020 của Thủ tướng Chính phủ",
        "  ĐIỂM   A  KHOẢN 2 ĐIỀU 1  QĐ số 1722/QD-TTg ",
        unicodedata.normalize("NFD", "Điểm a Khoản 2 Điều 1 Quyết định số 1722/QĐ-TTg"),
        "Quyết định số 1722/QĐ-TTg, Điều 1, Khoản 2, Điểm a",
        "Ðiểm a Khoản 2 Ðiều 1 Quyết định 1722/QĐ-TTg",
    ],
)
def test_basis_parsed_tolerantly(text: str) -> None:
    basis = parse_basis(text)

    assert basis.path() == (1, 2, "a")
    assert basis.decision_key == "1722/qd-ttg"


def test_basis_point_dd_kept_apart_from_d() -> None:
    assert parse_basis("Điểm đ Khoản 2 Điều 1 danh mục mẫu").point == "đ"
    assert parse_basis("Điểm d Khoản 2 Điều 1 danh mục mẫu").point == "d"


def test_basis_clause_only() -> None:
    basis = parse_basis("Khoản 1 Điều 1 danh mục mẫu")

    assert basis.path() == (1, 1, None)
    assert basis.describe() == "Khoản 1 Điều 1 danh mục mẫu"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Khoản 1 danh mục mẫu",
        "Điểm a Điều 1 danh mục mẫu",
        "Điều 1",
        "Điều 1 Điều 2 danh mục mẫu",
        "Điểm 3 Khoản 1 Điều 1 danh mục mẫu",
        "Khoản 0 Điều 2 danh mục mẫu",
        "Khoản 1 Điều 00 danh mục mẫu",
    ],
)
def test_basis_unparsable_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_basis(text)


def test_basis_describe_parses_back_to_the_same_path() -> None:
    for text in ["Điểm Đ khoản 3 điều 2 danh mục mẫu", "khoản 12 Điều 7 của danh mục mẫu"]:
        basis = parse_basis(text)

        assert parse_basis(basis.describe()).path() == basis.path()


def test_basis_point_is_one_letter_never_a_look_alike() -> None:
    # U+0130 lower-cases to two characters, "i" and a combining dot.
    assert parse_basis("Điểm\u0130 Khoản 1 Điều 1 danh mục mẫu").point is None


def test_decision_key_ignores_prefix_case_and_diacritics() -> None:
    assert decision_key("Quyết định số 1722/QĐ-TTg") == decision_key("qd 1722/qd-ttg") == "1722/qd-ttg"
