"""Fuzz the classification basis (căn cứ) parser: only ValueError may escape."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fuzz, instrumented_imports  # noqa: E402

with instrumented_imports():
    from niemphong.daemon.policy.basis import parse_basis

NAME = "basis"


def seeds() -> Iterator[bytes]:
    yield "Điểm a Khoản 2 Điều 1 Quyết định số 1722/QĐ-TTg".encode()
    yield "khoan 3 dieu 2 QD so 1722/QD-TTg ngày 20/12/2020".encode()
    yield "Điều 1 của Quyết định 1722/QĐ-TTg của Thủ tướng Chính phủ".encode()


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        basis = parse_basis(text)
    except ValueError:
        return
    # What parses describes itself in a form that parses to the same basis.
    assert parse_basis(basis.describe()).path() == basis.path()


if __name__ == "__main__":
    fuzz(NAME, test_one_input, seeds)
