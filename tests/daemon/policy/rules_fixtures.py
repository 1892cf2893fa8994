"""Helpers for the classification policy's unit tests: the sample catalog and rules built from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from niemphong.daemon.levels import Level
from niemphong.daemon.policy.basis import parse_basis
from niemphong.daemon.policy.catalog import Catalog, load_catalog
from niemphong.daemon.policy.decision import Rules, StandingDecision

SAMPLE_CATALOG = Path(__file__).resolve().parents[3] / "clients" / "data" / "danh-muc-bmnn-mau.csv"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog([SAMPLE_CATALOG], ["danh mục mẫu cũ"])


@pytest.fixture(scope="session")
def rules(catalog: Catalog) -> Rules:
    import datetime as dt

    standing = StandingDecision(
        kind="bao-cao-tuan", name="Báo cáo tuần", level=Level.MAT,
        basis=parse_basis("Điểm a Khoản 2 Điều 1 danh mục mẫu"), decision="Quyết định số 01/QĐ-VP",
        decided_on=dt.date(2025, 1, 2),
    )
    return Rules(
        protection_years={Level.TOI_MAT: 20, Level.MAT: 10}, catalog=catalog,
        standing_decisions={"bao-cao-tuan": standing},
    )
