"""The operations guides, English and Vietnamese: each covers the setup steps
and names every file that deploy/ ships, so that none is left uninstalled."""

from __future__ import annotations

import unicodedata

import pytest

from conftest import REPO

DEPLOY = REPO / "deploy"
GUIDES = {
    "en": REPO / "docs" / "operations.md",
    "vi": REPO / "docs" / "operations.vi.md",
}
# Sections both guides must have, as they are titled in each language.
SECTIONS = {
    "en": [
        "## Install", "## First start with a real token", "## Local spool folders", "## Key ceremony",
        "## Backups of the state store", "## Upgrade",
    ],
    "vi": [
        "## Cài đặt", "## Khởi động lần đầu với token thật", "## Thư mục trung chuyển", "## Quy trình khởi tạo khóa",
        "## Sao lưu cơ sở dữ liệu trạng thái", "## Nâng cấp",
    ],
}
REQUIRED_ALERTS = [
    "NiemphongTokenMissing", "NiemphongAuditWriteFailures", "NiemphongKeyRotationOverdue",
    "NiemphongDeniedOpensSpike", "NiemphongApprovalWaitingTooLong",
]


@pytest.mark.parametrize("lang", sorted(GUIDES))
def test_guide_has_setup_sections(lang: str) -> None:
    headings = [line.split(" (")[0] for line in GUIDES[lang].read_text(encoding="utf-8").splitlines() if line.startswith("## ")]

    for section in SECTIONS[lang]:
        assert section in headings, section


@pytest.mark.parametrize("lang", sorted(GUIDES))
def test_guide_lists_every_deploy_file(lang: str) -> None:
    text = GUIDES[lang].read_text(encoding="utf-8")
    shipped = [path.relative_to(REPO).as_posix() for path in DEPLOY.rglob("*") if path.is_file()]

    assert shipped
    for name in shipped:
        if name.endswith(".test.yml"):
            continue
        assert f"| `{name}` |" in text, name


@pytest.mark.parametrize("lang", sorted(GUIDES))
def test_guide_names_required_alerts(lang: str) -> None:
    text = GUIDES[lang].read_text(encoding="utf-8")

    for alert in REQUIRED_ALERTS:
        assert f"`{alert}`" in text, alert


def test_vietnamese_guide_nfc() -> None:
    text = GUIDES["vi"].read_text(encoding="utf-8")

    assert unicodedata.normalize("NFC", text) == text
